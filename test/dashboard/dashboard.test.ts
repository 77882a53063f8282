/**
 * The admin dashboard in real Chromium (playwright-core + Debian's chromium): what it shows is what the admin API
 * answers, its actions ask first and then do the API's call, and an open tab stays cheap (no header scan unless
 * asked, polls at most every 5 s, none while hidden). Screenshots go to test/artifacts/.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CompleteMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand, GetObjectCommand, PutObjectCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { startAdmin, type RunningAdmin } from '../../src/admin/server.ts';
import { createMetrics } from '../../src/ops/metrics.ts';
import { AdminClient } from '../../src/cli/client.ts';
import { observeRequests } from '../../src/server/observe.ts';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { sleep } from '../../tools/wait.ts';

const ARTIFACTS = path.resolve(import.meta.dirname, '../artifacts');
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const BLOCK = 65536;
/** Four blocks, the last one short: block 3 covers bytes 196608-199999. */
const BIG = 200_000;
const POLL = 20_000;

interface KeyView {
  versions: { version: number; state: string; createdAt: string }[];
  revokedBlocks: string[];
}

describe('admin dashboard in headless Chromium', () => {
  let gw: TestGateway;
  let admin: RunningAdmin;
  let browser: Browser;
  let client: AdminClient;
  const shots: string[] = [];

  const keysOf = (ds: string) => client.get<KeyView>(AdminClient.path('admin', 'keys', ds));
  const states = async (ds: string) => (await keysOf(ds)).versions.map((v) => `v${v.version} ${v.state}`).join(', ');
  const shot = async (page: Page, name: string) => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const file = path.join(ARTIFACTS, name);
    await page.screenshot({ path: file, fullPage: true });
    shots.push(file);
    console.log(`screenshot: ${file}`);
  };
  /** Click an action button, check what the dialog says, then confirm (or cancel). */
  const viaDialog = async (page: Page, selector: string, says: RegExp, answer: 'ok' | 'cancel' = 'ok', before?: () => Promise<void>) => {
    await page.click(selector);
    await page.waitForSelector('#confirm[open]');
    expect(await page.textContent('#confirm')).toMatch(says);
    await before?.();
    await page.click(answer === 'ok' ? '#confirm-ok' : '#confirm-cancel');
    await page.waitForSelector('#confirm:not([open])', { state: 'attached' });
  };
  const signIn = async (page: Page) => {
    await page.goto(`${admin.url}/dashboard`);
    await page.fill('#ak', gw.accessKey);
    await page.fill('#sk', gw.secretKey);
    await page.click('#login-btn');
    await page.waitForSelector('li.dataset[data-dataset="sales"]');
  };

  beforeAll(async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    gw = await startTestGateway('fs', { onRequestDone: observeRequests(metrics), blockSize: BLOCK });
    admin = await startAdmin({ gateway: gw.running, metrics, resumeJobs: false, datasets: [{ name: 'sales', rotateEveryDays: 30 }] });
    client = new AdminClient({ url: admin.url, accessKey: gw.accessKey, secretKey: gw.secretKey });
    const s3 = gw.client();
    await s3.send(new CreateBucketCommand({ Bucket: 'sales' }));
    for (let i = 0; i < 40; i++) await s3.send(new PutObjectCommand({ Bucket: 'sales', Key: `2026/obj-${i}`, Body: `row ${i}` }));
    await s3.send(new PutObjectCommand({ Bucket: 'sales', Key: 'big/blob', Body: Buffer.alloc(BIG, 7) }));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--headless=new'] });
  });
  afterAll(async () => {
    await browser?.close();
    await admin?.close();
    await gw?.close();
    if (shots.length) console.log(`dashboard screenshots:\n${shots.join('\n')}`);
  });

  it('sign-in shows no panel; signed in, every panel shows what the API answers; a reload keeps the session', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(`${admin.url}/dashboard`);
    expect(await page.isVisible('#login-form')).toBe(true);
    // the panels exist in the page but are not shown (a CSS display rule once overrode `hidden`)
    expect(await page.isVisible('#app')).toBe(false);
    expect(await page.isVisible('#tree')).toBe(false);
    await page.fill('#ak', gw.accessKey);
    await page.fill('#sk', 'not-the-secret');
    await page.click('#login-btn');
    await expect.poll(() => page.textContent('#login-err')).toMatch(/refused/);
    expect(await page.isVisible('#app')).toBe(false);

    await page.fill('#sk', gw.secretKey);
    await page.click('#login-btn');
    await page.waitForSelector('li.dataset[data-dataset="sales"]');
    expect(await page.isVisible('#login-form')).toBe(false);

    // key state: the API's versions, the active version's age, the policy's next rotation
    const k = await keysOf('sales');
    expect(await page.textContent('li.cmk[data-cmk="default"]')).toContain('CMK default');
    expect(await page.getAttribute('li.version[data-dataset="sales"][data-version="1"]', 'data-state')).toBe(k.versions[0].state);
    expect(await page.textContent('li.dataset[data-dataset="sales"]')).toMatch(/1 active.*active v1, age \d+ s/s);
    const state = await client.get<{ datasets: { dataset: string; rotation: { dueAt: string } | null; activeAgeSeconds: number }[]; audit: { head: number } }>('/admin/dashboard/state');
    const sales = state.datasets.find((d) => d.dataset === 'sales')!;
    expect(Date.parse(sales.rotation!.dueAt)).toBe(Date.parse(k.versions[0].createdAt) + 30 * 86_400_000);
    expect(await page.textContent('li.dataset[data-dataset="sales"] .rotation')).toMatch(/next rotation in (29 d 23 h|30 d).*every 30 d/);
    // CMK provider health, with the readiness check's age
    await expect.poll(() => page.textContent('tr.cmk-row[data-cmk="default"]'), { timeout: POLL }).toMatch(/default.*local.*up.*ago.*v1 active/);
    expect(await page.textContent('#epoch')).toMatch(/revocation epoch confirmed [\d.]+ s ago \(bound 1 s\)/);
    // audit head as /admin/audit says it
    const head = (await client.get<{ head: number }>('/admin/audit', { limit: '1' })).head;
    await expect.poll(async () => Number(await page.textContent('#head-seq')), { timeout: POLL }).toBeGreaterThanOrEqual(head);
    // the charts have axes with units and a time scale
    for (const id of ['#rate-chart', '#latency-chart']) {
      await page.waitForSelector(`${id} line.axis`, { state: 'attached' });
      const labels = await page.$$eval(`${id} text`, (ts) => ts.map((t) => t.textContent ?? ''));
      expect(labels.some((l) => /^\d\d:\d\d$/.test(l)), `${id}: a clock time on the x axis`).toBe(true);
      expect(labels.some((l) => /time \(last 5 min/.test(l))).toBe(true);
      expect(labels).toContain(id === '#latency-chart' ? 'ms' : 'per second');
    }
    // created at run time: the routing panel shows it, with its CMK
    await client.post(AdminClient.path('admin', 'datasets', 'sales/2027/', 'create'));
    await expect.poll(() => page.textContent('tr.dataset-row[data-dataset="sales/2027/"]'), { timeout: POLL }).toMatch(/sales\/2027\/\*.*default.*v1.*registry/);

    // traffic: requests/s and latency come from /metrics' histogram, in ms
    const s3 = gw.client();
    const traffic = (async () => {
      for (let i = 0; i < 300; i++) {
        await s3.send(new PutObjectCommand({ Bucket: 'sales', Key: `live/${i % 20}`, Body: Buffer.alloc(4096, 1) }));
        await (await s3.send(new GetObjectCommand({ Bucket: 'sales', Key: `2026/obj-${i % 40}` }))).Body!.transformToString();
      }
    })();
    await expect.poll(() => page.textContent('#now-p50'), { timeout: 40_000 }).toMatch(/^[\d.]+ ms$/);
    expect(await page.textContent('#now-p99')).toMatch(/^[\d.]+ ms$/);
    await expect.poll(async () => (await page.getAttribute('#latency-chart path[data-series="p99"]', 'd')) ?? '', { timeout: POLL }).toMatch(/^M[\d.]+,[\d.]+/);
    await traffic;
    await shot(page, 'dashboard.png');

    // a reload keeps the session (GET /admin/whoami gives the page its CSRF token back)
    await page.reload();
    await page.waitForSelector('li.dataset[data-dataset="sales"]');
    expect(await page.isVisible('#login-form')).toBe(false);
    await page.close();
  });

  it('actions ask first, then do the API call: rotate, revoke one or all, restore, schedule and cancel a destruction; revoked blocks show their bytes', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await signIn(page);

    // rotate: the dialog says what happens; v2 on the page and in the API, its re-wrap job finishes
    await viaDialog(page, 'button.rotate[data-dataset="sales"]', /Rotate the KEK of sales.*v2 for new writes/s);
    await page.waitForSelector('li.version[data-dataset="sales"][data-version="2"][data-state="active"]', { timeout: POLL });
    expect((await keysOf('sales')).versions.find((v) => v.state === 'active')?.version).toBe(2);
    await expect.poll(() => page.textContent('tr.rewrap-row[data-dataset="sales"]'), { timeout: 30_000 }).toMatch(/done.*100%/);

    // revoke all: cancelled first (nothing changes), then confirmed
    await viaDialog(page, 'button.revoke-all[data-dataset="sales"]', /Revoke ALL 2 key versions of dataset sales: its data becomes unreadable/, 'cancel');
    expect(await states('sales')).toBe('v1 decrypt-only, v2 active');
    await viaDialog(page, 'button.revoke-all[data-dataset="sales"]', /Revoke ALL/, 'ok', () => shot(page, 'dashboard-confirm.png'));
    await expect.poll(() => states('sales')).toBe('v1 revoked, v2 revoked');
    await page.waitForSelector('tr.revoked-version[data-dataset="sales"][data-version="2"]', { timeout: POLL });
    await expect(gw.client().send(new GetObjectCommand({ Bucket: 'sales', Key: '2026/obj-1' }))).rejects.toThrow();
    // restore all, from its button
    await viaDialog(page, 'button.restore-all[data-dataset="sales"]', /Every revoked key version of dataset sales is restored/);
    await expect.poll(() => states('sales')).toBe('v1 decrypt-only, v2 active');

    // one version: revoke v1, restore v1
    await page.waitForSelector('li.version[data-dataset="sales"][data-version="1"][data-state="decrypt-only"] button.revoke', { timeout: POLL });
    await viaDialog(page, 'li.version[data-dataset="sales"][data-version="1"] button.revoke', /Revoke key version v1 \(decrypt-only\) of dataset sales/);
    await expect.poll(() => states('sales')).toBe('v1 revoked, v2 active');
    await page.click('li.version[data-dataset="sales"][data-version="1"] button.restore', { timeout: POLL });
    await page.click('#confirm-ok');
    await expect.poll(() => states('sales')).toBe('v1 decrypt-only, v2 active');

    // schedule the destruction of v1 with a waiting period, then cancel it
    await page.waitForSelector('li.version[data-dataset="sales"][data-version="1"][data-state="decrypt-only"] button.destroy', { timeout: POLL });
    await viaDialog(page, 'li.version[data-dataset="sales"][data-version="1"] button.destroy', /destroyed for good when the waiting period is over.*at least 604800 = 7 d/s, 'ok', async () => {
      await page.fill('#destroy-wait', String(8 * 86400));
    });
    await expect.poll(() => states('sales')).toBe('v1 pending-destruction, v2 active');
    const due = (await keysOf('sales')).versions[0] as { destroyAt?: string };
    expect(Date.parse(due.destroyAt!) - Date.now()).toBeGreaterThan(7.9 * 86_400_000);
    await page.waitForSelector('li.version[data-dataset="sales"][data-version="1"][data-state="pending-destruction"] .due', { timeout: POLL });
    await viaDialog(page, 'li.version[data-dataset="sales"][data-version="1"] button.cancel-destroy', /scheduled destruction of key version v1 of dataset sales is cancelled/);
    await expect.poll(() => states('sales')).toBe('v1 decrypt-only, v2 active');

    // a revoked block: its object and plaintext bytes, as the API's revocation list and the block size say
    const r = await client.post<{ oid: string; part: number; partBlock: number }>('/admin/objects/revoke', { bucket: 'sales', key: 'big/blob', block: 3 });
    expect((await keysOf('sales')).revokedBlocks).toContain(`${r.oid}:${r.part}:${r.partBlock}`);
    const row = `tr.revoked-block[data-dataset="sales"][data-oid="${r.oid}"]`;
    await page.waitForSelector(row, { timeout: POLL });
    expect(await page.textContent(`${row} .object`)).toBe('sales/big/blob');
    expect(await page.textContent(`${row} .range`)).toBe(`bytes ${3 * BLOCK}-${BIG - 1} (${((BIG - 3 * BLOCK) / 1024).toFixed(1)} KiB)`);
    expect(await page.textContent(row)).toMatch(/block 3.*one part, block size 64\.0 KiB/);

    // in a multipart object the page names the part, and gives the bytes within it and within the object
    const s3 = gw.client();
    const PART = 5 * 1024 * 1024;
    const up = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'sales', Key: 'big/multi' }));
    const etags: string[] = [];
    for (const n of [1, 2]) etags.push((await s3.send(new UploadPartCommand({ Bucket: 'sales', Key: 'big/multi', UploadId: up.UploadId, PartNumber: n, Body: Buffer.alloc(n === 1 ? PART : 100_000, n) }))).ETag!);
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: 'sales', Key: 'big/multi', UploadId: up.UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }));
    // global block 81 = block 1 of part 2 (part 1 holds 80 blocks of 64 KiB)
    const m = await client.post<{ oid: string; part: number; partBlock: number }>('/admin/objects/revoke', { bucket: 'sales', key: 'big/multi', block: PART / BLOCK + 1 });
    expect([m.part, m.partBlock]).toEqual([2, 1]);
    const mrow = `tr.revoked-block[data-dataset="sales"][data-oid="${m.oid}"]`;
    await page.waitForSelector(mrow, { timeout: POLL });
    // part 2 is 100,000 bytes: its block 1 is short, bytes 65536-99999 of the part
    expect(await page.textContent(`${mrow} .range`)).toBe(`bytes ${PART + BLOCK}-${PART + 99_999} (${((100_000 - BLOCK) / 1024).toFixed(1)} KiB); bytes ${BLOCK}-99999 of part 2`);
    expect(await page.textContent(mrow)).toMatch(/block 1 of part 2.*2 parts/);

    // objects per version: only on a click (a header scan), equal to the API's scan
    await page.click('button.count-objects[data-dataset="sales"]');
    const scan = await client.get<{ total: number; byVersion: Record<string, number> }>(AdminClient.path('admin', 'rewrap', 'sales'));
    await expect.poll(() => page.textContent('li.version[data-dataset="sales"][data-version="2"] .objects'), { timeout: POLL }).toBe(`${scan.byVersion['2'] ?? 0} objects`);
    expect(scan.total).toBeGreaterThanOrEqual(42);

    // the audit chain: verified on a click, as the API verifies it
    await page.click('#verify');
    await expect.poll(() => page.textContent('#verify-result'), { timeout: POLL }).toMatch(/chain intact/);
    const verified = await client.get<{ ok: boolean; count: number }>('/admin/audit/verify');
    expect(verified.ok).toBe(true);
    const counted = Number(await page.textContent('#verify-count'));
    expect(counted).toBeGreaterThan(10);
    expect(counted).toBeLessThanOrEqual(verified.count);
    await expect.poll(() => page.textContent('#audit'), { timeout: POLL }).toMatch(/block\.revoke/);
    await shot(page, 'dashboard-actions.png');
    await page.close();
  });

  it('an open tab: no header scan, polls at most every 5 s without overlap, none while hidden', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    // Headless Chromium keeps every tab visible (a tab brought to front, a minimized window: still 'visible'), so
    // the page's view of its visibility is driven here: document.visibilityState reads a flag this test sets, and
    // the browser's own visibilitychange event is dispatched as a real tab switch would.
    await page.addInitScript(() => {
      const w = window as unknown as { tabHidden?: boolean };
      Object.defineProperty(Document.prototype, 'visibilityState', { configurable: true, get: () => (w.tabHidden ? 'hidden' : 'visible') });
      Object.defineProperty(Document.prototype, 'hidden', { configurable: true, get: () => !!w.tabHidden });
    });
    const setHidden = (hidden: boolean) =>
      page.evaluate((h) => {
        (window as unknown as { tabHidden?: boolean }).tabHidden = h;
        document.dispatchEvent(new Event('visibilitychange'));
      }, hidden);
    await signIn(page);
    const seen: { url: string; t: number }[] = [];
    page.on('request', (req) => seen.push({ url: req.url(), t: Date.now() }));
    await sleep(12_000);
    const polls = seen.filter((s) => s.url.includes('/admin/dashboard/state'));
    expect(polls.length, 'state polls in 12 s').toBeGreaterThan(0);
    expect(polls.length, 'state polls in 12 s').toBeLessThanOrEqual(3);
    for (let i = 1; i < polls.length; i++) expect(polls[i].t - polls[i - 1].t).toBeGreaterThanOrEqual(4_900);
    expect(seen.filter((s) => s.url.includes('/admin/rewrap/')), 'header scans of an idle tab').toEqual([]);

    // hidden: not one request for 15 s (three polls' worth)
    await setHidden(true);
    expect(await page.evaluate(() => document.visibilityState)).toBe('hidden');
    await sleep(1_000); // a poll already under way when it hid may still finish
    seen.length = 0;
    await sleep(15_000);
    expect(seen.map((s) => s.url), 'requests of a hidden tab in 15 s').toEqual([]);
    // visible again: polling resumes
    await setHidden(false);
    await expect.poll(() => seen.filter((s) => s.url.includes('/admin/dashboard/state')).length, { timeout: POLL }).toBeGreaterThan(0);
    await context.close();
  });
});
