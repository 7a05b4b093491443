// The clients people actually use: the Docker daemon and containerd pull
// images through the edge (the Worker in workerd) and run them. The daemons
// start once for every test here (they are slow), the multi-platform tests
// included: those go through a second origin with NIXERY_PLATFORMS=amd64,arm64
// and pick a platform from one name's index (arm64 runs under qemu).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOrigin, REPO, type RunningOrigin } from '../support/origin.ts';
import { startEdge, type RunningTestEdge } from '../support/edge.ts';
import { ARM64_NIX_CONFIG, elfMachine, requireArm64 } from '../support/arm64.ts';

const SECRET = 'docker-test-secret';
let origin: RunningOrigin;
let edge: RunningTestEdge;
/** Both platforms under one name. */
let multiOrigin: RunningOrigin;
let multiEdge: RunningTestEdge;
let daemonDir: string;
let dockerHost: string;

before(async () => {
  origin = await startOrigin({ env: { ORIGIN_SECRET: SECRET } });
  edge = await startEdge(origin.url, { bindings: { ORIGIN_SECRET: SECRET } });
  multiOrigin = await startOrigin({ env: { NIX_CONFIG: ARM64_NIX_CONFIG, NIXERY_PLATFORMS: 'amd64,arm64' } });
  multiEdge = await startEdge(multiOrigin.url);
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
  await multiEdge?.stop();
  await multiOrigin?.stop();
  await edge?.stop();
  await origin?.stop();
});

const docker = (...args: string[]) => execa('docker', args, { env: { DOCKER_HOST: dockerHost } });
/** `docker run --rm` without networking (the private daemon has none to offer). */
const run = (image: string, ...args: string[]) => docker('run', '--rm', '--network', 'none', image, ...args);

test('docker pulls shell/hello through the edge and runs its programs', async () => {
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

test('an image without shell has a writable /tmp, runs #!/usr/bin/env scripts, knows user 0 as root, and has a CA bundle OpenSSL reads', async () => {
  // Not the shell meta-package: bash for sh, coreutils for env, id and stat, the script, and openssl.
  const image = `${edge.host}/bashinteractive/coreutils/envscript/openssl`;
  await docker('pull', image);
  assert.equal((await run(image, 'sh', '-c', 'echo written > /tmp/probe && cat /tmp/probe && stat -c %a /tmp')).stdout, 'written\n1777');
  assert.equal((await run(image, 'env-script')).stdout, 'env-script: sh found through /usr/bin/env');
  assert.equal((await run(image, 'id', '-un')).stdout, 'root');
  assert.equal((await run(image, 'whoami')).stdout, 'root');
  assert.equal((await docker('run', '--rm', '--network', 'none', '--user', '65534:65534', image, 'id', '-un')).stdout, 'nobody');
  const { stdout } = await run(image, 'sh', '-c', 'openssl x509 -in "$SSL_CERT_FILE" -noout -subject && echo "$NIX_SSL_CERT_FILE"');
  assert.match(stdout, /^subject=.+\n\/etc\/ssl\/certs\/ca-bundle\.crt$/);
});

test('docker run without a command: hello greets, shell/hello starts bash, curl/jq has no default', async () => {
  assert.equal((await run(`${edge.host}/hello`)).stdout, 'Hello, world!');
  const bash = await execa('docker', ['run', '--rm', '-i', '--network', 'none', `${edge.host}/shell/hello`], {
    env: { DOCKER_HOST: dockerHost },
    input: 'echo $((6 * 7)) $BASH_VERSION\n',
  });
  assert.match(bash.stdout, /^42 5\./);
  const none = await docker('run', '--rm', '--network', 'none', `${edge.host}/curl/jq`).catch((err: { exitCode?: number; stderr?: string }) => err);
  assert.notEqual(none.exitCode, 0);
  assert.match(String(none.stderr), /no command specified/i);
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

/** The ELF machine of an image's program, copied out of a container docker created (not run) from it. */
async function dockerProgramMachine(image: string, platform: string, path: string): Promise<string> {
  const { stdout: id } = await docker('create', '--platform', platform, image);
  const out = await mkdtemp(join(tmpdir(), 'docker-cp-'));
  try {
    // -L follows the image's symlink (/bin/hello → /nix/store/…) inside the container.
    await docker('cp', '-L', `${id.trim()}:${path}`, join(out, 'program'));
    return await elfMachine(join(out, 'program'));
  } finally {
    await docker('rm', id.trim());
    await rm(out, { recursive: true, force: true });
  }
}

test('docker pulls one name for linux/arm64 and for linux/amd64 and runs each (arm64 under qemu)', { timeout: 300_000 }, async () => {
  await requireArm64();
  const image = `${multiEdge.host}/hello`;
  for (const [arch, machine] of [['arm64', 'aarch64'], ['amd64', 'x86-64']] as const) {
    const platform = `linux/${arch}`;
    await docker('pull', '--platform', platform, image);
    const inspect = JSON.parse((await docker('image', 'inspect', image)).stdout) as { Architecture: string; Os: string }[];
    assert.equal(inspect[0]!.Architecture, arch);
    assert.equal(inspect[0]!.Os, 'linux');
    assert.equal(await dockerProgramMachine(image, platform, '/bin/hello'), machine);
    assert.equal((await docker('run', '--rm', '--network', 'none', '--platform', platform, image)).stdout, 'Hello, world!');
  }
});

test('containerd pulls one name for linux/arm64 and runs it under qemu', { timeout: 300_000 }, async () => {
  await requireArm64();
  const ctr = (...args: string[]) => execa('ctr', ['--address', join(daemonDir, 'containerd.sock'), ...args]);
  const image = `${multiEdge.host}/bashinteractive/hello:latest`;
  await ctr('images', 'pull', '--plain-http', '--platform', 'linux/arm64', image);
  // The image's record is the index; only arm64's content was fetched.
  const listed = (await ctr('images', 'ls')).stdout.split('\n').find((line) => line.startsWith(image));
  assert.match(String(listed), /application\/vnd\.docker\.distribution\.manifest\.list\.v2\+json/);
  const { stdout } = await ctr(
    'run', '--rm', '--snapshotter', 'native', '--platform', 'linux/arm64', image, 'nixery-edge-ctr-arm64',
    '/bin/bash', '-c', 'hello && echo "$BASH_VERSINFO-$MACHTYPE"',
  );
  const [greeting, machine] = stdout.trim().split('\n');
  assert.equal(greeting, 'Hello, world!');
  assert.match(String(machine), /^5-aarch64-/);
});
