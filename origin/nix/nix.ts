// Runs Nix: resolves an image's packages, builds them, and reads their
// runtime closure. Every value a client influenced is passed as a separate
// argv entry (--argstr), never through a shell or into Nix source.
import { fileURLToPath } from 'node:url';
import type { StorePathInfo } from '../layers/graph.ts';
import { parseDumpDb } from './closure.ts';
import { redactCredentials } from '../sources/redact.ts';
import { originNixConfig } from './settings.ts';
import { terminateTree } from './process-tree.ts';
import { LaunchError, sharedLauncher, type LaunchedProcess, type ProcessLauncher } from './process-launcher.ts';

const IMAGE_NIX = fileURLToPath(new URL('./image.nix', import.meta.url));
const FETCH_NIX = fileURLToPath(new URL('./fetch.nix', import.meta.url));
const INDEX_NIX = fileURLToPath(new URL('./index.nix', import.meta.url));

/** Where the package set comes from, as image.nix understands it. */
export type NixSource =
  | { type: 'path'; path: string }
  | { type: 'git'; url: string; rev: string; ref?: string; allRefs?: boolean }
  | { type: 'tarball'; url: string; sha256?: string };

export interface ResolvedPackage {
  name: string;
  attrPath: string;
  outputs: { drv: string; out: string }[];
  /** The package's meta.mainProgram, when it declares one (a string; not checked here). */
  mainProgram?: string;
  /** One of the packages every image carries (cacert, iana-etc), whether named or added by image.nix. */
  base: boolean;
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
  /** Null when the command did not run to an exit (not installed, cancelled, timed out). */
  readonly exitCode: number | null;
  constructor(message: string, stderr: string, timedOut: boolean, exitCode: number | null = null) {
    super(message);
    this.name = 'NixError';
    this.stderr = stderr;
    this.timedOut = timedOut;
    this.exitCode = exitCode;
  }
}

/**
 * The package source could not be fetched (unknown commit, unreachable URL,
 * download failed or timed out): the tag names nothing this origin can get,
 * which is the source's problem, not a failed build.
 */
export class NixFetchError extends NixError {
  /** Nix's (or git's) own words: the last error line. */
  readonly reason: string;
  constructor(cause: NixError) {
    const reason = cause.timedOut ? cause.message : lastErrorLine(cause.stderr) ?? cause.message;
    super(`cannot fetch the package set: ${reason}`, cause.stderr, cause.timedOut, cause.exitCode);
    this.name = 'NixFetchError';
    this.reason = reason;
  }
}

/** A derivation needs a system (or features) no builder of this machine offers, e.g. aarch64-linux on x86_64. */
export class NixSystemError extends NixError {
  readonly requiredSystem: string;
  readonly localSystem: string;
  readonly drv: string;
  constructor(cause: NixError, requiredSystem: string, drv: string, localSystem: string) {
    const name = drv.replace(/^\/nix\/store\/[a-z0-9]+-/, '').replace(/\.drv$/, '');
    super(`building ${name} requires system ${requiredSystem}, and this origin runs on ${localSystem} with no ${requiredSystem} builder`, cause.stderr, false, cause.exitCode);
    this.name = 'NixSystemError';
    this.requiredSystem = requiredSystem;
    this.localSystem = localSystem;
    this.drv = drv;
  }
}

/** Nix 2.x: "a 'aarch64-linux' with features {} is required to build '/nix/store/…drv', but I am a 'x86_64-linux' with features {…}". */
const SYSTEM_MISMATCH = /a '([^']+)' with features \{[^}]*\} is required to build '([^']+)', but I am a '([^']+)'/;

function lastErrorLine(stderr: string): string | null {
  const lines = stderr.split('\n').map((line) => line.trim());
  for (let i = lines.length - 1; i >= 0; i--) {
    const match = /^(?:error|fatal): (.+)$/.exec(lines[i]!);
    if (match) return match[1]!;
  }
  return null;
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
  /** Starts the command; the process's shared launcher unless given (a test may hold back its spawn reports). */
  launcher?: Pick<ProcessLauncher, 'launch'>;
}

/** Niceness of Nix and its builders (0 is the origin's, 19 the lowest). */
const NIX_NICENESS = 10;

/** Output a command may print: a package index of all nixpkgs is tens of MiB. */
const MAX_STDOUT_BYTES = 256 * 1024 * 1024;

/** After SIGTERM, how long Nix has to stop its builders and remove their directories before everything is killed. */
const STOP_GRACE_MS = 2_000;

/** Keeps error details readable: the end of Nix's output is where the reason is. */
function tail(text: string, max = 4000): string {
  const trimmed = text.trim();
  return trimmed.length > max ? '…' + trimmed.slice(trimmed.length - max) : trimmed;
}

/**
 * Runs one Nix command in a process group of its own. At the timeout (or on
 * cancel) the whole group is killed with SIGKILL, builders and anything they
 * left running included, and the answer comes at once: a grandchild that
 * keeps stdout or stderr open (a detached `sleep`, a daemon a builder forked)
 * must not make the origin wait for the end of the streams, which would
 * never come.
 */
async function run(command: string, args: string[], options: NixOptions): Promise<string> {
  let child: LaunchedProcess;
  try {
    // Starting the launcher's worker thread may throw: the caller still gets a NixError.
    child = (options.launcher ?? sharedLauncher()).launch(command, args, {
      // The origin's own settings first, whatever the machine's nix.conf says (settings.ts).
      env: { ...environment(), ...options.env, NIX_CONFIG: originNixConfig(options.env?.NIX_CONFIG ?? process.env.NIX_CONFIG) },
      // Below the origin's own priority: answering cached pulls comes before Nix work. Builders inherit it.
      niceness: NIX_NICENESS,
      maxStdoutBytes: MAX_STDOUT_BYTES,
    });
  } catch (err) {
    throw new NixError(`${command} could not run: ${(err as Error).message}`, '', false);
  }
  let pid: number | undefined;
  // The first reaction to the spawn report: a stop registered before the pid arrived (or a timeout that
  // answered before it) finds the pid set when its own reaction runs, however the report was delayed.
  void child.started.then(
    (spawned) => {
      pid = spawned;
    },
    () => undefined,
  );
  let stderrText = '';
  let partial = '';
  child.onStderr((text) => {
    // Kept here too: on a timeout the answer is given before the output ends.
    stderrText = (stderrText + text).slice(-64 * 1024);
    if (!options.onLog) return;
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    // Nix names the URLs it fetches, which may carry credentials.
    for (const line of lines) if (line.trim()) options.onLog(redactCredentials(line));
  });
  const killGroup = () => {
    if (pid === undefined) return;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // The group is gone already.
    }
  };
  const { exited } = child;
  // A child that exited leaves nothing behind: a grandchild holding the pipes would keep the streams (and so the answer) open.
  void exited.then(killGroup);
  // Builders run in sessions of their own (Nix calls setsid): the tree, not only the group (process-tree.ts).
  const stopAll = () => {
    if (pid !== undefined) terminateTree(pid, STOP_GRACE_MS, exited);
  };
  let stopped: 'timeout' | 'cancel' | null = null;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_resolve, reject) => {
    const fail = (why: 'timeout' | 'cancel') => {
      if (stopped !== null) return;
      stopped = why;
      // A command asked to stop before its pid arrived is stopped as soon as it has one.
      if (pid === undefined) void child.started.then(stopAll, () => undefined);
      else stopAll();
      // A timeout answers at once, whatever holds the output open. A cancel (shutdown) waits for
      // Nix to be gone, at most past the grace, so the origin does not exit before it cleaned up.
      if (why === 'timeout') reject(why);
      else void Promise.race([exited, new Promise((resolve) => setTimeout(resolve, STOP_GRACE_MS + 500))]).then(() => reject(why));
    };
    timer = setTimeout(() => fail('timeout'), options.timeoutSeconds * 1000);
    onAbort = () => fail('cancel');
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
  });
  // Whichever ends first; the loser's rejection is handled.
  stop.catch(() => undefined);
  try {
    await Promise.race([child.started, stop]);
    const result = await Promise.race([child.finished, stop]);
    if (result.stdoutOverflow) throw new NixError(`${command} printed more than ${MAX_STDOUT_BYTES / 2 ** 20} MiB`, tail(redactCredentials(stderrText)), false);
    if (result.exitCode !== 0) {
      const code = result.exitCode ?? 'unknown';
      throw new NixError(`${command} failed with exit code ${code}`, tail(redactCredentials(stderrText)), false, result.exitCode);
    }
    return result.stdout;
  } catch (err) {
    const stderr = redactCredentials(stderrText);
    // A command that was stopped is reported as stopped, whatever exit the kill gave it.
    if (stopped === 'timeout') throw new NixError(`${command} timed out after ${options.timeoutSeconds} s`, tail(stderr), true);
    if (stopped === 'cancel') throw new NixError(`${command} was cancelled`, tail(stderr), false);
    if (err instanceof NixError) throw err;
    if (err instanceof LaunchError && err.code === 'ENOENT') throw new NixError(`${command} is not installed or not on PATH`, '', false);
    throw new NixError(`${command} could not run: ${(err as Error).message}`, tail(stderr), false);
  } finally {
    clearTimeout(timer);
    if (onAbort) options.signal?.removeEventListener('abort', onAbort);
  }
}

/** process.env without its unset entries: a command's whole environment is sent to the launcher. */
function environment(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) if (value !== undefined) env[name] = value;
  return env;
}

/** Git must fail rather than wait for a password nobody will type: Nix runs git for fetchGit. */
const NO_PROMPT = { GIT_TERMINAL_PROMPT: '0' };

export interface FetchOptions extends NixOptions {
  /** Seconds a fetched tarball is trusted before Nix downloads it again (Nix's tarball-ttl). */
  tarballTtlSeconds?: number;
}

/**
 * Fetches a package source into the store and returns its store path. A
 * failure that is the source's (the command ran and failed, or timed out) is
 * a NixFetchError; Nix missing or a cancelled command stay NixErrors.
 */
export async function fetchSource(source: NixSource, options: FetchOptions): Promise<string> {
  const ttl = options.tarballTtlSeconds === undefined ? [] : ['--option', 'tarball-ttl', String(options.tarballTtlSeconds)];
  try {
    const stdout = await run(
      'nix-instantiate',
      [...ttl, '--eval', '--json', FETCH_NIX, '--argstr', 'source', JSON.stringify(source)],
      { ...options, env: { ...NO_PROMPT, ...options.env } },
    );
    return JSON.parse(stdout) as string;
  } catch (err) {
    if (err instanceof NixError && (err.timedOut || err.exitCode !== null)) throw new NixFetchError(err);
    throw err;
  }
}

/** The NAR hash of a store path (`sha256:<base32>`), as fetchTarball's sha256 accepts it. */
export async function narHash(storePath: string, options: NixOptions): Promise<string> {
  return (await run('nix-store', ['--query', '--hash', storePath], options)).trim();
}

export async function resolvePackages(source: NixSource, system: string, packages: readonly string[], options: NixOptions): Promise<Resolution> {
  // Fetching first, on its own, tells a source that cannot be fetched from a package set that fails to evaluate.
  if (source.type !== 'path') await fetchSource(source, options);
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
  try {
    await run('nix-build', ['--no-out-link', ...drvPaths], options);
  } catch (err) {
    const match = err instanceof NixError ? SYSTEM_MISMATCH.exec(err.stderr) : null;
    if (match) throw new NixSystemError(err as NixError, match[1]!, match[2]!, match[3]!);
    throw err;
  }
}

/** The runtime closure of some store paths, with sizes and references. */
export async function readClosure(paths: readonly string[], options: NixOptions): Promise<StorePathInfo[]> {
  if (paths.length === 0) return [];
  const requisites = (await run('nix-store', ['--query', '--requisites', ...paths], options))
    .split('\n')
    .filter((line) => line.length > 0);
  return parseDumpDb(await run('nix-store', ['--dump-db', ...requisites], options));
}

/** What index.nix prints: the searchable packages, and the names of every set it walked. */
export interface RawPackageIndex {
  packages: { attrPath: string; name: string; version: string; description: string }[];
  /** `path` is "" for the top level. */
  sets: { path: string; names: string[] }[];
}

/** Evaluates the search index of a package set (index.nix); no client value is involved but the source, passed as data. */
export async function evaluatePackageIndex(source: NixSource, system: string, options: NixOptions): Promise<RawPackageIndex> {
  if (source.type !== 'path') await fetchSource(source, options);
  const stdout = await run(
    'nix-instantiate',
    ['--eval', '--strict', '--json', INDEX_NIX, '--argstr', 'source', JSON.stringify(source), '--argstr', 'system', system],
    options,
  );
  return JSON.parse(stdout) as RawPackageIndex;
}

/** What one `nix-store --gc` run deleted. */
export interface GcSummary {
  paths: number;
  bytesFreed: number;
}

/** Nix's last line of a collection: "12 store paths deleted, 3.45 MiB freed" (Nix 2.x always counts in MiB). */
export function parseGcSummary(stdout: string): GcSummary | null {
  const match = /(\d+) store paths? deleted, ([\d.]+) (KiB|MiB|GiB) freed/.exec(stdout);
  if (!match) return null;
  const unit = { KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 }[match[3] as 'KiB' | 'MiB' | 'GiB'];
  return { paths: Number(match[1]), bytesFreed: Math.round(Number(match[2]) * unit) };
}

/**
 * Deletes what no GC root keeps (`nix-store --gc`), at most `maxFreedBytes`
 * when given; niced, in its own process group and bounded by the timeout like
 * every Nix command (a run cut short is harmless: the next one goes on).
 *
 * With keep-outputs: a build roots its .drv files (gc-roots.ts), and their
 * closure holds the .drv files of its build inputs; keep-outputs keeps those
 * inputs' outputs too. Without it a collection may delete an input nix-build
 * found valid a moment before and is about to use (Nix 2.8 then fails the
 * build with "path '…' is not valid", as the collection test showed).
 */
export async function collectGarbage(maxFreedBytes: number | null, options: NixOptions): Promise<GcSummary> {
  const limit = maxFreedBytes === null ? [] : ['--max-freed', String(Math.max(0, Math.floor(maxFreedBytes)))];
  const stdout = await run('nix-store', ['--gc', '--option', 'keep-outputs', 'true', ...limit], options);
  return parseGcSummary(stdout) ?? { paths: 0, bytesFreed: 0 };
}

/**
 * Makes store paths valid again by substitution (`nix-store --realise` of
 * output paths, not derivations: it fetches them from the configured binary
 * caches, checked against their signatures, and builds nothing). Fails when
 * no cache has one of them.
 */
export async function realisePaths(paths: readonly string[], options: NixOptions): Promise<void> {
  if (paths.length === 0) return;
  await run('nix-store', ['--realise', ...paths], options);
}
