// The origin's container image (deploy/image): built with build.sh, started
// the way the Kubernetes Deployment starts it (read-only root, unprivileged
// user, a /nix volume seeded by the init container's own command), it
// answers /v2/, gets ready, builds an image with the Nix inside it, and
// exits 0 on SIGTERM. Host directories owned by uid 10001 stand in for the
// pod's volumes (/nix, /tmp, $HOME), as fsGroup makes them writable there.
//
// Not part of `npm test`: it needs root, a Docker daemon and several minutes
// (docs/operations.md, "Building the image"). Run it with
//   node --test 'test/image/*.test.ts'
// With DOCKER_HOST unset and no daemon answering, it starts a private one
// (deploy/image/local-docker.sh) under NIXERY_IMAGE_DOCKER_DIR (default
// /var/tmp/nixery-edge-docker, kept between runs so the base image and
// build steps are reused). A missing prerequisite fails the test, saying
// which: it is never skipped.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { REPO } from '../support/origin.ts';
import { SLOW_PKGS } from '../support/ops.ts';
import { renderKustomization } from '../support/kustomize.ts';

const TAG = 'nixery-edge/origin:test';
const UID = 10001;
const env: Record<string, string> = { ...(process.env as Record<string, string>) };
let startedDaemon: string | null = null;

async function docker(args: string[], options: { timeout?: number } = {}) {
  return execa('docker', args, { env, reject: false, timeout: options.timeout ?? 120_000 });
}

async function ensureDaemon(): Promise<void> {
  if ((await docker(['version'])).exitCode === 0) return;
  if (process.env.DOCKER_HOST) assert.fail(`no Docker daemon answers at DOCKER_HOST=${process.env.DOCKER_HOST}`);
  for (const tool of ['dockerd', 'containerd', 'docker']) {
    const found = await execa('sh', ['-c', `command -v ${tool}`], { reject: false });
    assert.equal(found.exitCode, 0, `${tool} is missing: apt-get install docker.io containerd (and run as root)`);
  }
  const dir = process.env.NIXERY_IMAGE_DOCKER_DIR ?? '/var/tmp/nixery-edge-docker';
  const started = await execa(join(REPO, 'deploy/image/local-docker.sh'), ['start', dir], { reject: false, timeout: 60_000 });
  assert.equal(started.exitCode, 0, `could not start a Docker daemon: ${started.stderr}`);
  env.DOCKER_HOST = started.stdout.trim().replace(/^DOCKER_HOST=/, '');
  startedDaemon = dir;
}

after(async () => {
  if (startedDaemon) await execa(join(REPO, 'deploy/image/local-docker.sh'), ['stop', startedDaemon], { reject: false });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function waitFor(url: string, seconds: number): Promise<Response> {
  const deadline = Date.now() + seconds * 1000;
  let last = 'no answer';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url);
      if (res.status === 200) return res;
      last = `${res.status} ${await res.text()}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`${url} did not answer 200 within ${seconds} s: ${last}`);
}

/** The init container's command from the Deployment, so the test seeds /nix exactly as a pod does. */
function seedCommand(): string[] {
  const deployment = renderKustomization(join(REPO, 'deploy/kubernetes/base')).find((r) => r.kind === 'Deployment');
  const spec = (deployment as unknown as { spec: { template: { spec: { initContainers: { name: string; command: string[] }[] } } } }).spec.template.spec;
  return spec.initContainers.find((c) => c.name === 'seed-nix-store')!.command;
}

test('the image builds, seeds /nix like the init container, answers /v2/, builds an image with its own Nix, and exits 0 on SIGTERM', { timeout: 30 * 60_000 }, async () => {
  assert.equal(process.getuid?.(), 0, 'this test runs as root (Docker daemon, chown of the /nix volume)');
  assert.ok(existsSync('/bin/busybox'), 'the fixture packages need a static /bin/busybox on the host: apt-get install busybox-static');
  await ensureDaemon();

  const built = await execa(join(REPO, 'deploy/image/build.sh'), [TAG], { env, reject: false, timeout: 25 * 60_000, all: true });
  assert.equal(built.exitCode, 0, `deploy/image/build.sh failed:\n${String(built.all).slice(-4000)}`);

  // The pod's volumes (/nix, /tmp, $HOME), writable by the image's user as fsGroup makes them in a pod.
  const volumes = await mkdtemp(join(tmpdir(), 'nixery-image-volumes-'));
  const [nix, tmp, home] = ['nix', 'tmp', 'home'].map((name) => join(volumes, name)) as [string, string, string];
  for (const dir of [nix, tmp, home]) {
    await mkdir(dir);
    await chown(dir, UID, UID);
  }
  const name = `nixery-origin-test-${randomBytes(4).toString('hex')}`;
  try {
    const seeded = await docker(['run', '--rm', '--read-only', '--network', 'none', '-v', `${nix}:/seed`, TAG, ...seedCommand()]);
    assert.equal(seeded.exitCode, 0, `seeding /nix failed: ${seeded.stderr}`);
    assert.match(seeded.stdout, /seeded from the image/);

    const port = await freePort();
    const run = await docker([
      'run', '-d', '--name', name, '--network', 'host', '--read-only',
      '-v', `${nix}:/nix`, '-v', `${tmp}:/tmp`, '-v', `${home}:/var/lib/nixery`,
      '-v', `${SLOW_PKGS}:/srv/pkgs:ro`,
      '-v', '/bin/busybox:/bin/busybox:ro',
      '-e', `PORT=${port}`, '-e', 'HOST=127.0.0.1',
      '-e', 'NIXERY_PKGS_PATH=/srv/pkgs', '-e', 'NIX_CONFIG=substituters =',
      '-e', `SLOW_PKGS_SALT=${randomBytes(8).toString('hex')}`,
      '-e', 'SHUTDOWN_GRACE_SECONDS=10',
      TAG,
    ]);
    assert.equal(run.exitCode, 0, `docker run failed: ${run.stderr}`);
    const url = `http://127.0.0.1:${port}`;

    const base = await waitFor(`${url}/v2/`, 60);
    assert.equal(base.headers.get('docker-distribution-api-version'), 'registry/2.0');
    const ready = (await (await waitFor(`${url}/readyz`, 30)).json()) as { checks: { nix: { version: string } } };
    assert.match(ready.checks.nix.version, /Nix\) 2\./);

    const manifest = await fetch(`${url}/v2/hello/manifests/latest`);
    assert.equal(manifest.status, 200, await manifest.clone().text());
    const layers = ((await manifest.json()) as { layers: { digest: string }[] }).layers;
    const blob = await fetch(`${url}/v2/hello/blobs/${layers[0]!.digest}`);
    assert.equal(blob.status, 200);
    await blob.arrayBuffer();

    const stopped = await docker(['stop', '-t', '30', name]);
    assert.equal(stopped.exitCode, 0);
    const inspect = await docker(['inspect', '-f', '{{.State.ExitCode}} {{.Config.User}}', name]);
    assert.equal(inspect.stdout.trim(), '0 nixery', 'exited 0, having run as the unprivileged user');
    const logs = await docker(['logs', name]);
    const lines = logs.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(lines.some((l) => l.msg === 'image built'), 'the build was logged');
    assert.ok(lines.some((l) => l.msg === 'shut down'), 'SIGTERM reached the origin through tini');
  } finally {
    await docker(['rm', '-f', name]);
    await rm(volumes, { recursive: true, force: true });
  }
});
