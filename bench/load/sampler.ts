// Samples the origin's Nix processes and RSS from /proc every 50 ms, in a
// worker thread of its own: a walk of /proc takes milliseconds, which on the
// benchmark's own event loop would show up as the cached client's latency.
// Posts the peaks when told to stop.
import { readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { descendants, parentTable } from '../../origin/nix/process-tree.ts';

export interface Peaks {
  evaluations: number;
  builds: number;
  nixStore: number;
  nixTotal: number;
  originRssMiB: number;
  nixRssMiB: number;
}

const originPid = (workerData as { originPid: number }).originPid;
const peak: Peaks = { evaluations: 0, builds: 0, nixStore: 0, nixTotal: 0, originRssMiB: 0, nixRssMiB: 0 };

function rssMiB(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

const timer = setInterval(() => {
  let evaluations = 0;
  let builds = 0;
  let nixStore = 0;
  let nixRss = 0;
  for (const pid of descendants(originPid, parentTable())) {
    if (pid === originPid) continue;
    const name = comm(pid);
    if (!name.startsWith('nix-')) continue;
    if (name === 'nix-instantiate') evaluations++;
    else if (name === 'nix-build') builds++;
    else nixStore++;
    nixRss += rssMiB(pid);
  }
  peak.evaluations = Math.max(peak.evaluations, evaluations);
  peak.builds = Math.max(peak.builds, builds);
  peak.nixStore = Math.max(peak.nixStore, nixStore);
  peak.nixTotal = Math.max(peak.nixTotal, evaluations + builds + nixStore);
  peak.nixRssMiB = Math.max(peak.nixRssMiB, nixRss);
  peak.originRssMiB = Math.max(peak.originRssMiB, rssMiB(originPid));
}, 50);

parentPort!.once('message', () => {
  clearInterval(timer);
  parentPort!.postMessage(peak);
});
