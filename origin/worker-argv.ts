// Node options for the origin's worker threads (the deflate pool, the
// process launcher). A worker inherits the process's execArgv, and with
// them the code a script was started with (`node -e CODE`, `--eval`,
// `--print`, `--input-type`): a worker given those fails to start. Every
// other option (loaders, inspector, memory limits) is kept.
const CODE_OPTIONS = new Set(['-e', '--eval', '-p', '--print', '-pe', '--input-type']);

export function workerExecArgv(execArgv: readonly string[] = process.execArgv): string[] {
  const kept: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const option = execArgv[i]!;
    if (CODE_OPTIONS.has(option)) {
      // Its value is the next argument.
      i++;
      continue;
    }
    if (/^--(eval|print|input-type)=/.test(option)) continue;
    kept.push(option);
  }
  return kept;
}
