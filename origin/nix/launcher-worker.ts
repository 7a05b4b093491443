// The worker thread of process-launcher.ts: starts commands, lowers their
// priority, reads their output and reports it, so none of that runs on the
// origin's event loop. A spawn blocks its thread until the child has
// exec'd, and on a busy machine the child waits its turn for a core first
// (tens of ms each, measured in bench:load): here that wait stalls only
// this thread.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { parentPort } from 'node:worker_threads';
import type { LaunchRequest, LaunchEvent } from './process-launcher.ts';
import { lowerNewSessions, lowerSession, renice } from './priority.ts';

/** How often the sessions Nix starts for its builders are looked for (priority.ts). */
const SWEEP_MS = 500;

if (!parentPort) throw new Error('launcher-worker.ts runs as a worker thread');
const port = parentPort;

try {
  // Named, so `top -H` and /proc tell this thread from V8's and libuv's (Linux only).
  writeFileSync('/proc/thread-self/comm', 'launcher');
} catch {
  // No /proc: only the name is lost.
}

const post = (event: LaunchEvent) => port.postMessage(event);

// Running commands (pid → niceness) whose new sessions are lowered while they run, and the sessions done.
const running = new Map<number, number>();
const lowered = new Set<string>();
let sweeper: NodeJS.Timeout | undefined;

function track(pid: number, niceness: number): void {
  running.set(pid, niceness);
  sweeper ??= setInterval(() => {
    lowerNewSessions(running, lowered);
    if (running.size === 0) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  }, SWEEP_MS);
}

port.on('message', (request: LaunchRequest) => {
  const { id } = request;
  let child;
  try {
    child = spawn(request.command, request.args, {
      env: request.env,
      // Its own process group, so one kill reaches everything it started.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    post({ type: 'error', id, code: (err as NodeJS.ErrnoException).code ?? null, message: (err as Error).message });
    return;
  }
  let failed = false;
  child.once('error', (err: NodeJS.ErrnoException) => {
    // ENOENT and friends arrive here, on the next tick, with no pid.
    failed = true;
    if (child.pid !== undefined) running.delete(child.pid);
    post({ type: 'error', id, code: err.code ?? null, message: err.message });
  });
  if (child.pid === undefined) return;
  const pid = child.pid;
  if (request.niceness > 0) {
    // Its children inherit the niceness (if it is not allowed, the command runs at the origin's).
    renice(pid, request.niceness);
    // It leads a session of its own (detached): its autogroup at once, the sessions of its builders by the sweep.
    lowerSession(pid, request.niceness, lowered);
    track(pid, request.niceness);
  }
  post({ type: 'spawned', id, pid });
  const stdout: Buffer[] = [];
  let stdoutBytes = 0;
  let overflow = false;
  child.stdout.on('data', (chunk: Buffer) => {
    if (overflow) return;
    stdoutBytes += chunk.length;
    if (stdoutBytes > request.maxStdoutBytes) {
      overflow = true;
      // Its answer is an error now: the command (its group) is ended rather than left to run to
      // completion or the timeout, and the rest of its output is not read.
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // Exited already.
      }
      child.stdout.destroy();
      return;
    }
    stdout.push(chunk);
  });
  const decoder = new StringDecoder('utf8');
  child.stderr.on('data', (chunk: Buffer) => {
    const text = decoder.write(chunk);
    if (text) post({ type: 'stderr', id, text });
  });
  child.once('exit', (code, signal) => {
    running.delete(pid);
    post({ type: 'exit', id, code, signal });
  });
  // 'close': the process exited and both pipes are at their end.
  child.once('close', (code, signal) => {
    if (failed) return;
    const rest = decoder.end();
    if (rest) post({ type: 'stderr', id, text: rest });
    post({ type: 'done', id, code, signal, stdout: Buffer.concat(stdout).toString('utf8'), overflow });
  });
});
