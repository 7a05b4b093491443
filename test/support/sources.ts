// Helpers for the package-source tests: a static file server on 127.0.0.1
// (tarball archives, git repositories over git's "dumb" HTTP protocol), a
// record of every git and Nix process the origin starts, and small pulls.
import { execa } from 'execa';
import { createReadStream } from 'node:fs';
import { chmod, cp, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { REPO, type RunningOrigin } from './origin.ts';
import { eventually } from './eventually.ts';

export const SOURCE_FIXTURE = join(REPO, 'test/fixtures/source-pkgs');

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** A copy of the source fixture whose greeting (so whose `greeting` package) says `text`. */
export async function packageSet(dir: string, text: string): Promise<string> {
  await cp(SOURCE_FIXTURE, dir, { recursive: true });
  await writeFile(join(dir, 'greeting.txt'), `${text}\n`);
  return dir;
}

export interface StaticServer {
  url: string;
  /** Paths requested so far, in order. */
  requests: string[];
  close(): Promise<void>;
}

/** Serves files under `root` (GET and HEAD only); 404 for anything else. */
export async function serveDirectory(root: string): Promise<StaticServer> {
  const requests: string[] = [];
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push(path);
    const file = join(root, normalize(path));
    try {
      const info = await stat(file);
      if (!info.isFile() || !file.startsWith(root)) throw new Error('not a file');
      res.writeHead(200, { 'Content-Length': String(info.size), 'Content-Type': 'application/octet-stream' });
      if (req.method === 'HEAD') res.end();
      else createReadStream(file).pipe(res);
    } catch {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A port nothing listens on: taken from the system, then released. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface ProcessRecorder {
  /** Put first on the origin's PATH. */
  env: { PATH: string };
  /** Commands started since the last clear, e.g. `git ls-remote -- …`, `nix-instantiate --eval …`. */
  commands(): Promise<string[]>;
  clear(): Promise<void>;
  remove(): Promise<void>;
}

/**
 * Wrappers for git and Nix's commands that note each start and then run the
 * real program, so a test can tell that a pull ran no git and no Nix at all
 * (Nix's own git processes, for fetchGit, are noted too).
 */
export async function recordProcesses(): Promise<ProcessRecorder> {
  const dir = await tempDir('shims-');
  const log = join(dir, 'commands.log');
  await writeFile(log, '');
  for (const program of ['git', 'nix-instantiate', 'nix-build', 'nix-store']) {
    const real = (await execa('sh', ['-c', 'command -v "$1"', 'sh', program])).stdout.trim();
    const script = `#!/bin/sh\necho "${program} $*" >> '${log}'\nexec '${real}' "$@"\n`;
    await writeFile(join(dir, program), script);
    await chmod(join(dir, program), 0o755);
  }
  return {
    env: { PATH: `${dir}:${process.env.PATH ?? '/usr/bin:/bin'}` },
    commands: async () => (await readFile(log, 'utf8')).split('\n').filter(Boolean),
    clear: () => writeFile(log, ''),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

export async function git(cwd: string, ...args: string[]): Promise<string> {
  return (await execa('git', args, { cwd })).stdout.trim();
}

/** A new repository with one commit of the fixture saying `text` on branch `main`; returns the commit. */
export async function initRepository(dir: string, text: string): Promise<string> {
  await packageSet(dir, text);
  await git(dir, 'init', '-q', '-b', 'main');
  await git(dir, 'config', 'user.email', 'tests@nixery-edge.invalid');
  await git(dir, 'config', 'user.name', 'tests');
  await git(dir, 'add', '.');
  await git(dir, 'commit', '-q', '-m', text);
  return git(dir, 'rev-parse', 'HEAD');
}

/** Commits a new greeting on the current branch; returns the commit. */
export async function commitGreeting(dir: string, text: string): Promise<string> {
  await writeFile(join(dir, 'greeting.txt'), `${text}\n`);
  await git(dir, 'commit', '-q', '-am', text);
  return git(dir, 'rev-parse', 'HEAD');
}

/** Pushes everything to a bare repository served over dumb HTTP, which needs its info files refreshed. */
export async function publish(work: string, bare: string): Promise<void> {
  await git(work, 'push', '-q', '--force', '--all', bare);
  await git(work, 'push', '-q', '--force', '--tags', bare);
  await git(bare, 'update-server-info');
}

/** A nixpkgs-style tarball: one top-level directory holding the package set. */
export async function makeTarball(packageSetDir: string, topLevel: string, destination: string): Promise<void> {
  const staging = await tempDir('tarball-');
  try {
    await cp(packageSetDir, join(staging, topLevel), { recursive: true });
    await execa('tar', ['-C', staging, '-czf', destination, topLevel]);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

export interface PullResult {
  status: number;
  digest: string | null;
  body: string;
  /** The registry error, when the answer is one. */
  error: { code: string; message: string; detail: unknown } | null;
}

/** Requests each origin was sent through these helpers, to know when all their log lines arrived. */
const sent = new WeakMap<RunningOrigin, number>();

async function request(origin: RunningOrigin, path: string, headers: Record<string, string> = {}): Promise<Response> {
  sent.set(origin, (sent.get(origin) ?? 0) + 1);
  return fetch(`${origin.url}${path}`, { headers });
}

export async function pullManifest(origin: RunningOrigin, name: string, tag: string): Promise<PullResult> {
  const res = await request(origin, `/v2/${name}/manifests/${tag}`, { accept: 'application/vnd.oci.image.manifest.v1+json' });
  const body = await res.text();
  let error: PullResult['error'] = null;
  if (res.status >= 400) error = (JSON.parse(body) as { errors: NonNullable<PullResult['error']>[] }).errors[0] ?? null;
  return { status: res.status, digest: res.headers.get('docker-content-digest'), body, error };
}

/** Pulls and insists on success: the manifest's digest. */
export async function digestOf(origin: RunningOrigin, name: string, tag: string): Promise<string> {
  const result = await pullManifest(origin, name, tag);
  if (result.status !== 200 || result.digest === null) throw new Error(`pull ${name}:${tag} answered ${result.status}: ${result.body}`);
  return result.digest;
}

/** The image config of a pulled manifest. */
export async function imageConfig(origin: RunningOrigin, name: string, tag: string): Promise<{ architecture: string; os: string }> {
  const result = await pullManifest(origin, name, tag);
  if (result.status !== 200) throw new Error(`pull ${name}:${tag} answered ${result.status}: ${result.body}`);
  const manifest = JSON.parse(result.body) as { config: { digest: string } };
  const res = await request(origin, `/v2/${name}/blobs/${manifest.config.digest}`);
  return (await res.json()) as { architecture: string; os: string };
}

/**
 * How many images the origin built so far (its 'image built' lines). A
 * request's line is logged after anything its build logged, so once every
 * request sent is in the log, so is every build.
 */
export async function builds(origin: RunningOrigin): Promise<number> {
  const expected = sent.get(origin) ?? 0;
  await eventually(() => origin.logs.filter((l) => l.msg === 'request').length >= expected, `${expected} request log lines`);
  return origin.logs.filter((l) => l.msg === 'image built').length;
}
