// Real container clients, run as the user would run them.
import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PulledImage {
  dir: string;
  /** The unpacked root filesystem. */
  rootfs: string;
  remove(): Promise<void>;
}

/** `skopeo copy` from the registry into an OCI layout, then `umoci unpack` it. */
export async function pullAndUnpack(registry: string, image: string, extraSkopeoArgs: string[] = []): Promise<PulledImage> {
  const dir = await mkdtemp(join(tmpdir(), 'pulled-'));
  await execa('skopeo', ['copy', '--src-tls-verify=false', ...extraSkopeoArgs, `docker://${registry}/${image}`, `oci:${dir}/layout:latest`]);
  await execa('umoci', ['unpack', '--image', `${dir}/layout:latest`, `${dir}/bundle`]);
  return { dir, rootfs: `${dir}/bundle/rootfs`, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Runs a command inside an unpacked image with chroot (tests run as root). */
export async function runInRootfs(rootfs: string, command: string[]): Promise<string> {
  const { stdout } = await execa('/usr/sbin/chroot', [rootfs, ...command], { env: { PATH: '/bin' }, extendEnv: false });
  return stdout;
}
