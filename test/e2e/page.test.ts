// The page in a real browser (Debian's Chromium driven by playwright-core)
// through the real Worker in front of a real origin building with Nix:
// search, compose an image of two packages, build it and watch Nix's
// progress arrive while the build is held open, see the pull commands and
// the image's layers, then pull it with skopeo and see that nothing is built
// again. Keyboard use and labels are checked on the way; without
// JavaScript the page still says how to pull and its search form works.
// Screenshots of every step go to test-output/page/.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { OFFLINE_NIX_CONFIG, REPO, startOrigin, type RunningOrigin } from '../support/origin.ts';
import { startEdge, type RunningTestEdge } from '../support/edge.ts';
import { pullAndUnpack } from '../support/clients.ts';
import { nixEnvironment } from '../../origin/nix/settings.ts';

// The browser globals that the callbacks given to page.evaluate use: they run
// in Chromium, but this program is type-checked without the DOM library.
interface BrowserElement {
  readonly id: string;
  readonly textContent: string | null;
  readonly outerHTML: string;
  readonly labels?: { readonly length: number } | null;
  readonly value?: number;
  readonly max?: number;
  matches(selector: string): boolean;
  getAttribute(name: string): string | null;
}
declare const document: {
  readonly activeElement: BrowserElement | null;
  readonly body: unknown;
  querySelectorAll(selector: string): ArrayLike<BrowserElement> & Iterable<BrowserElement>;
  getElementById(id: string): BrowserElement | null;
};
declare const navigator: { readonly clipboard: { readText(): Promise<string> } };

const SECRET = 'page-e2e-secret';
const PAGE_PKGS = join(REPO, 'test/fixtures/page-pkgs');
const SLOW_PKGS = join(REPO, 'test/fixtures/slow-pkgs');
const OUTPUT = join(REPO, 'test-output/page');
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const IMAGE = 'python3packages.requests/slowbuild';

async function launch(userDataDir: string, javaScriptEnabled: boolean): Promise<BrowserContext> {
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1100, height: 900 },
    javaScriptEnabled,
  });
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(OUTPUT, `${name}.png`), fullPage: true });
}

/** Presses Tab until `matches` holds for the focused element; returns how many presses it took. */
async function tabTo(page: Page, matches: string, max = 40): Promise<number> {
  for (let presses = 1; presses <= max; presses++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((selector) => document.activeElement?.matches(selector) ?? false, matches)) return presses;
  }
  assert.fail(`Tab never reached ${matches} in ${max} presses`);
}

const builtLines = (origin: RunningOrigin) => origin.logs.filter((l) => l.msg === 'image built');

describe('the page in Chromium, through the edge', () => {
  let tmp: string;
  let gate: string;
  let salt: string;
  let origin: RunningOrigin;
  let edge: RunningTestEdge;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  before(async () => {
    await mkdir(OUTPUT, { recursive: true });
    tmp = await mkdtemp(join(tmpdir(), 'nixery-page-'));
    // Nix running as root builds as a nixbld user, who must see the gate file.
    await chmod(tmp, 0o755);
    gate = join(tmp, 'release-slow-build');
    salt = randomBytes(8).toString('hex');
    origin = await startOrigin({ env: { NIXERY_PKGS_PATH: PAGE_PKGS, SLOW_PKGS_SALT: salt, SLOW_PKGS_GATE: gate, TMPDIR: tmp, ORIGIN_SECRET: SECRET } });
    edge = await startEdge(origin.url, { bindings: { ORIGIN_SECRET: SECRET } });
    context = await launch(join(tmp, 'chromium'), true);
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: edge.url });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (err) => pageErrors.push(err.message));
  });

  after(async () => {
    await context?.close();
    await edge?.stop();
    await origin?.stop();
    // What this salt built is of no use to anyone else: keep the store small.
    const nixEnv = { SLOW_PKGS_SALT: salt, SLOW_PKGS_GATE: gate, ...nixEnvironment({ NIX_CONFIG: OFFLINE_NIX_CONFIG }) };
    const evaluated = await execa('nix-instantiate', ['--eval', '--strict', '--json', '--expr', `with import ${JSON.stringify(SLOW_PKGS)} { }; map (p: p.outPath) [ slow base ]`], { env: nixEnv, reject: false });
    if (evaluated.exitCode === 0) await execa('nix-store', ['--delete', ...(JSON.parse(evaluated.stdout) as string[])], { env: nixEnv, reject: false });
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('without JavaScript the page says how to pull, and its GET form shows results', { timeout: 120_000 }, async () => {
    const plain = await launch(join(tmp, 'chromium-nojs'), false);
    try {
      const noJs = plain.pages()[0] ?? (await plain.newPage());
      await noJs.goto(`${edge.url}/`);
      assert.match(await noJs.textContent('main') ?? '', new RegExp(`docker pull ${edge.host.replace(/\./g, '\\.')}/shell/hello:latest`));
      assert.equal(await noJs.isVisible('#compose'), false, 'the composer needs the script');
      await noJs.fill('#q', 'hello');
      await Promise.all([noJs.waitForURL(/\?q=hello/), noJs.press('#q', 'Enter')]);
      const first = await noJs.textContent('table.results tbody tr:first-child th');
      assert.match(first ?? '', /^hello/);
      assert.match(first ?? '', new RegExp(`docker pull ${edge.host.replace(/\./g, '\\.')}/hello`));
      assert.equal(await noJs.isVisible('button.add'), false);
      await shot(noJs, '01-no-javascript-search');
    } finally {
      await plain.close();
    }
  });

  test('keyboard: Tab reaches the search box, Enter searches, Add buttons work from the keyboard; inputs are labelled', { timeout: 120_000 }, async () => {
    await page.goto(`${edge.url}/`);
    await page.waitForSelector('#compose', { state: 'visible' });
    await shot(page, '02-start');
    assert.equal(await page.evaluate(() => document.activeElement === document.body), true);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to package search', 'the first stop skips to the search');
    await tabTo(page, '#q');
    await page.keyboard.type('python');
    await page.keyboard.press('Enter');
    await page.waitForSelector('button.add[data-attr="python3Packages.requests"]');
    assert.match(page.url(), /\?q=python/);

    const unlabelled = await page.evaluate(() =>
      [...document.querySelectorAll('input, select, textarea')]
        .filter((e) => e.labels?.length === 0 && !e.getAttribute('aria-label'))
        .map((e) => e.outerHTML),
    );
    assert.deepEqual(unlabelled, []);
    assert.equal(await page.getByLabel('Package name or description').getAttribute('id'), 'q');
    assert.equal(await page.getByLabel('Architecture').getAttribute('id'), 'arch');
    const nameless = await page.evaluate(() =>
      [...document.querySelectorAll('button')].filter((b) => !(b.getAttribute('aria-label') ?? b.textContent ?? '').trim()).map((b) => b.outerHTML),
    );
    assert.deepEqual(nameless, []);

    await tabTo(page, 'button.add[data-attr="python3Packages.requests"]');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#chosen li');
    assert.deepEqual(await page.locator('#chosen code').allTextContents(), ['python3Packages.requests']);
    await shot(page, '03-search-python');
  });

  test('a second package is added with Space; the pull commands name this host and copy', { timeout: 120_000 }, async () => {
    await page.focus('#q');
    await page.keyboard.press('Control+A');
    await page.keyboard.type('slow');
    await page.keyboard.press('Enter');
    await page.waitForSelector('button.add[data-attr="slowBuild"]');
    await tabTo(page, 'button.add[data-attr="slowBuild"]');
    await page.keyboard.press('Space');
    await page.waitForFunction(() => document.querySelectorAll('#chosen li').length === 2);
    assert.equal(await page.textContent('#command-docker'), `docker pull ${edge.host}/${IMAGE}:latest`);
    assert.equal(await page.textContent('#command-podman'), `podman pull --tls-verify=false ${edge.host}/${IMAGE}:latest`);
    assert.equal(await page.textContent('#command-skopeo'), `skopeo copy --src-tls-verify=false docker://${edge.host}/${IMAGE}:latest oci:slowbuild:latest`);
    await page.getByRole('button', { name: 'Copy the docker command' }).click();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), `docker pull ${edge.host}/${IMAGE}:latest`);
    assert.match(await page.textContent('#copy-status') ?? '', /Copied the docker command/);
    assert.match(page.url(), /packages=python3Packages\.requests%2CslowBuild|packages=python3Packages\.requests,slowBuild/);
    await shot(page, '04-composed');
  });

  test('Build now streams Nix’s progress while the build runs, then the image’s size and layers', { timeout: 150_000 }, async () => {
    const before = builtLines(origin).length;
    await tabTo(page, '#build');
    await page.keyboard.press('Enter');
    // The slow package's build waits for the gate: whatever shows now came through while Nix was building.
    await page.waitForFunction(() => (document.getElementById('log')?.textContent ?? '').includes('ops-slow-1.0.drv'), null, { timeout: 60_000 });
    assert.match(await page.textContent('#progress-text') ?? '', /Building with Nix/);
    assert.equal(builtLines(origin).length, before, 'the image is not built yet');
    assert.equal(await page.isDisabled('#build'), true);
    await shot(page, '05-building');

    await writeFile(gate, '');
    await page.waitForSelector('#total-size', { timeout: 90_000 });
    const rows = await page.locator('#layers tbody tr').count();
    assert.ok(rows >= 3, `${rows} layers`);
    assert.match(await page.textContent('#total-size') ?? '', /^\d+(\.\d+)? (KiB|MiB)$/);
    assert.match(await page.textContent('#progress-bytes') ?? '', /written by this build/);
    const bar = await page.evaluate(() => {
      const progress = document.getElementById('progress-bar')!;
      return { value: progress.value, max: progress.max, layers: document.querySelectorAll('#layers tbody tr').length };
    });
    assert.deepEqual(bar, { value: rows, max: rows, layers: rows });
    assert.match(await page.textContent('#progress-text') ?? '', /is ready to pull/);
    assert.equal(builtLines(origin).length, before + 1);
    await shot(page, '06-built');
  });

  test('skopeo then pulls that image through the edge without a second build', { timeout: 120_000 }, async () => {
    const before = builtLines(origin).length;
    const image = await pullAndUnpack(edge.host, `${IMAGE}:latest`);
    try {
      assert.ok(await lstat(join(image.rootfs, 'bin/slow')));
      assert.ok(await lstat(join(image.rootfs, 'lib/python3/site-packages/requests/__init__.py')));
    } finally {
      await image.remove();
    }
    assert.equal(builtLines(origin).length, before, 'no second "image built"');
  });

  test('the page fits a phone’s width and follows a dark colour scheme', { timeout: 60_000 }, async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${edge.url}/?q=git&packages=git,htop`);
    await page.waitForSelector('#command-docker');
    const overflow = await page.evaluate(() => {
      const root = (document as unknown as { documentElement: { scrollWidth: number; clientWidth: number } }).documentElement;
      return root.scrollWidth - root.clientWidth;
    });
    assert.equal(overflow, 0, 'no sideways scrolling of the whole page');
    await shot(page, '08-narrow');
    await page.emulateMedia({ colorScheme: 'dark' });
    const background = await page.evaluate(() => (globalThis as unknown as { getComputedStyle(e: unknown): { backgroundColor: string } }).getComputedStyle((document as unknown as { body: unknown }).body).backgroundColor);
    assert.equal(background, 'rgb(15, 19, 24)');
    await shot(page, '09-narrow-dark');
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize({ width: 1100, height: 900 });
  });

  test('the origin answers the page API to its edge only', async () => {
    const direct = await fetch(`${origin.url}/api/failures`);
    assert.equal(direct.status, 403);
    assert.equal(((await direct.json()) as { errors: { code: string }[] }).errors[0]!.code, 'DENIED');
    assert.equal((await fetch(`${edge.url}/api/failures`)).status, 200);
  });

  test('a failing build shows Nix’s message, and the recent failures list it', { timeout: 120_000 }, async () => {
    // Empty the image from the keyboard: each remove button hands focus to the next.
    for (let i = 0; i < 2; i++) {
      await page.focus('#chosen button.remove');
      await page.keyboard.press('Enter');
    }
    assert.equal(await page.locator('#chosen li').count(), 0);
    await page.focus('#q');
    await page.keyboard.press('Control+A');
    await page.keyboard.type('broken');
    await page.keyboard.press('Enter');
    await page.click('button.add[data-attr="brokenPackage"]');
    await page.click('#build');
    await page.waitForSelector('#result .error', { timeout: 60_000 });
    assert.match(await page.textContent('#result') ?? '', /The build failed: nix build failed/);
    assert.match(await page.textContent('#result pre') ?? '', /this package is broken on purpose/);
    await page.waitForSelector('#failures-section', { state: 'visible' });
    assert.match(await page.textContent('#failures') ?? '', /amd64\/brokenpackage:latest/);
    await shot(page, '07-failure');
    assert.deepEqual(pageErrors, []);
  });
});
