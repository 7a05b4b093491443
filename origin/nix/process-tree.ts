// Ending everything a command started. A process group is not enough: Nix
// puts each builder in a session of its own (setsid), and a builder may
// detach further, so a kill of the group leaves them running. While the
// command is alive, its descendants are found by their parent links in
// /proc, stopped (so none can fork a new one meanwhile), then killed.
// Where there is no /proc (not Linux), only the group is killed.
//
// Nix is asked first (SIGTERM): it stops its builders and removes their
// build directories itself. Whatever is left after a short grace, or once
// Nix exited, is killed.
import { readdirSync, readFileSync } from 'node:fs';

/** Every process's parent, from /proc/<pid>/stat; empty without /proc. */
export function parentTable(): Map<number, number> {
  const table = new Map<number, number>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return table;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // Exited while we looked.
    }
    const ppid = parseStatParent(stat);
    if (ppid !== null) table.set(Number(entry), ppid);
  }
  return table;
}

/**
 * The fields of a /proc/<pid>/stat line after the command name: [0] is the
 * state (field 3), [1] the parent, [3] the session, [16] the niceness, [19]
 * the start time. The name may hold spaces and parentheses, so fields count
 * from the last ')'. Null for a line that is not one.
 */
export function statFields(stat: string): string[] | null {
  const end = stat.lastIndexOf(')');
  return end < 0 ? null : stat.slice(end + 2).split(' ');
}

function integerField(stat: string, index: number): number | null {
  const value = Number(statFields(stat)?.[index]);
  return Number.isInteger(value) ? value : null;
}

/** The start time (clock ticks since boot) in a /proc/<pid>/stat line: with the pid, it names one process, never a later one with a reused pid. */
export function parseStatStart(stat: string): string | null {
  return statFields(stat)?.[19] ?? null;
}

/** The start time of a running process, null when it is gone (or without /proc). */
export function startOf(pid: number): string | null {
  try {
    return parseStatStart(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

/** The session id in a /proc/<pid>/stat line (a session leader's is its own pid). */
export function parseStatSession(stat: string): number | null {
  return integerField(stat, 3);
}

/** The parent pid in a /proc/<pid>/stat line. */
export function parseStatParent(stat: string): number | null {
  return integerField(stat, 1);
}

/** `root` and every process below it in `parents` (pid → parent pid). */
export function descendants(root: number, parents: ReadonlyMap<number, number>): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of parents) {
    const list = children.get(ppid);
    if (list) list.push(pid);
    else children.set(ppid, [pid]);
  }
  const found: number[] = [];
  const stack = [root];
  const seen = new Set<number>();
  while (stack.length > 0) {
    const pid = stack.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    found.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return found;
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Gone already (or never ours): nothing to end.
  }
}

/**
 * SIGKILLs `root`, its process group and every descendant still linked to
 * it. Call it while `root` runs: once it has exited, its orphans belong to
 * init and only the group kill reaches them.
 */
export function killTree(root: number, table: () => ReadonlyMap<number, number> = parentTable): void {
  const stopped = new Set<number>();
  // A few rounds: a process may have forked between the read of /proc and its SIGSTOP.
  for (let round = 0; round < 5; round++) {
    const fresh = descendants(root, table()).filter((pid) => !stopped.has(pid));
    if (fresh.length === 0 && round > 0) break;
    for (const pid of fresh) {
      signal(pid, 'SIGSTOP');
      stopped.add(pid);
    }
  }
  signal(-root, 'SIGKILL');
  for (const pid of stopped) signal(pid, 'SIGKILL');
}

/**
 * Ends `root`'s tree without waiting: SIGTERM to its group now (Nix cleans
 * up after itself), SIGKILL to whatever is left `graceMs` later or as soon
 * as `root` exited, including descendants that were already detached when
 * this was called (checked by start time, so a reused pid is never hit).
 */
export function terminateTree(root: number, graceMs: number, exited: Promise<unknown>): void {
  const before = descendants(root, parentTable())
    .filter((pid) => pid !== root)
    .map((pid) => ({ pid, start: startOf(pid) }))
    .filter((p): p is { pid: number; start: string } => p.start !== null);
  let rootExited = false;
  let done = false;
  const force = () => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    // A root that exited may have had its pid reused: only its group, and the processes known by start time.
    if (!rootExited) killTree(root);
    else signal(-root, 'SIGKILL');
    for (const p of before) if (startOf(p.pid) === p.start) signal(p.pid, 'SIGKILL');
  };
  const timer = setTimeout(force, graceMs);
  void exited.then(
    () => {
      rootExited = true;
      force();
    },
    () => {
      rootExited = true;
      force();
    },
  );
  signal(-root, 'SIGTERM');
}
