// Where the machine's CPU went during a window, from /proc: the origin's
// threads by kind, the Nix processes under it, workerd (the edges), the
// benchmark itself, and everything else on the machine. Read twice (before
// and after the load) and subtracted; clock ticks are converted to seconds.
//
// Nix processes come and go: a finished one's CPU is in its parent's
// cutime/cstime once reaped, so "descendants alive now (with their reaped
// children) + the origin's reaped children" counts every Nix process once.
import { readdirSync, readFileSync } from 'node:fs';
import { descendants, parentTable, statFields } from '../../origin/nix/process-tree.ts';

/** USER_HZ: 100 on every Linux architecture Node runs on. */
const TICKS_PER_SECOND = 100;

export type CpuClass =
  | 'origin: main thread (event loop)'
  | 'origin: deflate workers'
  | 'origin: launcher thread (spawns Nix, reads its pipes)'
  | 'origin: libuv threads (file reads, writes)'
  | 'origin: other threads (V8 GC, compiler)'
  | 'Nix processes under the origin'
  | 'workerd (the edges)'
  | 'bench: main thread (Miniflare, origin logs)'
  | 'bench: cached clients thread'
  | 'bench: load generator thread'
  | 'bench: other threads'
  | 'everything else on the machine';

export interface CpuSnapshot {
  at: number;
  /** Busy ticks of the whole machine (every state but idle and iowait). */
  machineBusy: number;
  ticks: Map<CpuClass, number>;
  /** Time the origin's main thread spent runnable but waiting for a core, and how often it was put on one (schedstat), since it started. */
  originMain: { waitMs: number; runs: number };
}

/** /proc/<pid>/task/<pid>/schedstat: ns on a core, ns waiting on a run queue, times it was put on a core. */
function runQueue(pid: number): { waitMs: number; runs: number } {
  try {
    const [, wait, runs] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').trim().split(' ');
    return { waitMs: Number(wait) / 1e6, runs: Number(runs) };
  } catch {
    return { waitMs: NaN, runs: NaN };
  }
}

function stat(path: string): string[] | null {
  try {
    return statFields(readFileSync(path, 'utf8'));
  } catch {
    return null;
  }
}

/** utime + stime (fields 14, 15), plus cutime + cstime (16, 17) if asked. */
function ticksOf(fields: string[] | null, children: boolean): number {
  if (!fields) return 0;
  const own = Number(fields[11]) + Number(fields[12]);
  return children ? own + Number(fields[13]) + Number(fields[14]) : own;
}

function comm(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}

function machineBusy(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const [user, nice, system, , , irq, softirq, steal] = line.split(/\s+/).slice(1).map(Number);
  return user! + nice! + system! + irq! + softirq! + steal!;
}

function threads(pid: number): { tid: number; name: string; ticks: number }[] {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  return tids.map((tid) => ({
    tid: Number(tid),
    name: comm(`/proc/${pid}/task/${tid}/comm`),
    ticks: ticksOf(stat(`/proc/${pid}/task/${tid}/stat`), false),
  }));
}

export function cpuSnapshot(originPid: number): CpuSnapshot {
  const ticks = new Map<CpuClass, number>();
  const add = (cls: CpuClass, n: number) => ticks.set(cls, (ticks.get(cls) ?? 0) + n);
  for (const t of threads(originPid)) {
    if (t.tid === originPid) add('origin: main thread (event loop)', t.ticks);
    else if (t.name === 'deflate') add('origin: deflate workers', t.ticks);
    else if (t.name === 'launcher') add('origin: launcher thread (spawns Nix, reads its pipes)', t.ticks);
    else if (t.name === 'libuv-worker') add('origin: libuv threads (file reads, writes)', t.ticks);
    else add('origin: other threads (V8 GC, compiler)', t.ticks);
  }
  const parents = parentTable();
  // The origin's reaped children are Nix processes (the only ones it starts).
  const originStat = stat(`/proc/${originPid}/stat`);
  add('Nix processes under the origin', originStat ? Number(originStat[13]) + Number(originStat[14]) : 0);
  for (const pid of descendants(originPid, parents)) if (pid !== originPid) add('Nix processes under the origin', ticksOf(stat(`/proc/${pid}/stat`), true));
  for (const pid of descendants(process.pid, parents)) {
    if (pid !== process.pid && comm(`/proc/${pid}/comm`) === 'workerd') add('workerd (the edges)', ticksOf(stat(`/proc/${pid}/stat`), true));
  }
  for (const t of threads(process.pid)) {
    if (t.tid === process.pid) add('bench: main thread (Miniflare, origin logs)', t.ticks);
    else if (t.name === 'cached-clients') add('bench: cached clients thread', t.ticks);
    else if (t.name === 'load-generator') add('bench: load generator thread', t.ticks);
    else add('bench: other threads', t.ticks);
  }
  return { at: performance.now(), machineBusy: machineBusy(), ticks, originMain: runQueue(originPid) };
}

export interface CpuUse {
  seconds: number;
  /** Seconds the origin's main thread was ready to run but waited for a core, and how many times it was put on one. */
  originMainWaitSeconds: number;
  originMainRuns: number;
  /** CPU seconds per class, and the share of the machine's capacity (cores × seconds) it took. */
  rows: { what: CpuClass | 'idle'; cpuSeconds: number; share: number }[];
}

export function cpuBetween(before: CpuSnapshot, after: CpuSnapshot, cores: number): CpuUse {
  const seconds = (after.at - before.at) / 1000;
  const capacity = seconds * cores;
  const rows: CpuUse['rows'] = [];
  let known = 0;
  for (const [cls, n] of after.ticks) {
    const cpuSeconds = (n - (before.ticks.get(cls) ?? 0)) / TICKS_PER_SECOND;
    known += cpuSeconds;
    rows.push({ what: cls, cpuSeconds, share: cpuSeconds / capacity });
  }
  const busy = (after.machineBusy - before.machineBusy) / TICKS_PER_SECOND;
  rows.push({ what: 'everything else on the machine', cpuSeconds: Math.max(0, busy - known), share: Math.max(0, busy - known) / capacity });
  rows.push({ what: 'idle', cpuSeconds: Math.max(0, capacity - busy), share: Math.max(0, capacity - busy) / capacity });
  return { seconds, rows, originMainWaitSeconds: (after.originMain.waitMs - before.originMain.waitMs) / 1000, originMainRuns: after.originMain.runs - before.originMain.runs };
}
