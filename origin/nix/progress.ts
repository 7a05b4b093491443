// Sorts what Nix prints while it builds an image: Nix's own progress lines
// ("building '…drv'", "copying …") are logged at info with the image they
// belong to; what the builders themselves print (compiler output) goes to
// debug, where it is there when needed and quiet otherwise.
import type { Logger } from 'pino';
import type { NixLog } from './runner.ts';

/** Lines Nix itself prints about its progress, as opposed to builders' output. */
const NIX_PROGRESS = /^\s*(these \d+ (derivations|paths)|building '|copying |downloading |fetching |querying |waiting for |building path|\/nix\/store\/\S+\.drv$)/;

export function isNixProgress(line: string): boolean {
  return NIX_PROGRESS.test(line);
}

/** A NixLog that writes to the build's logger, progress at info and the rest at debug; `progress` sees the progress lines too. */
export function nixProgressLog(buildLog: Logger, progress?: (line: string) => void): NixLog {
  return (line) => {
    if (isNixProgress(line)) {
      buildLog.info({ nix: line.trim() }, 'nix progress');
      progress?.(line.trim());
    } else buildLog.debug({ nix: line }, 'nix output');
  };
}
