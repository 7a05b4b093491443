// What arm64 images of the bundled package set need on this x86_64 machine,
// and why they cannot be had when they cannot: Debian's arm64 packages in the
// tree bundled-pkgs/arm64.nix names, qemu-aarch64 registered with the
// kernel (flag F, so a chroot needs no qemu inside), and Nix allowed to build
// aarch64-linux derivations here. scripts/setup-arm64.sh sets up the first
// two; the third is the origin's Nix setting, passed in NIX_CONFIG.
import { execa } from 'execa';
import { open, readFile, readlink, access } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { FIXTURE_PKGS, OFFLINE_NIX_CONFIG } from './origin.ts';

/**
 * The nix.conf line that lets Nix build aarch64-linux derivations on this
 * x86_64 machine: the fixture's builders are the host's busybox and patchelf,
 * copying and patching arm64 files, so no emulation is needed to build.
 */
export const ARM64_NIX_SETTINGS = 'extra-platforms = aarch64-linux';

/** The origin's NIX_CONFIG for arm64 images: offline, and building aarch64-linux. */
export const ARM64_NIX_CONFIG = `${OFFLINE_NIX_CONFIG}\n${ARM64_NIX_SETTINGS}`;

const BINFMT_QEMU = '/proc/sys/fs/binfmt_misc/qemu-aarch64';
const SETUP = 'scripts/setup-arm64.sh (as root) sets this up where the machine allows it';

/** Where the fixture set takes Debian's arm64 packages from, as the set itself says. */
export async function debianArm64Root(): Promise<string> {
  const { stdout } = await execa('nix-instantiate', ['--eval', '--json', join(FIXTURE_PKGS, 'arm64.nix')], {
    env: { NIX_CONFIG: OFFLINE_NIX_CONFIG },
  });
  return JSON.parse(stdout) as string;
}

/** Why this machine cannot build and run arm64 images of the bundled set, or null when it can. */
export async function arm64Unavailable(): Promise<string | null> {
  if (process.getuid?.() !== 0) return 'running images in a chroot needs root';
  let binfmt: string;
  try {
    binfmt = await readFile(BINFMT_QEMU, 'utf8');
  } catch {
    return `qemu-aarch64 is not registered with binfmt_misc (${BINFMT_QEMU} is missing)`;
  }
  if (!/^enabled$/m.test(binfmt)) return 'qemu-aarch64 is registered with binfmt_misc but disabled';
  if (!/^flags:.*F/m.test(binfmt)) return 'qemu-aarch64 is registered without flag F, so it cannot run in a chroot';
  const root = await debianArm64Root();
  try {
    await access(join(root, '.packages'));
  } catch {
    return `Debian's arm64 packages are not extracted into ${root}`;
  }
  return null;
}

/** Fails (never skips) a test that needs arm64 on a machine that lacks it, saying what is missing. */
export async function requireArm64(): Promise<void> {
  const reason = await arm64Unavailable();
  if (reason !== null) throw new Error(`this machine cannot build and run arm64 images: ${reason}; ${SETUP}`);
}

const MACHINES: Record<number, string> = { 0x3e: 'x86-64', 0xb7: 'aarch64' };

/** The machine an ELF file is for (e_machine), e.g. `aarch64`; follows symlinks on the host. */
export async function elfMachine(path: string): Promise<string> {
  const file = await open(path, 'r');
  try {
    const header = Buffer.alloc(20);
    await file.read(header, 0, 20, 0);
    if (header.subarray(0, 4).toString('latin1') !== '\x7fELF') return 'not ELF';
    const machine = header[5] === 1 ? header.readUInt16LE(18) : header.readUInt16BE(18);
    return MACHINES[machine] ?? `e_machine ${machine}`;
  } finally {
    await file.close();
  }
}

/** The ELF machine of a program in an unpacked image, following its links inside the image (not the host's). */
export async function machineInImage(rootfs: string, path: string): Promise<string> {
  for (let hops = 0; hops < 10; hops++) {
    let target: string;
    try {
      target = await readlink(join(rootfs, path));
    } catch {
      return elfMachine(join(rootfs, path));
    }
    path = isAbsolute(target) ? target : join(path, '..', target);
  }
  throw new Error(`${path}: too many links`);
}
