// Keeping Nix below the origin on the CPU. Niceness alone does not do it
// on Linux with autogroup scheduling (CONFIG_SCHED_AUTOGROUP, enabled in
// Debian's kernel and most others, /proc/sys/kernel/sched_autogroup_enabled):
// the CPU is shared first between sessions, each an autogroup of equal
// weight, and a thread's niceness orders it only against the threads of its
// own session. Nix runs in a session of its own (so that one kill reaches its
// group) and puts each builder in another (it calls setsid), so at niceness
// 10 every one of them still took as much CPU as the origin's whole session.
// Measured on two cores: a busy loop at niceness 19 in a session of its own
// took 50 % of a core against one at niceness 0; with its autogroup at 19,
// 1 % (bench:load's figures are in docs/operations.md). Each autogroup has a
// niceness of its own, in /proc/<pid>/autogroup, which is set here for every
// session Nix starts.
//
// Autogroups apply only to processes in the root CPU cgroup: in a container
// or a systemd unit with a CPU controller, the kernel ignores them and the
// per-process niceness already holds, so writing the file is harmless.
// Without CAP_SYS_ADMIN the kernel accepts one such write per 100 ms for
// the whole machine (EAGAIN otherwise): a session not lowered yet is tried
// again on the next sweep.
import { readFileSync, writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { descendants, parentTable, parseStatSession, parseStatStart } from './process-tree.ts';

/** Sets the niceness of `pid` itself (its children inherit it). False when it is gone or it is not allowed. */
export function renice(pid: number, niceness: number): boolean {
  try {
    setPriority(pid, niceness);
    return true;
  } catch {
    return false;
  }
}

/**
 * Sets the niceness of the autogroup of `pid`'s session: every process in
 * it, those started later included. True when set, or when the kernel has
 * no autogroups (nothing to set); false otherwise: refused for now (EAGAIN),
 * not allowed, or the process is gone. The sweep tries again while the
 * command runs, one failed write per session and sweep.
 */
function reniceSession(pid: number, niceness: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/autogroup`, String(niceness));
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // ENOENT with the process alive: a kernel built without autogroups.
    return code === 'ENOENT' && statOf(pid) !== null;
  }
}

function statOf(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
}

/** How `lowered` names a session: its leader's pid and start time, so a reused pid is not mistaken for one done. */
function sessionKey(pid: number, stat: string): string {
  return `${pid}:${parseStatStart(stat)}`;
}

/** Lowers the session `pid` leads (a command just started), remembered in `lowered` as the sweep's are. */
export function lowerSession(pid: number, niceness: number, lowered: Set<string>): void {
  const stat = statOf(pid);
  if (stat !== null && reniceSession(pid, niceness)) lowered.add(sessionKey(pid, stat));
}

/**
 * Lowers the sessions started under running commands: for each root (a
 * command's pid, with its niceness), every descendant that leads a session
 * of its own (a builder Nix setsid'd), the root included, whose autogroup
 * has not been lowered yet (`lowered`); sessions no longer there are
 * dropped from it, so it stays as small as what runs. Returns how many it
 * lowered.
 */
export function lowerNewSessions(roots: ReadonlyMap<number, number>, lowered: Set<string>, table: ReadonlyMap<number, number> = parentTable()): number {
  let count = 0;
  const present = new Set<string>();
  for (const [root, niceness] of roots) {
    for (const pid of descendants(root, table)) {
      const stat = statOf(pid);
      if (stat === null || parseStatSession(stat) !== pid) continue;
      const key = sessionKey(pid, stat);
      if (lowered.has(key)) present.add(key);
      else if (reniceSession(pid, niceness)) {
        present.add(key);
        count++;
      }
    }
  }
  for (const key of lowered) if (!present.has(key)) lowered.delete(key);
  for (const key of present) lowered.add(key);
  return count;
}
