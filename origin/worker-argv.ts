// Node options for the origin's worker threads (the deflate pool, the
// process launcher). A worker started without execArgv inherits the
// process's options as Node parsed them, whatever they are, and that is what
// the origin does. The exception is the code a script was started with
// (`node -e CODE`, `--eval`, `--print`, `--input-type`): a worker inheriting
// those fails to start, so they are left out, and the rest is passed
// explicitly. Node checks an explicit list and refuses V8 and process-wide
// options there (--max-old-space-size, --expose-gc, --stack-size, --title):
// they are the process's anyway. If it refuses the list, the worker starts
// with none.
import { Worker, type WorkerOptions } from 'node:worker_threads';

const CODE_OPTIONS = new Set(['-e', '--eval', '-p', '--print', '-pe', '--input-type']);

/** The options to pass a worker explicitly, or undefined when it should inherit the process's. */
export function workerExecArgv(execArgv: readonly string[] = process.execArgv): string[] | undefined {
  const kept: string[] = [];
  let stripped = false;
  for (let i = 0; i < execArgv.length; i++) {
    const option = execArgv[i]!;
    if (CODE_OPTIONS.has(option)) {
      // Its value is the next argument.
      i++;
      stripped = true;
      continue;
    }
    if (/^--(eval|print|input-type)=/.test(option)) {
      stripped = true;
      continue;
    }
    kept.push(option);
  }
  return stripped ? kept : undefined;
}

/** A worker thread running `url` with the options above (`execArgv` stands for the process's, for tests). */
export function startWorker(url: URL, options: Omit<WorkerOptions, 'execArgv'> = {}, execArgv: readonly string[] = process.execArgv): Worker {
  const argv = workerExecArgv(execArgv);
  if (argv === undefined) return new Worker(url, options);
  try {
    return new Worker(url, { ...options, execArgv: argv });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw err;
    return new Worker(url, { ...options, execArgv: [] });
  }
}
