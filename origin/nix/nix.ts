// Runs Nix: resolves an image's packages, builds them, and reads their
// runtime closure. Every value a client influenced is passed as a separate
// argv entry (--argstr), never through a shell or into Nix source.
import { execa, type ExecaError } from 'execa';
import { fileURLToPath } from 'node:url';
import type { StorePathInfo } from '../layers/graph.ts';
import { parseDumpDb } from './closure.ts';

const IMAGE_NIX = fileURLToPath(new URL('./image.nix', import.meta.url));

/** Where the package set comes from, as image.nix understands it. */
export type NixSource =
  | { type: 'path'; path: string }
  | { type: 'git'; url: string; rev: string; ref?: string }
  | { type: 'tarball'; url: string; sha256?: string };

export interface ResolvedPackage {
  name: string;
  attrPath: string;
  outputs: { drv: string; out: string }[];
}

export type PackageProblem = 'unknown' | 'not-a-package' | 'evaluation-failed';

export interface Resolution {
  packages: ResolvedPackage[];
  problems: { name: string; error: PackageProblem }[];
}

/** A Nix command failed for a reason that is not the client's (build failure, timeout, bad source). */
export class NixError extends Error {
  readonly stderr: string;
  readonly timedOut: boolean;
  constructor(message: string, stderr: string, timedOut: boolean) {
    super(message);
    this.name = 'NixError';
    this.stderr = stderr;
    this.timedOut = timedOut;
  }
}

export interface NixOptions {
  /** Seconds a single Nix command may run. */
  timeoutSeconds: number;
  /** Extra environment (e.g. NIX_CONFIG to disable substituters offline). */
  env?: Record<string, string>;
  /** Called with each line Nix prints on stderr (build progress). */
  onLog?: (line: string) => void;
  /** Aborts the command (graceful shutdown). */
  signal?: AbortSignal;
}

/** Keeps error details readable: the end of Nix's output is where the reason is. */
function tail(text: string, max = 4000): string {
  const trimmed = text.trim();
  return trimmed.length > max ? '…' + trimmed.slice(trimmed.length - max) : trimmed;
}

async function run(command: string, args: string[], options: NixOptions): Promise<string> {
  const child = execa(command, args, {
    timeout: options.timeoutSeconds * 1000,
    env: options.env,
    cancelSignal: options.signal,
    forceKillAfterDelay: 2000,
    stripFinalNewline: false,
    maxBuffer: 256 * 1024 * 1024,
    // Build logs can be long; keep the tail for errors, stream lines to the logger.
    lines: false,
  });
  if (options.onLog && child.stderr) {
    let partial = '';
    child.stderr.on('data', (chunk: Buffer) => {
      const text = partial + chunk.toString('utf8');
      const lines = text.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) options.onLog!(line);
    });
  }
  try {
    const result = await child;
    return result.stdout;
  } catch (err) {
    const e = err as ExecaError;
    const stderr = typeof e.stderr === 'string' ? e.stderr : '';
    if (e.timedOut) throw new NixError(`${command} timed out after ${options.timeoutSeconds} s`, tail(stderr), true);
    if (e.isCanceled) throw new NixError(`${command} was cancelled`, tail(stderr), false);
    if (e.code === 'ENOENT') throw new NixError(`${command} is not installed or not on PATH`, '', false);
    throw new NixError(`${command} failed with exit code ${e.exitCode ?? 'unknown'}`, tail(stderr), false);
  }
}

export async function resolvePackages(source: NixSource, system: string, packages: readonly string[], options: NixOptions): Promise<Resolution> {
  const stdout = await run(
    'nix-instantiate',
    [
      '--eval', '--strict', '--json',
      // Writes the .drv files so nix-build can build them without evaluating again.
      '--read-write-mode',
      IMAGE_NIX,
      '-A', 'resolved',
      '--argstr', 'source', JSON.stringify(source),
      '--argstr', 'packages', JSON.stringify(packages),
      '--argstr', 'system', system,
    ],
    options,
  );
  const raw = JSON.parse(stdout) as ({ name: string; error: PackageProblem } | ResolvedPackage)[];
  const result: Resolution = { packages: [], problems: [] };
  for (const entry of raw) {
    if ('error' in entry) result.problems.push({ name: entry.name, error: entry.error });
    else result.packages.push(entry);
  }
  return result;
}

/** Builds derivations; returns once their outputs are valid in the store. */
export async function buildDerivations(drvPaths: readonly string[], options: NixOptions): Promise<void> {
  if (drvPaths.length === 0) return;
  await run('nix-build', ['--no-out-link', ...drvPaths], options);
}

/** The runtime closure of some store paths, with sizes and references. */
export async function readClosure(paths: readonly string[], options: NixOptions): Promise<StorePathInfo[]> {
  if (paths.length === 0) return [];
  const requisites = (await run('nix-store', ['--query', '--requisites', ...paths], options))
    .split('\n')
    .filter((line) => line.length > 0);
  return parseDumpDb(await run('nix-store', ['--dump-db', ...requisites], options));
}
