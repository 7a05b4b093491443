// Chooses and initialises the storage backend named by the configuration.
import type { StorageConfig } from '../config.ts';
import { FilesystemStorage } from './filesystem.ts';
import type { Storage } from './storage.ts';

export async function createStorage(config: StorageConfig): Promise<Storage> {
  if (config.backend === 'filesystem') {
    const storage = new FilesystemStorage(config.path);
    await storage.init();
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
