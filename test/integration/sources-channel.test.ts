// The channel source end to end: a real origin fetches nixpkgs-style
// tarballs (one top-level directory) of a package set from an archive served
// on 127.0.0.1, or from a file:// URL, with every Nix process it starts noted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { FIXTURE_PKGS, startOrigin, type RunningOrigin } from '../support/origin.ts';
import {
  builds, closedPort, digestOf, makeTarball, packageSet, pullManifest, recordProcesses, serveDirectory, tempDir,
  type ProcessRecorder, type StaticServer,
} from '../support/sources.ts';

const COMMIT = 'c0ffee0000000000000000000000000000c0ffee';

let root: string;
let archive: string;
let server: StaticServer;
let processes: ProcessRecorder;
let origin: RunningOrigin;

/** Publishes a package set whose greeting says `text` as `${name}.tar.gz` in the archive. */
async function publishChannel(name: string, text: string): Promise<void> {
  const set = await packageSet(join(root, `set-${name}-${Date.now()}`), text);
  await makeTarball(set, `nixpkgs-${name}`, join(archive, `${name}.tar.gz`));
}

function channelOrigin(env: Record<string, string>): Promise<RunningOrigin> {
  return startOrigin({ env: { NIXERY_PKGS_PATH: '', NIXERY_CHANNEL_ARCHIVE_URL: `${server.url}/archive`, ...processes.env, ...env } });
}

before(async () => {
  root = await tempDir('channel-source-it-');
  archive = join(root, 'archive');
  // A different greeting per run: a fresh store path, so the fetch really happens.
  const run = `${process.pid}-${Date.now()}`;
  await mkdir(archive);
  await publishChannel('nixos-unstable', `unstable ${run}`);
  await publishChannel('nixos-24.05', `24.05 ${run}`);
  await publishChannel(COMMIT, `commit ${run}`);
  await makeTarball(FIXTURE_PKGS, 'nixpkgs-bundled', join(archive, 'nixpkgs-unstable.tar.gz'));
  server = await serveDirectory(root);
  processes = await recordProcesses();
  origin = await channelOrigin({ NIXERY_CHANNEL: 'nixos-unstable' });
});

after(async () => {
  await origin?.stop();
  await server?.close();
  await processes?.remove();
  if (root) await rm(root, { recursive: true, force: true });
});

test('latest builds the configured channel; a channel name and a commit each build their own version', async () => {
  const latest = await digestOf(origin, 'greeting', 'latest');
  assert.equal(await digestOf(origin, 'greeting', 'nixos-unstable'), latest);
  const release = await digestOf(origin, 'greeting', 'nixos-24.05');
  const commit = await digestOf(origin, 'greeting', COMMIT);
  assert.equal(new Set([latest, release, commit]).size, 3);
  assert.equal(await builds(origin), 3);
  assert.ok(server.requests.includes(`/archive/${COMMIT}.tar.gz`));
  // A channel is resolved by Nix fetching its tarball, trusting a cached download for the source's TTL.
  assert.ok((await processes.commands()).some((c) => c.startsWith('nix-instantiate --option tarball-ttl 3600 --eval')));
});

test('the bundled package set, as a channel tarball, builds hello', async () => {
  const result = await pullManifest(origin, 'hello', 'nixpkgs-unstable');
  assert.equal(result.status, 200, result.body);
  const unknown = await pullManifest(origin, 'hello', 'latest');
  assert.equal(unknown.status, 404, 'the configured channel is another package set, without hello');
  assert.match(unknown.error!.message, /unknown package: hello/);
});

test('a commit is served again without running Nix, and so is a channel within its TTL', async () => {
  await digestOf(origin, 'greeting', COMMIT);
  await digestOf(origin, 'greeting', 'latest');
  await processes.clear();
  await digestOf(origin, 'greeting', COMMIT);
  await digestOf(origin, 'greeting', 'latest');
  await digestOf(origin, 'greeting', 'nixos-unstable');
  assert.deepEqual(await processes.commands(), []);
});

test('a channel that moves keeps its image within the TTL and builds the new version once the TTL is over', async () => {
  const shortTtl = await channelOrigin({ NIXERY_CHANNEL: 'nixos-24.05', NIXERY_CHANNEL_TTL: '1' });
  try {
    const before = await digestOf(origin, 'greeting', 'nixos-24.05');
    assert.equal(await digestOf(shortTtl, 'greeting', 'latest'), before);

    await publishChannel('nixos-24.05', `24.05, a later revision ${Date.now()}`);

    await processes.clear();
    assert.equal(await digestOf(origin, 'greeting', 'nixos-24.05'), before);
    assert.deepEqual(await processes.commands(), [], 'within the TTL nothing is fetched');

    // Nix keeps a download while `fetched + tarball-ttl < now` is false, in whole
    // seconds: with a TTL of 1 s only 2 s later is it surely stale.
    await sleep(2100);
    const after = await digestOf(shortTtl, 'greeting', 'latest');
    assert.notEqual(after, before);
    assert.equal(await digestOf(shortTtl, 'greeting', 'nixos-24.05'), after);
    assert.equal(await builds(shortTtl), 2);
  } finally {
    await shortTtl.stop();
  }
});

test('an archive given as a file:// URL works like one served over HTTP', async () => {
  const local = await startOrigin({ env: { NIXERY_PKGS_PATH: '', NIXERY_CHANNEL_ARCHIVE_URL: pathToFileURL(archive).href } });
  try {
    assert.equal(await digestOf(local, 'greeting', COMMIT), await digestOf(origin, 'greeting', COMMIT));
  } finally {
    await local.stop();
  }
});

test('a channel or commit the archive does not have answers MANIFEST_UNKNOWN with Nix\'s reason, and other images keep being served', async () => {
  const channel = await pullManifest(origin, 'greeting', 'nixos-99.11');
  assert.equal(channel.status, 404);
  assert.equal(channel.error?.code, 'MANIFEST_UNKNOWN');
  assert.match(channel.error!.message, /cannot fetch channel nixos-99\.11: unable to download '.*\/archive\/nixos-99\.11\.tar\.gz': HTTP error 404/);
  // Made-up channel names cost nothing to send: one asked again within FAILURE_TTL runs no Nix.
  await processes.clear();
  assert.deepEqual(await pullManifest(origin, 'greeting', 'nixos-99.11'), channel);
  assert.deepEqual(await processes.commands(), []);

  const commit = await pullManifest(origin, 'greeting', 'd'.repeat(40));
  assert.equal(commit.status, 404);
  assert.equal(commit.error?.code, 'MANIFEST_UNKNOWN');
  assert.match(commit.error!.message, /cannot fetch the package set: unable to download .*HTTP error 404/);

  assert.equal((await pullManifest(origin, 'greeting', 'latest')).status, 200);
});

test('an unreachable archive answers MANIFEST_UNKNOWN with Nix\'s reason', async () => {
  const unreachable = await startOrigin({ env: { NIXERY_PKGS_PATH: '', NIXERY_CHANNEL_ARCHIVE_URL: `http://127.0.0.1:${await closedPort()}/archive` } });
  try {
    const result = await pullManifest(unreachable, 'greeting', 'latest');
    assert.equal(result.status, 404);
    assert.equal(result.error?.code, 'MANIFEST_UNKNOWN');
    assert.match(result.error!.message, /cannot fetch channel nixos-unstable: unable to download .*Couldn't connect to server/);
  } finally {
    await unreachable.stop();
  }
});

test('tags that name no channel or commit are refused before Nix runs', async () => {
  await processes.clear();
  for (const tag of ['v1', 'main', 'nixos-unstable.tar.gz', 'c0ffee', '..%2F..%2Fetc%2Fpasswd']) {
    const result = await pullManifest(origin, 'greeting', tag);
    assert.equal(result.status, 404, tag);
    assert.equal(result.error?.code, 'MANIFEST_UNKNOWN', tag);
  }
  assert.match((await pullManifest(origin, 'greeting', 'v1')).error!.message, /names no nixpkgs version/);
  assert.deepEqual(await processes.commands(), []);
});
