// An origin with a Nix store of its own: started inside a private mount
// namespace (`unshare -m`) in which an empty directory, or a small tmpfs, is
// mounted over /nix. Nix initialises a fresh store there, so the origin may
// collect garbage (or fill the store) without touching the store every other
// test shares. Needs root. The namespace, and every mount in it, ends with
// the origin's process.
//
// A PID namespace too (`-p --fork --mount-proc`): a collection keeps every
// store path it finds in any process's command line, environment, open files
// or maps under /proc (Nix's runtime roots), and the other tests' builds use
// the same fixture paths (they build reproducibly); with only its own
// processes in /proc, what this origin's collections delete depends on this
// origin alone. `unshare` passes SIGTERM on to the namespace's first
// process and, with --kill-child, takes it down if it is killed itself.
//
// That first process (PID 1 of the namespace) inherits every orphan: a
// builder's detached process whose parent was killed. Node never waits for
// children it did not start, so the origin is not PID 1: a shell is
// (NAMESPACE_INIT), which runs the origin, passes SIGTERM and SIGINT on to
// it (PID 1 gets no signal it has no handler for), and while it waits for
// the origin reaps any child that ends, as an init does.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { startOrigin, type RunningOrigin, type StartOriginOptions } from './origin.ts';

export interface PrivateNixOptions extends StartOriginOptions {
  /** A tmpfs of this size (mount's syntax: `48m`) over /nix instead of an empty directory. */
  storeSize?: string;
  /** A tmpfs of this size over the origin's TMPDIR (where Nix makes build directories). */
  tmpSize?: string;
}

export interface PrivateNixOrigin extends RunningOrigin {
  /** The origin's /nix, readable from outside its namespace. */
  nixDir: string;
  /** The origin's TMPDIR. */
  tmp: string;
  /** Runs a command inside the origin's mount namespace (it sees the private /nix). */
  inNamespace(command: string, args: string[], env?: Record<string, string>): Promise<{ exitCode: number | undefined; stdout: string; stderr: string }>;
  /** Stops the origin and removes its storage, store and TMPDIR. */
  cleanup(): Promise<void>;
}

const quote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;

/**
 * PID 1 of the namespace: runs "$@" (the origin), passes SIGTERM and SIGINT
 * on, and exits with its status. Its wait reaps every child that ends, the
 * orphans included (dash and bash wait for any child while they wait for one).
 */
export const NAMESPACE_INIT = [
  "trap 'kill -TERM $child' TERM",
  "trap 'kill -INT $child' INT",
  '"$@" &',
  'child=$!',
  // A trapped signal ends a wait early: wait again until the origin itself is gone.
  'while :; do wait $child; status=$?; kill -0 $child 2>/dev/null || exit $status; done',
].join('\n');

/** `unshare`'s arguments for a private mount and PID namespace running `command`. */
export function privateNamespaceArgs(command: string[]): string[] {
  return ['-m', '-p', '--fork', '--kill-child', '--mount-proc', '--propagation', 'private', ...command];
}

export async function startPrivateNixOrigin(options: PrivateNixOptions = {}): Promise<PrivateNixOrigin> {
  const store = await mkdtemp(join(tmpdir(), 'nixery-private-nix-'));
  const tmp = await mkdtemp(join(tmpdir(), 'nixery-private-tmp-'));
  await chmod(tmp, 0o755);
  const mounts = [
    options.storeSize ? `mount -t tmpfs -o size=${options.storeSize} tmpfs /nix` : `mount --bind ${quote(store)} /nix`,
    ...(options.tmpSize ? [`mount -t tmpfs -o size=${options.tmpSize},mode=755 tmpfs ${quote(tmp)}`] : []),
  ];
  let origin: RunningOrigin;
  try {
    origin = await startOrigin({
      ...options,
      env: { TMPDIR: tmp, ...options.env },
      // The unshare process is in the new mount namespace too: /proc/<its pid>/root is the origin's view of /nix.
      wrap: (command, args) => ({
        command: 'unshare',
        args: privateNamespaceArgs(['sh', '-c', `${mounts.join(' && ')} || exit 1\n${NAMESPACE_INIT}`, 'sh', command, ...args]),
      }),
    });
  } catch (err) {
    await rm(store, { recursive: true, force: true });
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  const pid = origin.process.pid!;
  return {
    ...origin,
    nixDir: `/proc/${pid}/root/nix`,
    tmp,
    inNamespace: async (command, args, env = {}) => {
      const { exitCode, stdout, stderr } = await execa('nsenter', ['-t', String(pid), '-m', '--', command, ...args], { env: { ...process.env, ...env }, reject: false });
      return { exitCode, stdout, stderr };
    },
    async cleanup() {
      await origin.stop();
      await rm(store, { recursive: true, force: true });
      await rm(tmp, { recursive: true, force: true });
    },
  };
}
