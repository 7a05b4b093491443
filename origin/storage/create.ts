// Chooses and initialises the storage backend named by the configuration.
import { stat } from 'node:fs/promises';
import type { StorageConfig } from '../config.ts';
import { FilesystemStorage } from './filesystem.ts';
import type { Storage } from './storage.ts';

/**
 * `beside: true` opens storage an origin may be using at the same time (the
 * gc CLI): the filesystem's staging directory is left alone, as its files
 * may be writes in flight, and the directory must exist already.
 */
export async function createStorage(config: StorageConfig, options: { beside?: boolean } = {}): Promise<Storage> {
  if (config.backend === 'filesystem') {
    const storage = new FilesystemStorage(config.path);
    if (!options.beside) await storage.init();
    else if (!(await stat(config.path).then((s) => s.isDirectory(), () => false))) throw new Error(`STORAGE_PATH ${config.path} is not a directory`);
    return storage;
  }
  // Loaded lazily so a filesystem-only origin never loads the Google client.
  const { createGcsStorage } = await import('./gcs.ts');
  return createGcsStorage({
    bucket: config.bucket,
    signing: config.signing,
    urlLifetimeSeconds: config.urlLifetimeSeconds,
    ...(config.apiEndpoint ? { apiEndpoint: config.apiEndpoint } : {}),
  });
}
