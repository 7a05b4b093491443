// Compares two ways of storing a streamed layer whose digest is known only
// after its last byte, on the Cloud Storage emulator:
//
//   copy   stream to a temporary object (resumable upload) while the layer is
//          produced, then copy it server-side to its content address and
//          delete the temporary object (what origin/storage/gcs.ts does);
//   spool  write the layer to a local temporary file while it is produced,
//          then upload the file under its content address and delete it;
//   direct upload straight under the final name, as if the key were known in
//          advance: the floor neither strategy can beat.
//
// "after last byte" is the time from the producer's last byte until the
// object is visible under its key: how long a client waits beyond the build.
// The producer runs flat out or at a fixed rate standing in for tar+gzip
// (about 40 MB/s on one core). The link to the emulator is either plain
// loopback or a local proxy that limits uploads to an assumed uplink rate,
// since loopback moves bytes at memory speed and no real link does.
//
// What the emulator still cannot tell: its copy rewrites the bytes on disk,
// where GCS copies within one bucket and storage class by metadata, so
// `copy` pays a size-dependent cost here that it does not pay on GCS.
// Strategies run interleaved, run by run, so load from other processes on a
// shared machine falls on all of them alike.
//
// Run: node_modules/.bin/node bench/gcs/upload-strategies.ts [--quick]
import { createWriteStream } from 'node:fs';
import { createServer, connect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { Transform } from 'node:stream';
import { mkdtemp, rm, stat, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { Storage as GoogleStorage } from '@google-cloud/storage';
import { GcsStorage } from '../../origin/storage/gcs.ts';
import { startGcsEmulator } from '../../test/support/gcs-emulator.ts';

const quick = process.argv.includes('--quick');
const SIZES_MB = quick ? [8] : [8, 64];
const RATES_MB_S: (number | null)[] = [null, 40];
/** Upload link: null is plain loopback. */
const LINKS_MB_S: (number | null)[] = [null, 100];
const RUNS = quick ? 1 : 5;
const CHUNK = 1024 * 1024;
const CONTENT_TYPE = 'application/vnd.oci.image.layer.v1.tar+gzip';

interface Timing {
  total: number;
  afterLastByte: number;
}

type Producer = () => AsyncGenerator<Buffer>;

function producer(sizeMb: number, rate: number | null, chunk: Buffer): Producer {
  return async function* produce() {
    const started = performance.now();
    for (let i = 0; i < sizeMb; i++) {
      if (rate !== null) {
        const due = started + (i * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
      }
      // Distinct bytes per chunk so nothing along the way can shortcut them.
      chunk[0] = i & 0xff;
      yield Buffer.from(chunk);
    }
  };
}

/** Bytes through at most `rate` MB/s, paced per connection. */
function throttle(rate: number): Transform {
  const started = performance.now();
  let sent = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      sent += chunk.length;
      const wait = started + (sent / (rate * CHUNK)) * 1000 - performance.now();
      if (wait > 0) setTimeout(() => done(null, chunk), wait);
      else done(null, chunk);
    },
  });
}

/** A TCP proxy to the emulator whose client-to-server direction is limited to `rate` MB/s. */
async function throttledLink(target: string, rate: number): Promise<{ url: string; close(): void }> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    sockets.add(client).add(upstream);
    client.pipe(throttle(rate)).pipe(upstream);
    upstream.pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', resolveListen));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    // Keep-alive connections from the client library would hold the process open.
    close: () => {
      server.close();
      for (const socket of sockets) socket.destroy();
    },
  };
}

async function main(): Promise<void> {
  const emulator = await startGcsEmulator();
  const spoolDir = await mkdtemp(join(tmpdir(), 'gcs-bench-spool-'));
  const proxies: { close(): void }[] = [];
  try {
    const chunk = randomBytes(CHUNK);
    let n = 0;

    const strategiesFor = (endpoint: string): Record<string, (produce: Producer) => Promise<Timing>> => {
      const options = { projectId: 'demo-nixery-edge', apiEndpoint: endpoint };
      const client = new GoogleStorage(options);
      return {
        copy: async (produce) => {
          const storage = new GcsStorage({ bucket: `bench-${++n}`, client });
          const t0 = performance.now();
          const staged = await storage.stage();
          await pipeline(produce(), staged.stream);
          const tEnd = performance.now();
          await staged.commit(`blobs/sha256/${n}`, CONTENT_TYPE);
          const t1 = performance.now();
          return { total: t1 - t0, afterLastByte: t1 - tEnd };
        },
        spool: async (produce) => {
          const bucket = client.bucket(`bench-${++n}`);
          const path = join(spoolDir, String(n));
          const t0 = performance.now();
          await pipeline(produce(), createWriteStream(path));
          const tEnd = performance.now();
          const { size } = await stat(path);
          await bucket.upload(path, {
            destination: `blobs/sha256/${n}`,
            contentType: CONTENT_TYPE,
            resumable: size > 8 * CHUNK,
            validation: 'crc32c',
            preconditionOpts: { ifGenerationMatch: 0 },
          });
          await unlink(path);
          const t1 = performance.now();
          return { total: t1 - t0, afterLastByte: t1 - tEnd };
        },
        direct: async (produce) => {
          const file = client.bucket(`bench-${++n}`).file(`blobs/sha256/${n}`);
          const t0 = performance.now();
          const stream = file.createWriteStream({ resumable: true, validation: 'crc32c', contentType: CONTENT_TYPE, preconditionOpts: { ifGenerationMatch: 0 } });
          const tEnd = { at: 0 };
          async function* timed() {
            yield* produce();
            tEnd.at = performance.now();
          }
          // Complete when the stream finishes, as for `copy` before its commit.
          await pipeline(timed(), stream);
          const t1 = performance.now();
          return { total: t1 - t0, afterLastByte: t1 - tEnd.at };
        },
      };
    };

    const rows: string[][] = [['size', 'producer', 'upload link', 'strategy', 'total ms', 'after last byte ms', 'local disk']];
    for (const link of LINKS_MB_S) {
      let endpoint = emulator.url;
      if (link !== null) {
        const proxy = await throttledLink(emulator.url, link);
        proxies.push(proxy);
        endpoint = proxy.url;
      }
      const strategies = strategiesFor(endpoint);
      // Connections, buckets and JIT warm up outside the measurements.
      for (const run of Object.values(strategies)) await run(producer(1, null, chunk));
      for (const sizeMb of SIZES_MB) {
        for (const rate of RATES_MB_S) {
          const timings = new Map<string, Timing[]>(Object.keys(strategies).map((name) => [name, []]));
          const order = Object.entries(strategies);
          for (let r = 0; r < RUNS; r++) {
            for (const [name, run] of order) timings.get(name)!.push(await run(producer(sizeMb, rate, chunk)));
            order.push(order.shift()!);
          }
          for (const [name, list] of timings) {
            rows.push([
              `${sizeMb} MB`,
              rate === null ? 'unthrottled' : `${rate} MB/s`,
              link === null ? 'loopback' : `${link} MB/s`,
              name,
              median(list.map((t) => t.total)).toFixed(0),
              median(list.map((t) => t.afterLastByte)).toFixed(0),
              name === 'spool' ? `${sizeMb} MB` : '0',
            ]);
          }
        }
      }
    }
    console.log(`GCS upload strategies on the firebase-tools emulator (median of ${RUNS})\n`);
    console.log(table(rows));
  } finally {
    for (const proxy of proxies) proxy.close();
    await rm(spoolDir, { recursive: true, force: true });
    await emulator.stop();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const line = (row: string[]) => `| ${row.map((cell, i) => (i >= 4 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join(' | ')} |`;
  return [line(rows[0]!), `|${widths.map((w, i) => (i >= 4 ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}

await main();
