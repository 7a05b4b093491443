// Builds attributes of the bundled package set (bundled-pkgs) and
// inspects the results, for tests that need real store paths without nixpkgs.
import { execa } from 'execa';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nixEnvironment } from '../../origin/nix/settings.ts';

export const FIXTURE_PKGS_DIR = fileURLToPath(new URL('../../bundled-pkgs/', import.meta.url));

/**
 * The origin's own Nix settings (origin/nix/settings.ts), offline: without
 * `substituters =` every Nix command first spends 5 s trying cache.nixos.org.
 */
export const NIX_ENV = nixEnvironment({ NIX_CONFIG: 'substituters =' });

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

async function run(file: string, args: readonly string[], input?: string): Promise<CommandResult> {
  const result = await execa(file, args, {
    env: NIX_ENV,
    reject: false,
    timeout: 300_000,
    stripFinalNewline: false,
    ...(input === undefined ? {} : { input }),
  });
  return {
    exitCode: result.exitCode ?? -1,
    stdout: String(result.stdout),
    stderr: String(result.stderr),
  };
}

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line.length > 0);
}

/** nix-build of one attribute path, whatever the outcome. */
export async function tryBuildFixture(attrPath: string, extraArgs: readonly string[] = []): Promise<CommandResult> {
  return run('nix-build', ['--no-out-link', FIXTURE_PKGS_DIR, '-A', attrPath, ...extraArgs]);
}

/** Builds one attribute path; resolves to the output paths nix-build prints. */
export async function buildFixture(attrPath: string): Promise<string[]> {
  const result = await tryBuildFixture(attrPath);
  if (result.exitCode !== 0) {
    throw new Error(`nix-build -A ${attrPath} failed (exit ${result.exitCode}):\n${result.stderr.slice(-4000)}`);
  }
  return lines(result.stdout);
}

/** Builds one attribute path that has a single output (or whose first output is wanted). */
export async function buildFixtureOne(attrPath: string): Promise<string> {
  const [first] = await buildFixture(attrPath);
  if (first === undefined) throw new Error(`nix-build -A ${attrPath} printed no output path`);
  return first;
}

/** Evaluates a Nix expression in which `pkgs` is the fixture set (built with `pkgsArgs`). */
export async function evalWithFixture(expression: string, pkgsArgs = '{ }'): Promise<CommandResult> {
  const source = `let pkgs = import ${JSON.stringify(FIXTURE_PKGS_DIR)} ${pkgsArgs}; in ${expression}`;
  return run('nix-instantiate', ['--eval', '--strict', '--json', '--expr', source]);
}

async function nixStore(args: readonly string[]): Promise<string> {
  const result = await run('nix-store', args);
  if (result.exitCode !== 0) throw new Error(`nix-store ${args.join(' ')} failed:\n${result.stderr}`);
  return result.stdout;
}

/** The runtime closure of some store paths (nix-store -qR). */
export async function closureOf(paths: readonly string[]): Promise<string[]> {
  return lines(await nixStore(['--query', '--requisites', ...paths]));
}

/** Direct runtime references of one store path. */
export async function referencesOf(path: string): Promise<string[]> {
  return lines(await nixStore(['--query', '--references', path]));
}

/** The size of a store path's NAR serialisation, in bytes. */
export async function narSizeOf(path: string): Promise<number> {
  return Number((await nixStore(['--query', '--size', path])).trim());
}

/**
 * Runs a command in a chroot that holds nothing but the closure of `roots`
 * (and /dev/null, which git insists on), proving the programs need nothing
 * from the host. Needs root.
 */
export async function runInClosureChroot(roots: readonly string[], command: readonly string[], input?: string): Promise<CommandResult> {
  const dir = await mkdtemp(join(tmpdir(), 'fixture-chroot-'));
  try {
    await mkdir(join(dir, 'nix/store'), { recursive: true });
    await mkdir(join(dir, 'dev'));
    const closure = await closureOf(roots);
    const copy = await run('cp', ['-a', ...closure, join(dir, 'nix/store')]);
    if (copy.exitCode !== 0) throw new Error(`copying the closure failed:\n${copy.stderr}`);
    const node = await run('mknod', [join(dir, 'dev/null'), 'c', '1', '3']);
    if (node.exitCode !== 0) throw new Error(`mknod /dev/null failed:\n${node.stderr}`);
    return await run('chroot', [dir, ...command], input);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
