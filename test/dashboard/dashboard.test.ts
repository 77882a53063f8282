import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { startAdmin, type RunningAdmin } from '../../src/admin/server.ts';
import { createMetrics } from '../../src/ops/metrics.ts';
import { AdminClient } from '../../src/cli/client.ts';
import { observeRequests } from '../../src/server/observe.ts';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';

const ARTIFACTS = path.resolve(import.meta.dirname, '../artifacts');
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

describe('admin dashboard in headless Chromium', () => {
  let gw: TestGateway;
  let admin: RunningAdmin;
  let browser: Browser;

  beforeAll(async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    gw = await startTestGateway('fs', { onRequestDone: observeRequests(metrics) });
    admin = await startAdmin({ gateway: gw.running, metrics, resumeJobs: false });
    const s3 = gw.client();
    await s3.send(new CreateBucketCommand({ Bucket: 'sales' }));
    for (let i = 0; i < 40; i++) await s3.send(new PutObjectCommand({ Bucket: 'sales', Key: `2026/obj-${i}`, Body: `row ${i}` }));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--headless=new'] });
  });
  afterAll(async () => {
    await browser?.close();
    await admin?.close();
    await gw?.close();
  });

  it('refuses a wrong secret, then logs in, shows the tree, rotates and watches re-wrap reach 100%', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${admin.url}/dashboard`);
    await page.fill('#ak', gw.accessKey);
    await page.fill('#sk', 'not-the-secret');
    await page.click('#login-btn');
    await expect.poll(() => page.textContent('#login-err')).toMatch(/refused/);

    await page.fill('#sk', gw.secretKey);
    await page.click('#login-btn');
    await page.waitForSelector('li.dataset[data-dataset="sales"]');
    // The tree: CMK -> dataset -> version with its object count.
    const cmk = await page.textContent('li.cmk');
    expect(cmk).toContain('CMK default');
    await expect.poll(() => page.textContent('li.version[data-dataset="sales"][data-version="1"]')).toContain('40 objects');
    // Datasets created at run time show in their panel, with where they route and their CMK.
    const client = new AdminClient({ url: admin.url, accessKey: gw.accessKey, secretKey: gw.secretKey });
    await client.post(AdminClient.path('admin', 'datasets', 'sales/2027/', 'create'));
    await expect.poll(() => page.textContent('tr.dataset-row[data-dataset="sales/2027/"]'), { timeout: 20_000 }).toMatch(/sales\/2027\/\*.*default.*v1.*registry/);

    await page.click('button.rotate[data-dataset="sales"]');
    await page.waitForSelector('li.version[data-dataset="sales"][data-version="2"]');
    // Re-wrap runs in the background: progress reaches 100% and nothing stays on v1.
    await expect.poll(() => page.textContent('tr.rewrap-row[data-dataset="sales"] .pct'), { timeout: 30_000 }).toBe('100%');
    await expect.poll(() => page.textContent('tr.rewrap-row[data-dataset="sales"] .pending')).toBe('0');
    await expect.poll(() => page.textContent('li.version[data-dataset="sales"][data-version="2"]')).toContain('40 objects');
    await expect.poll(() => page.textContent('#audit')).toMatch(/kek\.rotate/);
    // The same progress as Prometheus series.
    await expect
      .poll(async () => {
        const text = await (await fetch(`${admin.url}/metrics`)).text();
        // the dataset's one header key moved under v2; no header had to be rewritten
        const keys = Number(/lakecrypt_rewrap_header_keys_total\{dataset="sales"\} (\d+)/.exec(text)?.[1] ?? -1);
        const pending = Number(/lakecrypt_rewrap_pending\{dataset="sales"\} (\d+)/.exec(text)?.[1] ?? -1);
        const resealed = /lakecrypt_rewrap_done_total\{dataset="sales"\}/.test(text);
        return [keys, pending, resealed];
      })
      .toEqual([1, 0, false]);
    // Traffic while the page samples /metrics: the request-rate line leaves the baseline.
    const s3 = gw.client();
    const traffic = (async () => {
      for (let i = 0; i < 60; i++) await s3.send(new PutObjectCommand({ Bucket: 'sales', Key: `live/${i}`, Body: Buffer.alloc(64 * 1024, 1) }));
    })();
    await expect
      .poll(async () => {
        const pts = await page.getAttribute('#graph polyline:first-child', 'points');
        return (pts ?? '').split(' ').some((p) => Number(p.split(',')[1]) < 99);
      }, { timeout: 20_000 })
      .toBe(true);
    await traffic;

    // An idle open tab does not scan the lake every second: with no job moving, the header scan (objects per
    // version) comes at most every 15 s; the per-second refresh asks for the job state only (?scan=0).
    const seen: string[] = [];
    const onRequest = (req: { url(): string }) => {
      if (req.url().includes('/admin/rewrap/')) seen.push(req.url());
    };
    page.on('request', onRequest);
    await new Promise((r) => setTimeout(r, 5_000));
    page.off('request', onRequest);
    const full = seen.filter((u) => !u.includes('scan=0'));
    expect(seen.length - full.length, 'job-state checks').toBeGreaterThan(0);
    expect(full.length, 'full header scans in 5 s of an idle tab').toBeLessThanOrEqual(2);

    mkdirSync(ARTIFACTS, { recursive: true });
    const shot = path.join(ARTIFACTS, 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    const status = await gw.running.keys.show('sales');
    expect(status?.versions.find((v) => v.version === 2)?.state).toBe('active');
  });
});
