// What every image holds besides its packages (the symlink layer's base
// files) and what it runs by default.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, writeFile, symlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { extract } from 'tar-stream';
import { addBaseFiles, BASE_ETC_FILES, symlinkTreeEntries, symlinkTreeId, type Tree } from '../../origin/layers/symlink-tree.ts';
import { layerId } from '../../origin/layers/group.ts';
import { writeLayerTarball } from '../../origin/layers/tarball.ts';
import type { TarEntry } from '../../origin/layers/entries.ts';
import { defaultCommand } from '../../origin/image/default-command.ts';
import { buildManifests, imageConfig } from '../../origin/image/manifest.ts';
import { SHELL_PACKAGES } from '../../shared/names.ts';
import type { ResolvedPackage } from '../../origin/nix/nix.ts';

const ETC = { 'etc/passwd': '/src/passwd', 'etc/group': '/src/group', 'etc/nsswitch.conf': '/src/nsswitch.conf' };

function summary(tree: Tree): Record<string, string> {
  return Object.fromEntries(
    [...tree].map(([path, node]) => [
      path,
      node.kind === 'directory' ? `dir ${node.mode.toString(8)}` : node.kind === 'symlink' ? `-> ${node.target}` : `file ${node.mode.toString(8)} ${node.source}`,
    ]),
  );
}

test('base files: /tmp is a sticky world-writable directory, whatever a package put there', () => {
  for (const before of [undefined, { kind: 'symlink', target: '/nix/store/x-p/tmp' }, { kind: 'directory', mode: 0o755 }] as const) {
    const tree: Tree = new Map();
    if (before) tree.set('tmp', before);
    if (before?.kind === 'directory') tree.set('tmp/keep', { kind: 'symlink', target: '/nix/store/x-p/tmp/keep' });
    addBaseFiles(tree, { env: null, etc: ETC });
    assert.deepEqual(tree.get('tmp'), { kind: 'directory', mode: 0o1777 });
    if (before?.kind === 'directory') assert.ok(tree.has('tmp/keep'), "a package's files under tmp/ stay");
  }
});

test('base files: /usr/bin/env only when the image has an env, and a package\'s own usr/bin/env wins', () => {
  const without: Tree = new Map();
  addBaseFiles(without, { env: null, etc: ETC });
  assert.ok(![...without.keys()].some((p) => p.startsWith('usr')), 'no /usr at all without an env');

  const withEnv: Tree = new Map();
  addBaseFiles(withEnv, { env: '/nix/store/c-coreutils/bin/env', etc: ETC });
  assert.deepEqual(summary(withEnv), {
    tmp: 'dir 1777',
    usr: 'dir 755',
    'usr/bin': 'dir 755',
    'usr/bin/env': '-> /nix/store/c-coreutils/bin/env',
    etc: 'dir 755',
    'etc/passwd': 'file 644 /src/passwd',
    'etc/group': 'file 644 /src/group',
    'etc/nsswitch.conf': 'file 644 /src/nsswitch.conf',
    root: 'dir 700',
  });

  const own: Tree = new Map([
    ['usr', { kind: 'directory', mode: 0o755 }],
    ['usr/bin', { kind: 'directory', mode: 0o755 }],
    ['usr/bin/env', { kind: 'symlink', target: '/nix/store/o-own/usr/bin/env' }],
  ]);
  addBaseFiles(own, { env: '/nix/store/c-coreutils/bin/env', etc: ETC });
  assert.deepEqual(own.get('usr/bin/env'), { kind: 'symlink', target: '/nix/store/o-own/usr/bin/env' });

  const linkedUsr: Tree = new Map([['usr', { kind: 'symlink', target: '/nix/store/o-own/usr' }]]);
  addBaseFiles(linkedUsr, { env: '/nix/store/c-coreutils/bin/env', etc: ETC });
  assert.ok(!linkedUsr.has('usr/bin/env'), 'nothing is put under a package\'s symlinked /usr');
});

test("base files: a package's /etc/passwd, /etc/group and /etc/nsswitch.conf win over ours, each on its own", () => {
  const tree: Tree = new Map([
    ['etc', { kind: 'directory', mode: 0o755 }],
    ['etc/passwd', { kind: 'symlink', target: '/nix/store/p-users/etc/passwd' }],
  ]);
  addBaseFiles(tree, { env: null, etc: ETC });
  assert.deepEqual(tree.get('etc/passwd'), { kind: 'symlink', target: '/nix/store/p-users/etc/passwd' });
  assert.deepEqual(tree.get('etc/group'), { kind: 'file', source: '/src/group', mode: 0o644 });
  assert.deepEqual(tree.get('etc/nsswitch.conf'), { kind: 'file', source: '/src/nsswitch.conf', mode: 0o644 });

  const linkedEtc: Tree = new Map([['etc', { kind: 'symlink', target: '/nix/store/e-etc/etc' }]]);
  addBaseFiles(linkedEtc, { env: null, etc: ETC });
  assert.deepEqual([...linkedEtc.keys()].filter((p) => p.startsWith('etc')), ['etc'], 'a package that links all of /etc owns it');
});

test('the base passwd and group name root (0) and nobody (65534), and name service reads files', async () => {
  const passwd = (await readFile(BASE_ETC_FILES['etc/passwd']!, 'utf8')).trim().split('\n').map((l) => l.split(':'));
  assert.deepEqual(passwd.map((f) => [f[0], f[2], f[3], f[5]]), [['root', '0', '0', '/root'], ['nobody', '65534', '65534', '/var/empty']]);
  assert.ok(passwd.every((f) => f.length === 7));
  const group = (await readFile(BASE_ETC_FILES['etc/group']!, 'utf8')).trim().split('\n').map((l) => l.split(':'));
  assert.deepEqual(group.map((f) => [f[0], f[2]]), [['root', '0'], ['nobody', '65534']]);
  assert.match(await readFile(BASE_ETC_FILES['etc/nsswitch.conf']!, 'utf8'), /^passwd: files$/m);
});

class Collect extends Writable {
  chunks: Buffer[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.chunks.push(chunk);
    cb();
  }
}

/** The layer as it is written: tar headers (mode included) and contents. */
async function writtenLayer(entries: TarEntry[]): Promise<Map<string, { type: string; mode: number; linkname: string | null; content: string }>> {
  const sink = new Collect();
  await writeLayerTarball(entries, sink);
  const out = new Map<string, { type: string; mode: number; linkname: string | null; content: string }>();
  const ex = extract();
  ex.on('entry', (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: unknown) => chunks.push(c as Buffer));
    stream.on('end', () => {
      out.set(header.name, { type: header.type ?? '', mode: header.mode ?? 0, linkname: header.linkname ?? null, content: Buffer.concat(chunks).toString() });
      next();
    });
  });
  await new Promise<void>((resolve, reject) => {
    ex.on('finish', resolve).on('error', reject);
    Readable.from(gunzipSync(Buffer.concat(sink.chunks))).pipe(ex);
  });
  return out;
}

test('the symlink layer links /usr/bin/env to the env /bin/env is, and has none when no package has one that resolves', async () => {
  const root = await mkdtemp(join(tmpdir(), 'layer-base-'));
  try {
    const tools = join(root, '1111-tools');
    const other = join(root, '2222-other');
    const dangling = join(root, '3333-dangling');
    const linkedBin = join(root, '4444-linked-bin');
    await mkdir(join(tools, 'bin'), { recursive: true });
    await writeFile(join(tools, 'bin', 'busybox'), '#!fake');
    await symlink(join(tools, 'bin', 'busybox'), join(tools, 'bin', 'env'));
    await mkdir(join(other, 'bin'), { recursive: true });
    await writeFile(join(other, 'bin', 'env'), 'second');
    await mkdir(join(dangling, 'bin'), { recursive: true });
    await symlink(join(root, 'nowhere'), join(dangling, 'bin', 'env'));
    await mkdir(join(root, '5555-bin-target'), { recursive: true });
    await writeFile(join(root, '5555-bin-target', 'env'), 'via a linked bin/');
    await mkdir(linkedBin);
    await symlink(join(root, '5555-bin-target'), join(linkedBin, 'bin'));

    const envOf = async (outputs: string[]) => (await symlinkTreeEntries(outputs)).find((e) => e.name === 'usr/bin/env');
    assert.deepEqual(await envOf([tools, other]), { type: 'symlink', name: 'usr/bin/env', linkname: `${tools}/bin/env` });
    assert.deepEqual(await envOf([other, tools]), { type: 'symlink', name: 'usr/bin/env', linkname: `${other}/bin/env` }, 'the same env as /bin/env: the first package wins');
    assert.equal(await envOf([dangling]), undefined, 'a dangling bin/env is no env');
    assert.equal(await envOf([join(root, '5555-bin-target')]), undefined, 'env outside bin/ is not an env program');
    assert.deepEqual(await envOf([linkedBin]), { type: 'symlink', name: 'usr/bin/env', linkname: `${linkedBin}/bin/env` }, 'through a package whose bin/ is one link');

    const layer = await writtenLayer(await symlinkTreeEntries([tools]));
    assert.equal(layer.get('tmp/')?.type, 'directory');
    assert.equal(layer.get('tmp/')?.mode, 0o1777, 'the tar header keeps the sticky bit');
    assert.equal(layer.get('root/')?.mode, 0o700);
    assert.equal(layer.get('etc/passwd')?.type, 'file');
    assert.equal(layer.get('etc/passwd')?.mode, 0o644);
    assert.match(layer.get('etc/passwd')!.content, /^root:x:0:0:/);
    assert.ok(![...layer.keys()].some((name) => name.startsWith('nix/')), 'the symlink layer holds no store paths');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("a package's own etc/passwd is what the image's /etc/passwd links to", async () => {
  const root = await mkdtemp(join(tmpdir(), 'layer-etc-'));
  try {
    const users = join(root, '1111-users');
    await mkdir(join(users, 'etc'), { recursive: true });
    await writeFile(join(users, 'etc', 'passwd'), 'app:x:1000:1000::/home/app:/bin/sh\n');
    const entries = await symlinkTreeEntries([users]);
    assert.deepEqual(entries.find((e) => e.name === 'etc/passwd'), { type: 'symlink', name: 'etc/passwd', linkname: `${users}/etc/passwd` });
    assert.equal(entries.find((e) => e.name === 'etc/group')?.type, 'file', 'ours fills what the package does not ship');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('the symlink layer has an identity of its own, which depends on the packages and their order', () => {
  const outputs = ['/nix/store/a-one', '/nix/store/b-two'];
  assert.equal(symlinkTreeId(outputs), symlinkTreeId([...outputs]));
  assert.notEqual(symlinkTreeId(outputs), symlinkTreeId([...outputs].reverse()), 'the first package wins collisions, so order is content');
  assert.notEqual(symlinkTreeId(outputs), layerId(outputs));
  assert.notEqual(symlinkTreeId(outputs), layerId(outputs.map((o) => `symlink-tree:${o}`)), 'not the identity an older origin gave the layer without base files');
});

const pkg = (attrPath: string, extra: Partial<ResolvedPackage> = {}): ResolvedPackage => ({
  name: attrPath.toLowerCase(),
  attrPath,
  outputs: [{ drv: `/nix/store/x-${attrPath}.drv`, out: `/nix/store/x-${attrPath}` }],
  base: attrPath === 'cacert' || attrPath === 'iana-etc',
  ...extra,
});
const base = [pkg('cacert'), pkg('iana-etc')];

test('default command: bash with shell, else the one named package\'s mainProgram, else none', () => {
  const shell = [...SHELL_PACKAGES, 'hello'].sort();
  assert.deepEqual(defaultCommand(shell, [...shell.map((p) => pkg(p)), pkg('hello', { mainProgram: 'hello' })]), ['bash'], 'shell wins over a mainProgram');
  assert.deepEqual(defaultCommand([...SHELL_PACKAGES], SHELL_PACKAGES.map((p) => pkg(p))), ['bash']);

  assert.deepEqual(defaultCommand(['hello'], [pkg('hello', { mainProgram: 'hello' }), ...base]), ['hello']);
  assert.deepEqual(defaultCommand(['cacert', 'hello'], [pkg('hello', { mainProgram: 'hello' }), ...base]), ['hello'], 'naming a base package changes nothing');
  assert.deepEqual(defaultCommand(['hello', 'hello'], [pkg('hello', { mainProgram: 'hello' }), pkg('hello', { mainProgram: 'hello' }), ...base]), ['hello'], 'two names for one package');
  assert.equal(defaultCommand(['curl', 'jq'], [pkg('curl', { mainProgram: 'curl' }), pkg('jq', { mainProgram: 'jq' }), ...base]), undefined, 'two packages: no guess');
  assert.equal(defaultCommand(['coreutils'], [pkg('coreutils'), ...base]), undefined, 'no mainProgram');
  assert.equal(defaultCommand(['bashinteractive', 'coreutils'], [pkg('bashInteractive', { mainProgram: 'bash' }), pkg('coreutils'), ...base]), undefined, 'not the shell meta-package');
  assert.deepEqual(defaultCommand(['bashinteractive'], [pkg('bashInteractive', { mainProgram: 'bash' }), ...base]), ['bash']);
  assert.equal(defaultCommand(['cacert'], base), undefined);
  for (const bad of ['', '../../bin/sh', 'bin/x', '.', '..', 'a\0b', 'x'.repeat(256)]) {
    assert.equal(defaultCommand(['odd'], [pkg('odd', { mainProgram: bad }), ...base]), undefined, JSON.stringify(bad));
  }
});

test('the config names the CA bundle for OpenSSL and Nix-built programs, and Cmd only when there is a default command', async () => {
  const layers = [{ digest: `sha256:${'1'.repeat(64)}` as const, diffId: `sha256:${'2'.repeat(64)}` as const, size: 1, description: 'x' }];
  const withCmd = imageConfig({ arch: 'amd64', layers, packages: ['hello'], cmd: ['hello'] }) as { config: { Env: string[]; Cmd?: string[] } };
  assert.deepEqual(withCmd.config.Cmd, ['hello']);
  assert.ok(withCmd.config.Env.includes('SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt'));
  assert.ok(withCmd.config.Env.includes('NIX_SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt'));
  const without = imageConfig({ arch: 'amd64', layers, packages: ['curl', 'jq'] }) as { config: Record<string, unknown> };
  assert.ok(!('Cmd' in without.config), 'no Cmd key at all: clients then say "no command specified"');
  const a = await buildManifests({ arch: 'amd64', layers, packages: ['hello'], cmd: ['hello'] });
  const b = await buildManifests({ arch: 'amd64', layers, packages: ['hello'] });
  assert.notEqual(a.config.digest, b.config.digest);
});
