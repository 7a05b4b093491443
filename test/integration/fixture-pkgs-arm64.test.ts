// The bundled package set for aarch64-linux: Debian's arm64 programs patched
// into the store by x86_64 builders, run here under qemu in a chroot holding
// only their closure. A machine that cannot do this fails these tests saying
// why (test/support/arm64.ts); only the last test needs none of it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { buildFixtureOne, closureOf, FIXTURE_PKGS_DIR, NIX_ENV, runInClosureChroot, tryBuildFixture } from '../support/fixture-pkgs.ts';
import { elfMachine, requireArm64 } from '../support/arm64.ts';

const AARCH64 = ['--argstr', 'system', 'aarch64-linux', '--option', 'extra-platforms', 'aarch64-linux'];

async function buildArm64(attr: string): Promise<string> {
  const result = await tryBuildFixture(attr, AARCH64);
  if (result.exitCode !== 0) throw new Error(`nix-build -A ${attr} for aarch64-linux failed:\n${result.stderr.slice(-4000)}`);
  const [path] = result.stdout.split('\n').filter(Boolean);
  assert.ok(path, `nix-build -A ${attr} printed no output path`);
  return path;
}

test("aarch64-linux hello, bash and coreutils are Debian's arm64 programs and run under qemu in a chroot of their closure", { timeout: 180_000 }, async () => {
  await requireArm64();
  const [hello, bash, coreutils, nano] = await Promise.all(['hello', 'bashInteractive', 'coreutils', 'nano'].map(buildArm64));
  assert.ok(hello && bash && coreutils && nano);
  for (const program of [join(hello, 'bin/hello'), join(bash, 'bin/bash'), join(coreutils, 'bin/ls'), join(nano, 'bin/.nano-wrapped')]) {
    assert.equal(await elfMachine(program), 'aarch64', program);
  }
  const interpreter = (await execa('patchelf', ['--print-interpreter', join(hello, 'bin/hello')])).stdout.trim();
  assert.match(interpreter, /^\/nix\/store\/[0-9a-z]{32}-glibc-2\.36\/lib\/ld-linux-aarch64\.so\.1$/);
  assert.equal(await elfMachine(interpreter), 'aarch64');

  const roots = [hello, bash, coreutils, nano];
  const greeting = await runInClosureChroot(roots, [join(hello, 'bin/hello')]);
  assert.equal(greeting.exitCode, 0, greeting.stderr);
  assert.equal(greeting.stdout, 'Hello, world!\n');

  const arithmetic = await runInClosureChroot(roots, [join(bash, 'bin/sh'), '-c', 'echo $((6*7)) $BASH_VERSION']);
  assert.equal(arithmetic.exitCode, 0, arithmetic.stderr);
  assert.match(arithmetic.stdout, /^42 5\.2\.\d+\(\d+\)-release\n$/);

  const ls = await runInClosureChroot(roots, [join(coreutils, 'bin/ls'), join(coreutils, 'bin')]);
  assert.equal(ls.exitCode, 0, ls.stderr);
  assert.match(ls.stdout, /^mkdir$/m);

  const version = await runInClosureChroot(roots, [join(nano, 'bin/nano'), '--version']);
  assert.equal(version.exitCode, 0, version.stderr);
  assert.match(version.stdout, /GNU nano, version 7\./);
});

test('each system has its own glibc, busybox, cacert and iana-etc: other store paths, and the data files are the same', { timeout: 180_000 }, async () => {
  await requireArm64();
  for (const attr of ['cacert', 'iana-etc', 'busybox', 'glibc']) {
    const [amd64, arm64] = [await buildFixtureOne(attr), await buildArm64(attr)];
    assert.notEqual(arm64, amd64, attr);
    assert.equal(arm64.slice(44), amd64.slice(44), `${attr} keeps its name`);
  }
  const [cacert, ianaEtc] = [await buildArm64('cacert'), await buildArm64('iana-etc')];
  assert.equal(await readFile(join(cacert, 'etc/ssl/certs/ca-bundle.crt'), 'utf8'), await readFile('/etc/ssl/certs/ca-certificates.crt', 'utf8'));
  assert.equal(await readlink(join(cacert, 'etc/ssl/certs/ca-certificates.crt')), 'ca-bundle.crt');
  assert.match(await readFile(join(ianaEtc, 'etc/services'), 'utf8'), /^https\s+443\/tcp/m);

  const hello = await buildArm64('hello');
  const closure = await closureOf([hello]);
  assert.deepEqual(closure.map((p) => p.slice(44)).sort(), ['glibc-2.36', 'hello-2.10']);
  const busybox = await buildArm64('busybox');
  assert.equal(await elfMachine(join(busybox, 'bin/busybox')), 'aarch64');
  assert.equal(await readlink(join(busybox, 'bin/ls')), 'busybox');
});

test("without Debian's arm64 packages the set still evaluates for aarch64-linux, and Nix without extra-platforms refuses to build it", { timeout: 180_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'fixture-no-arm64-'));
  try {
    await cp(FIXTURE_PKGS_DIR, dir, { recursive: true });
    await writeFile(join(dir, 'arm64.nix'), '"/nonexistent/debian-arm64"\n');
    const expression = `map (p: p.drvPath) (with import ${JSON.stringify(dir)} { system = "aarch64-linux"; }; [ hello bashInteractive coreutils cacert iana-etc nano ])`;
    const evaluated = await execa('nix-instantiate', ['--eval', '--strict', '--json', '--expr', expression], { env: NIX_ENV, reject: false });
    assert.equal(evaluated.exitCode, 0, String(evaluated.stderr));
    assert.equal((JSON.parse(evaluated.stdout) as string[]).length, 6);

    const refused = await execa('nix-build', ['--no-out-link', dir, '--argstr', 'system', 'aarch64-linux', '-A', 'hello'], { env: NIX_ENV, reject: false });
    assert.notEqual(refused.exitCode, 0);
    assert.match(String(refused.stderr), /a 'aarch64-linux' with features \{[^}]*\} is required to build/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
