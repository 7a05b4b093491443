// The gc command, against the storage the origin's configuration names (the
// same variables, read by origin/config.ts):
//
//   npm run gc -- --dry-run   what a retention run would delete: images, objects, bytes
//   npm run gc                runs retention: deletes them
//   npm run gc -- --verify    the scrub (scrub.ts): reads every blob and manifest, makes
//                             damaged or missing ones again, drops the records of images
//                             that cannot be made whole (their next pull builds them)
//
// It may run while origins serve the same storage. Exit status: 0 done, 1 the
// scrub found damage beyond repair, 2 bad usage or configuration, 3 failed.
import { parseArgs } from 'node:util';
import { readConfig, ConfigError } from '../config.ts';
import { createLogger } from '../log.ts';
import { createStorage } from '../storage/create.ts';
import { BlobRecovery } from '../image/blob-recovery.ts';
import { realisePaths } from '../nix/nix.ts';
import { ManifestRecovery } from '../image/manifest-recovery.ts';
import { ImageStore } from '../image/image-store.ts';
import { LayerStore } from '../image/layer-store.ts';
import { retentionPolicy } from './retention.ts';
import { runRetention } from './retention-run.ts';
import { StoredUsageLog } from './usage.ts';
import { scrub } from './scrub.ts';
import { remakeObject } from '../image/remake-object.ts';

const USAGE = 'usage: npm run gc [-- --dry-run | --verify]';

function bytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} bytes` : `${value.toFixed(1)} ${units[unit]} (${n} bytes)`;
}

function fail(code: number, message: string): never {
  process.stderr.write(`nixery-edge gc: ${message}\n`);
  process.exit(code);
}

let args;
try {
  args = parseArgs({ options: { 'dry-run': { type: 'boolean' }, verify: { type: 'boolean' }, help: { type: 'boolean' } }, strict: true, allowPositionals: false }).values;
} catch (err) {
  fail(2, `${(err as Error).message}\n${USAGE}`);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
if (args.verify && args['dry-run']) fail(2, `--verify repairs as it goes and has no dry run\n${USAGE}`);

let config;
try {
  config = readConfig();
} catch (err) {
  if (err instanceof ConfigError) fail(2, `invalid configuration: ${err.message}`);
  throw err;
}

const out = (line: string) => process.stdout.write(`${line}\n`);
if (!args.verify && config.retention.maxIdleDays === 0) {
  out('retention is off (NIXERY_RETENTION_DAYS=0): nothing to do');
  process.exit(0);
}
try {
  const storage = await createStorage(config.storage, { beside: true });
  // Recovery's own lines (what was rebuilt, what could not be) go to stderr; the report to stdout.
  const log = createLogger(config.logLevel, process.stderr);
  // Store paths a collection took are fetched again from the binary caches, as the origin does (no GC roots: a
  // collection racing the rebuild makes it fail the digest check, reported as not made again).
  const blobs = new BlobRecovery(storage, new LayerStore(storage, log), log, undefined, (paths) => realisePaths(paths, { timeoutSeconds: config.nixTimeoutSeconds }));
  const manifests = new ManifestRecovery(storage, new ImageStore(storage), log);
  if (args.verify) {
    const report = await scrub({ storage, blobs, manifests });
    for (const d of report.damaged) out(`damaged ${d.key}: ${d.repaired ? 'made again' : 'deleted; nothing can make it again'}`);
    for (const m of report.missing) out(`missing ${m.digest} of image ${m.image}: ${m.repaired ? 'made again' : 'cannot be made again'}`);
    for (const key of report.droppedImages) out(`dropped image record ${key}: not every object of it can be made again; its next pull builds it`);
    for (const key of report.unchecked) out(`unchecked image record ${key}: written before records kept their recipe`);
    const repaired = (list: { repaired: boolean }[]) => list.filter((x) => x.repaired).length;
    out(
      `scrub: read ${report.read} objects, ${bytes(report.bytes)}; ${report.damaged.length} damaged (${repaired(report.damaged)} made again), ` +
        `${report.missing.length} missing (${repaired(report.missing)} made again), ${report.sourcesRestored} image-sources entries restored, ` +
        `${report.droppedImages.length} image records dropped`,
    );
    process.exit(report.droppedImages.length > 0 ? 1 : 0);
  }
  const dryRun = args['dry-run'] ?? false;
  // Read only: the CLI records no use itself.
  const usage = new StoredUsageLog(storage, { intervalMs: config.usageWriteIntervalSeconds * 1000 });
  const report = await runRetention({ storage, policy: retentionPolicy(config.retention, config.usageWriteIntervalSeconds), lastUsed: (key) => usage.lastUsed(key), dryRun, repair: (digest) => remakeObject(blobs, manifests, digest) });
  const verb = dryRun ? 'would delete' : 'deleted';
  for (const key of report.images) out(`${verb} image ${key}`);
  for (const object of report.objects) out(`${verb} ${object.key} ${object.size}`);
  for (const key of report.records) out(`${verb} record ${key}`);
  for (const r of report.remade) out(`${r.made ? 'made again' : 'could not make again'} ${r.digest}: an image written during the run uses it`);
  if (report.pinnedBy !== null) out(`no blob or manifest ${dryRun ? 'would be' : 'was'} deleted: image record ${report.pinnedBy} was written before records kept their recipe and does not say what it uses`);
  out(
    `retention${dryRun ? ' (dry run)' : ''}: ${report.images.length} images, ${report.objects.length} objects, ${bytes(report.bytes)}, ${report.records.length} records ` +
      `(of ${report.stored.objects} objects, ${bytes(report.stored.bytes)}; idle over ${config.retention.maxIdleDays} days, grace ${config.retention.graceSeconds} s) in ${report.ms} ms`,
  );
  process.exit(0);
} catch (err) {
  fail(3, `failed: ${(err as Error).stack ?? String(err)}`);
}
