// The clients people actually use: the Docker daemon and containerd pull
// images through the edge (the Worker in workerd) and run them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOrigin, REPO, type RunningOrigin } from '../support/origin.ts';
import { startEdge, type RunningTestEdge } from '../support/edge.ts';

const SECRET = 'docker-test-secret';
let origin: RunningOrigin;
let edge: RunningTestEdge;
let daemonDir: string;
let dockerHost: string;

before(async () => {
  origin = await startOrigin({ env: { ORIGIN_SECRET: SECRET } });
  edge = await startEdge(origin.url, { bindings: { ORIGIN_SECRET: SECRET } });
  daemonDir = await mkdtemp(join(tmpdir(), 'docker-'));
  // The same private containerd + dockerd operators use to build the origin's image (deploy/image/local-docker.sh).
  const { stdout } = await execa('bash', [join(REPO, 'deploy/image/local-docker.sh'), 'start', daemonDir]);
  dockerHost = stdout.trim().replace(/^DOCKER_HOST=/, '');
});

after(async () => {
  if (daemonDir) {
    await execa('bash', [join(REPO, 'deploy/image/local-docker.sh'), 'stop', daemonDir], { reject: false });
    await rm(daemonDir, { recursive: true, force: true });
  }
  await edge?.stop();
  await origin?.stop();
});

test('docker pulls shell/hello through the edge and runs its programs', async () => {
  const docker = (...args: string[]) => execa('docker', args, { env: { DOCKER_HOST: dockerHost } });
  const image = `${edge.host}/shell/hello`;
  await docker('pull', image);
  assert.equal((await docker('run', '--rm', '--network', 'none', image, 'hello')).stdout.trim(), 'Hello, world!');
  const { stdout } = await docker('run', '--rm', '--network', 'none', image, 'bash', '-c', 'echo $((6 * 7)); ls /etc/ssl/certs');
  assert.match(stdout, /^42\n/);
  assert.match(stdout, /ca-bundle\.crt/);
  const inspect = JSON.parse((await docker('image', 'inspect', image)).stdout) as { Architecture: string; Config: { Env: string[] } }[];
  assert.equal(inspect[0]!.Architecture, 'amd64');
  assert.ok(inspect[0]!.Config.Env.includes('PATH=/bin'));
});

test('containerd pulls an image through the edge and runs it', async () => {
  const ctr = (...args: string[]) => execa('ctr', ['--address', join(daemonDir, 'containerd.sock'), ...args]);
  const image = `${edge.host}/bashinteractive/coreutils/hello:latest`;
  await ctr('images', 'pull', '--plain-http', image);
  const { stdout } = await ctr('run', '--rm', '--snapshotter', 'native', image, 'nixery-edge-ctr-test', '/bin/bash', '-c', 'hello && ls /bin | wc -l');
  const [greeting, count] = stdout.trim().split('\n');
  assert.equal(greeting, 'Hello, world!');
  assert.ok(Number(count) > 10, 'coreutils put its programs on /bin');
});
