// Measures what one origin needs while it builds an image, to size the
// Kubernetes resource requests (deploy/kubernetes/base/deployment.yaml):
// peak resident memory of the origin process and of the Nix processes it
// runs, CPU seconds of both, and the build's duration.
//
//   node deploy/measure-build.ts [--rebuild] [--concurrent] [IMAGE ...]   # default: shell/bigPackage
//
// Runs the real origin on the bundled package set (bundled-pkgs) with
// its own storage. With --rebuild, the requested packages' outputs are first
// deleted from the Nix store (those nothing else refers to), so Nix really
// builds them rather than finding them built. With --concurrent, all images
// are pulled at once (builds overlap) instead of one after the other.
// Prints one JSON object.
import { nixEnvironment } from '../origin/nix/settings.ts';
import { execa } from 'execa';
import { readFile, readdir } from 'node:fs/promises';
import { startOrigin, FIXTURE_PKGS } from '../test/support/origin.ts';

const args = process.argv.slice(2);
const rebuild = args.includes('--rebuild');
const concurrent = args.includes('--concurrent');
const images = args.filter((a) => !a.startsWith('--'));
if (images.length === 0) images.push('shell/bigPackage');

const PAGE = 4096;
const TICKS = 100;

interface Proc {
  pid: number;
  ppid: number;
  name: string;
  rssBytes: number;
  cpuSeconds: number;
}

async function readProc(pid: number): Promise<Proc | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may contain spaces.
    const close = stat.lastIndexOf(')');
    const name = stat.slice(stat.indexOf('(') + 1, close);
    const fields = stat.slice(close + 2).split(' ');
    const ppid = Number(fields[1]);
    const cpu = (Number(fields[11]) + Number(fields[12])) / TICKS;
    const rss = Number(fields[21]) * PAGE;
    return { pid, ppid, name, rssBytes: rss, cpuSeconds: cpu };
  } catch {
    return null;
  }
}

async function descendants(root: number): Promise<Proc[]> {
  const all = (await Promise.all((await readdir('/proc')).filter((d) => /^\d+$/.test(d)).map((d) => readProc(Number(d))))).filter(
    (p): p is Proc => p !== null,
  );
  const children = new Map<number, Proc[]>();
  for (const p of all) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const out: Proc[] = [];
  const stack = [...(children.get(root) ?? [])];
  while (stack.length > 0) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...(children.get(p.pid) ?? []));
  }
  return out;
}

async function outputsOf(attr: string): Promise<string[]> {
  const expr = `let pkgs = import ${JSON.stringify(FIXTURE_PKGS)} { }; in map (o: pkgs.${attr}.\${o}.outPath) (pkgs.${attr}.outputs or [ "out" ])`;
  // Not every image name component is an attribute (`shell` is a meta-package of the origin's).
  const result = await execa('nix-instantiate', ['--eval', '--strict', '--json', '--expr', expr], { env: nixEnvironment({ NIX_CONFIG: 'substituters =' }), reject: false });
  return result.exitCode === 0 ? (JSON.parse(result.stdout) as string[]) : [];
}

if (rebuild) {
  for (const image of images) {
    for (const attr of image.split('/')) {
      for (const path of await outputsOf(attr)) {
        // Fails (and is ignored) when another valid path still refers to it.
        await execa('nix-store', ['--delete', path], { env: nixEnvironment(), reject: false });
      }
    }
  }
}

const origin = await startOrigin({ env: { NIXERY_PKGS_PATH: FIXTURE_PKGS } });
const pid = origin.process.pid!;
const peak = { originRss: 0, nixRss: 0, nixProcesses: 0, totalRss: 0 };
const nixCpu = new Map<number, number>();
let sampling = true;
const sampler = (async () => {
  while (sampling) {
    const self = await readProc(pid);
    const kids = await descendants(pid);
    const nixRss = kids.reduce((sum, p) => sum + p.rssBytes, 0);
    for (const k of kids) nixCpu.set(k.pid, Math.max(nixCpu.get(k.pid) ?? 0, k.cpuSeconds));
    if (self) peak.originRss = Math.max(peak.originRss, self.rssBytes);
    peak.nixRss = Math.max(peak.nixRss, nixRss);
    peak.nixProcesses = Math.max(peak.nixProcesses, kids.length);
    peak.totalRss = Math.max(peak.totalRss, (self?.rssBytes ?? 0) + nixRss);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
})();

const startRss = (await readProc(pid))?.rssBytes ?? 0;
async function pull(image: string) {
  const started = performance.now();
  // Image names are lower case; the origin finds attributes ignoring case (bigPackage).
  const res = await fetch(`${origin.url}/v2/${image.toLowerCase()}/manifests/latest`);
  await res.arrayBuffer();
  return { image, status: res.status, seconds: Math.round(performance.now() - started) / 1000 };
}
const results = concurrent ? await Promise.all(images.map(pull)) : [];
if (!concurrent) for (const image of images) results.push(await pull(image));
sampling = false;
await sampler;
const status = await readFile(`/proc/${pid}/status`, 'utf8');
const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
const originCpu = (await readProc(pid))?.cpuSeconds ?? 0;
const built = origin.logs.filter((l) => l.msg === 'image built');
// What Nix really built (not found in the store): "building '/nix/store/<hash>-<name>.drv'...".
const derivationsBuilt = origin.logs
  .filter((l) => l.msg === 'nix progress' && String(l.nix).startsWith("building '"))
  .map((l) => String(l.nix).replace(/^building '\/nix\/store\/[a-z0-9]{32}-(.*)\.drv'.*$/, '$1'));
await origin.stop();

const mib = (n: number) => Math.round((n / 1048576) * 10) / 10;
console.log(
  JSON.stringify(
    {
      images: results,
      rebuilt: rebuild,
      derivationsBuilt,
      builds: built.map((b) => ({ image: b.image, ms: b.ms, closureBytes: b.closureBytes, layers: b.layers, bytesWritten: b.bytesWritten })),
      originRssAtStartMiB: mib(startRss),
      originPeakRssMiB: mib(Math.max(hwm, peak.originRss)),
      nixPeakRssMiB: mib(peak.nixRss),
      nixPeakProcesses: peak.nixProcesses,
      peakTotalRssMiB: mib(peak.totalRss),
      originCpuSeconds: originCpu,
      nixCpuSecondsSampled: Math.round([...nixCpu.values()].reduce((a, b) => a + b, 0) * 100) / 100,
    },
    null,
    2,
  ),
);
