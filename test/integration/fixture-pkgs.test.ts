// The bundled package set stands in for nixpkgs in every test that builds an
// image, so these tests hold it to what images need: real builds, real
// runtime references, programs that run with nothing but their closure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, readFile, readlink, readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { execa } from 'execa';
import {
  buildFixture,
  buildFixtureOne,
  closureOf,
  evalWithFixture,
  FIXTURE_PKGS_DIR,
  NIX_ENV,
  narSizeOf,
  referencesOf,
  runInClosureChroot,
  tryBuildFixture,
} from '../support/fixture-pkgs.ts';

const isRoot = process.getuid?.() === 0;
const chrootSkip = isRoot ? false : 'chroot needs root';

/** The package name part of a store path: /nix/store/<hash>-glibc-2.36 -> glibc-2.36. */
function storeName(path: string): string {
  return basename(path).slice(33);
}

test('hello prints the familiar greeting, also in a chroot of its closure', async (t) => {
  const hello = await buildFixtureOne('hello');
  const direct = await execa(join(hello, 'bin/hello'));
  assert.equal(direct.stdout, 'Hello, world!');

  const closure = (await closureOf([hello])).map(storeName);
  assert.ok(closure.some((name) => name.startsWith('glibc-')), `hello depends on the shared glibc: ${closure.join(', ')}`);

  if (!isRoot) return t.skip('chroot needs root');
  const chrooted = await runInClosureChroot([hello], [join(hello, 'bin/hello')]);
  assert.equal(chrooted.exitCode, 0, chrooted.stderr);
  assert.equal(chrooted.stdout, 'Hello, world!\n');
});

test('bash from bashInteractive runs through its patched interpreter in a chroot holding only its closure', { skip: chrootSkip }, async () => {
  const bash = await buildFixtureOne('bashInteractive');
  const interpreter = (await execa('patchelf', ['--print-interpreter', join(bash, 'bin/bash')])).stdout.trim();
  assert.match(interpreter, /^\/nix\/store\/[0-9a-z]{32}-glibc-[^/]+\/lib\/ld-linux/);

  const result = await runInClosureChroot([bash], [join(bash, 'bin/bash'), '-c', 'echo $BASH_VERSION']);
  assert.equal(result.exitCode, 0, result.stderr);
  assert.match(result.stdout, /^5\.\d+\.\d+\(\d+\)-release\n$/);

  const viaSh = await runInClosureChroot([bash], [join(bash, 'bin/sh'), '-c', 'echo ok']);
  assert.equal(viaSh.stdout, 'ok\n');
});

test("the members of Nixery's shell meta-package build with their usual files", async () => {
  const [bash, cacert, coreutils, ianaEtc, moreutils, nano] = await Promise.all(
    ['bashInteractive', 'cacert', 'coreutils', 'iana-etc', 'moreutils', 'nano'].map((attr) => buildFixtureOne(attr)),
  );
  assert.ok(bash && cacert && coreutils && ianaEtc && moreutils && nano);

  assert.equal(await readlink(join(bash, 'bin/sh')), 'bash');
  const bundle = await readFile(join(cacert, 'etc/ssl/certs/ca-bundle.crt'), 'utf8');
  assert.ok(bundle.length > 0);
  assert.equal(await readFile(join(cacert, 'etc/ssl/certs/ca-certificates.crt'), 'utf8'), bundle);
  assert.match(await readFile(join(ianaEtc, 'etc/protocols'), 'utf8'), /^tcp\s+6\s/m);
  assert.match(await readFile(join(ianaEtc, 'etc/services'), 'utf8'), /^https?\s+\d+\/tcp/m);

  for (const program of ['ls', 'cat', 'echo', 'mkdir', 'cp', 'env', 'sort']) {
    const target = await readlink(join(coreutils, 'bin', program));
    assert.match(target, /^\/nix\/store\/[0-9a-z]{32}-busybox-[^/]+\/bin\/busybox$/, `coreutils' ${program}`);
  }
  for (const file of ['bin/sponge', 'bin/ts']) {
    assert.equal((await stat(join(moreutils, file))).mode & 0o777, 0o555, file);
  }
  assert.equal((await stat(join(nano, 'bin/nano'))).mode & 0o777, 0o555);
});

test('coreutils, moreutils and nano run in a chroot of their closure', { skip: chrootSkip }, async () => {
  const [coreutils, moreutils, nano] = await Promise.all(['coreutils', 'moreutils', 'nano'].map((attr) => buildFixtureOne(attr)));
  assert.ok(coreutils && moreutils && nano);
  const roots = [coreutils, moreutils, nano];

  const ls = await runInClosureChroot(roots, [join(coreutils, 'bin/ls'), join(coreutils, 'bin')]);
  assert.equal(ls.exitCode, 0, ls.stderr);
  assert.match(ls.stdout, /^mkdir$/m);

  const sponge = await runInClosureChroot(roots, [join(moreutils, 'bin/sponge')], 'soaked\nup\n');
  assert.equal(sponge.exitCode, 0, sponge.stderr);
  assert.equal(sponge.stdout, 'soaked\nup\n');

  const ts = await runInClosureChroot(roots, [join(moreutils, 'bin/ts'), '%Y'], 'a line\n');
  assert.equal(ts.exitCode, 0, ts.stderr);
  assert.match(ts.stdout, /^\d{4} a line\n$/);

  const version = await runInClosureChroot(roots, [join(nano, 'bin/nano'), '--version']);
  // Debian's nano when it was installed at build time, else the stand-in.
  if (version.exitCode === 0) assert.match(version.stdout, /GNU nano, version/);
  else assert.match(version.stderr, /nano: stand-in/);
});

test('bigPackage holds more than 30 MB of incompressible data', async () => {
  const big = await buildFixtureOne('bigPackage');
  const size = await narSizeOf(big);
  assert.ok(size >= 30_000_000 && size <= 40_000_000, `narSize ${size}`);

  const sample = (await readFile(join(big, 'share/big-package/data-02.bin'))).subarray(0, 1 << 20);
  assert.equal(sample.length, 1 << 20);
  assert.ok(gzipSync(sample).length > sample.length * 0.99, 'gzip shrinks the data');
});

test('brokenPackage fails to build and says why', async () => {
  const result = await tryBuildFixture('brokenPackage');
  assert.notEqual(result.exitCode, 0);
  assert.match(result.stderr, /brokenPackage: this package is broken on purpose/);
  assert.match(result.stderr, /builder for '\/nix\/store\/[0-9a-z]{32}-broken-package-1\.0\.drv' failed/);

  const dependent = await tryBuildFixture('dependsOnBrokenPackage');
  assert.notEqual(dependent.exitCode, 0);
  assert.match(dependent.stderr, /dependencies of derivation .* failed to build/);
});

test('python3Packages.requests is reached through a nested attribute path and depends on python3', async () => {
  const requests = await buildFixtureOne('python3Packages.requests');
  assert.match(storeName(requests), /^python3\.11-requests-2\.28\.1$/);
  const init = await readFile(join(requests, 'lib/python3/site-packages/requests/__init__.py'), 'utf8');
  assert.match(init, /__version__ = "2\.28\.1"/);

  const references = (await referencesOf(requests)).map(storeName);
  for (const dependency of ['python3-3.11.2', 'python3.11-urllib3-1.26.12', 'python3.11-idna-3.3', 'python3.11-certifi-2022.9.24']) {
    assert.ok(references.includes(dependency), `requests references ${dependency}: ${references.join(', ')}`);
  }
  const closure = (await closureOf([requests])).map(storeName);
  assert.ok(closure.some((name) => name.startsWith('nss-cacert-')), 'certifi brings in cacert');
});

test('fooBar builds from a capitalised attribute and holds the file-system cases layers must keep', async () => {
  const fooBar = await buildFixtureOne('fooBar');
  assert.equal(storeName(fooBar), 'foo-bar-1.0');
  const dir = join(fooBar, 'share/foo-bar');

  assert.equal((await stat(join(fooBar, 'bin/foo-bar'))).mode & 0o777, 0o555);
  assert.equal((await stat(join(dir, 'data.txt'))).mode & 0o777, 0o444);
  assert.equal((await stat(join(dir, 'empty-file'))).size, 0);
  assert.deepEqual(await readdir(join(dir, 'empty-dir')), []);

  const a = await stat(join(dir, 'hardlink-a.txt'));
  const b = await stat(join(dir, 'hardlink-b.txt'));
  assert.equal(a.ino, b.ino, 'hard links share an inode');
  assert.equal(a.nlink, 2);

  const names = await readdir(dir);
  assert.ok(names.some((name) => name.length > 100), 'a file name longer than 100 bytes');
  assert.ok(names.includes('name with spaces.txt'));

  const deepFiles: string[] = [];
  async function walk(path: string): Promise<void> {
    for (const entry of await readdir(path, { withFileTypes: true })) {
      const child = join(path, entry.name);
      if (entry.isDirectory()) await walk(child);
      else deepFiles.push(child.slice(fooBar.length + 1));
    }
  }
  await walk(dir);
  assert.ok(deepFiles.some((path) => path.length > 155 && path.length < 200), 'a path that needs the ustar prefix field');
  assert.ok(deepFiles.some((path) => path.length > 255), 'a path too long for ustar at all');

  assert.equal(await readlink(join(dir, 'relative-link')), '../../bin/foo-bar');
  assert.equal(await readlink(join(dir, 'dir-link')), '../doc/foo-bar');
  assert.ok((await stat(join(dir, 'dir-link'))).isDirectory());
  assert.equal(await readlink(join(dir, 'self-absolute-link')), join(dir, 'data.txt'));
  assert.match(await readlink(join(dir, 'store-absolute-link')), /^\/nix\/store\/[0-9a-z]{32}-busybox-/);
  assert.equal(await readlink(join(dir, 'dangling-link')), '/etc/foo-bar/foo-bar.conf');
  assert.ok((await lstat(join(dir, 'dangling-link'))).isSymbolicLink());

  const references = (await referencesOf(fooBar)).map(storeName);
  assert.deepEqual(references.sort(), ['busybox-1.35.0', 'foo-bar-1.0'], 'links count as references, itself included');
});

test('the closures of git and htop share the base, and shell images overlap with them', async () => {
  const [git, htop, jq, bash, coreutils] = await Promise.all(
    ['git', 'htop', 'jq', 'bashInteractive', 'coreutils'].map((attr) => buildFixtureOne(attr)),
  );
  assert.ok(git && htop && jq && bash && coreutils);
  const gitClosure = new Set(await closureOf([git]));
  const htopClosure = await closureOf([htop]);
  const shared = htopClosure.filter((path) => gitClosure.has(path)).map(storeName).sort();
  for (const name of ['bash-interactive-5.2.15', 'glibc-2.36', 'ncurses-6.4']) {
    assert.ok(shared.includes(name), `git and htop share ${name}: ${shared.join(', ')}`);
  }
  assert.ok(gitClosure.size >= 8, `git's closure is a real tree: ${gitClosure.size} paths`);

  const shell = new Set(await closureOf([bash, coreutils]));
  const jqClosure = await closureOf([jq]);
  assert.ok(jqClosure.some((path) => shell.has(path)), 'jq shares glibc with the shell');
});

test('git, jq and htop run in a chroot of their closure', { skip: chrootSkip }, async () => {
  const [git, jq, htop] = await Promise.all(['git', 'jq', 'htop'].map((attr) => buildFixtureOne(attr)));
  assert.ok(git && jq && htop);
  const roots = [git, jq, htop];

  const gitVersion = await runInClosureChroot(roots, [join(git, 'bin/git'), '--version']);
  if (gitVersion.exitCode === 0) assert.match(gitVersion.stdout, /^git version 2\./);
  else assert.match(gitVersion.stderr, /git: stand-in/);

  const filtered = await runInClosureChroot(roots, [join(jq, 'bin/jq'), '-c', '.a'], '{"a":[1,2]}');
  if (filtered.exitCode === 0) assert.equal(filtered.stdout, '[1,2]\n');
  else assert.match(filtered.stderr, /jq: stand-in/);

  const htopVersion = await runInClosureChroot(roots, [join(htop, 'bin/htop'), '--version']);
  if (htopVersion.exitCode === 0) assert.match(htopVersion.stdout, /^htop 3\./);
  else assert.match(htopVersion.stderr, /htop: stand-in/);
});

test('jq is split into outputs like nixpkgs and an image installs its bin output', async () => {
  const outputs = await buildFixture('jq');
  assert.equal(outputs.length, 1);
  assert.match(outputs[0] ?? '', /-jq-1\.6-bin$/);

  const meta = await evalWithFixture('{ inherit (pkgs.jq) outputs; install = pkgs.jq.meta.outputsToInstall; }');
  assert.equal(meta.exitCode, 0, meta.stderr);
  assert.deepEqual(JSON.parse(meta.stdout), { outputs: ['bin', 'lib', 'out'], install: ['bin'] });

  const closure = (await closureOf(outputs)).map(storeName);
  assert.ok(closure.includes('jq-1.6-lib'), 'bin needs lib at run time');
  assert.ok(!closure.includes('jq-1.6'), 'the documentation output stays out of the image');
});

test('unfreePackage refuses to evaluate unless config.allowUnfree is set', async () => {
  const refused = await evalWithFixture('pkgs.unfreePackage.drvPath');
  assert.notEqual(refused.exitCode, 0);
  assert.match(refused.stderr, /has an unfree license, refusing to evaluate/);

  const allowed = await evalWithFixture('pkgs.unfreePackage.outPath', '{ config = { allowUnfree = true; }; }');
  assert.equal(allowed.exitCode, 0, allowed.stderr);
  assert.match(JSON.parse(allowed.stdout) as string, /-unfree-package-1\.0$/);
});

test('removedPackage throws like a removed nixpkgs alias, and lib is not a package', async () => {
  const removed = await evalWithFixture('pkgs.removedPackage');
  assert.notEqual(removed.exitCode, 0);
  assert.match(removed.stderr, /removedPackage has been removed/);

  const lib = await evalWithFixture('pkgs.lib.type or "not a derivation"');
  assert.equal(JSON.parse(lib.stdout), 'not a derivation');
});

test('overlays replace a dependency for every package that uses it', async () => {
  const overlay = '(final: prev: { zlib = prev.runCommand "zlib-from-overlay" { } "mkdir $out"; })';
  const result = await evalWithFixture(
    `{
      zlib = pkgs.zlib.name;
      gitUsesIt = builtins.any (arg: builtins.match ".*-zlib-from-overlay/lib.*" arg != null) pkgs.git.drvAttrs.args;
    }`,
    `{ overlays = [ ${overlay} ]; }`,
  );
  assert.equal(result.exitCode, 0, result.stderr);
  assert.deepEqual(JSON.parse(result.stdout), { zlib: 'zlib-from-overlay', gitUsesIt: true });
});

test('the set is called like nixpkgs and its builds are deterministic', async () => {
  const buildable = join(FIXTURE_PKGS_DIR, 'buildable.nix');
  const env = NIX_ENV;
  const built = await execa('nix-build', ['--no-out-link', buildable], { env });
  const paths = built.stdout.split('\n').filter(Boolean);
  assert.ok(paths.length >= 25, `${paths.length} outputs`);

  // --check rebuilds every path and fails if any output differs bit for bit.
  const check = await execa('nix-build', ['--no-out-link', '--check', buildable], { env, reject: false });
  assert.equal(check.exitCode, 0, String(check.stderr).slice(-4000));

  const called = await evalWithFixture('pkgs.hello.name', '{ system = "x86_64-linux"; config = { }; overlays = [ ]; }');
  assert.equal(JSON.parse(called.stdout), 'hello-2.10');
});
