/**
 * The admin surface against pages and callers that are not the admin (issue #16, "High"): a page uploaded by a
 * non-admin user and opened by a signed-in admin cannot drive the admin API, login guessing is throttled, bodies
 * are not read before authentication, and anonymous refusals cannot flood the audit trail.
 */
import { connect } from 'node:net';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { Client as MinioClient } from 'minio';
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { startAdmin, type RunningAdmin } from '../../src/admin/server.ts';
import { AdminClient } from '../../src/cli/client.ts';
import type { AuditEntry } from '../../src/keys/audit.ts';
import { createMetrics } from '../../src/ops/metrics.ts';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';

const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const WRITER = { accessKey: 'WRITERAK0001', secretKey: 'writerSecretKey0000000000000000000000001', buckets: ['pub'], admin: false };
const DS = 'pub';

interface Harness {
  gw: TestGateway;
  admin: RunningAdmin;
}

async function start(extra: Parameters<typeof startTestGateway>[1] = {}): Promise<Harness> {
  const gw = await startTestGateway('fs', { users: [WRITER], ...extra });
  const admin = await startAdmin({ gateway: gw.running, metrics: createMetrics({ defaultMetrics: false }), resumeJobs: false });
  const s3 = gw.client();
  await s3.send(new CreateBucketCommand({ Bucket: DS }));
  await s3.send(new PutObjectCommand({ Bucket: DS, Key: 'data/one', Body: 'one' }));
  return { gw, admin };
}

const close = async (h: Harness | undefined) => {
  await h?.admin.close();
  await h?.gw.close();
};

/** Every audit entry so far. */
const auditOf = (h: Harness): Promise<AuditEntry[]> => h.gw.running.audit.list({ since: 1, limit: 100_000 });

/** The key state an attack would change: versions and their states, and the CMK's versions. */
async function keyState(h: Harness): Promise<string> {
  const ds = await h.gw.running.keys.show(DS);
  const cmks = await h.gw.running.keys.cmkStatus();
  return JSON.stringify({ versions: ds?.versions.map((v) => [v.version, v.state]), cmks: cmks.map((c) => c.versions) });
}

async function login(h: Harness, accessKey = h.gw.accessKey, secretKey = h.gw.secretKey, headers: Record<string, string> = {}) {
  return fetch(`${h.admin.url}/admin/login`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ accessKey, secretKey }) });
}

async function session(h: Harness): Promise<{ cookie: string; csrf: string }> {
  const r = await login(h);
  expect(r.status).toBe(200);
  const body = (await r.json()) as { csrfToken: string };
  return { cookie: r.headers.get('set-cookie')!.split(';')[0]!, csrf: body.csrfToken };
}

describe('admin API: cookie sessions need the CSRF token and the admin origin', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await start();
  });
  afterAll(() => close(h));

  it('a rotate with the session cookie alone is refused, whatever its body type; token + same origin + JSON succeeds', async () => {
    const { cookie, csrf } = await session(h);
    const before = await keyState(h);
    const rotate = (headers: Record<string, string>, body = '{}') =>
      fetch(`${h.admin.url}/admin/keys/${DS}/rotate`, { method: 'POST', headers: { cookie, ...headers }, body });
    const adminOrigin = new URL(h.admin.url).origin;
    const s3Origin = new URL(h.gw.url).origin;
    // What a no-cors fetch or a form from the S3 port sends: text/plain, the page's origin, no token.
    expect((await rotate({ 'content-type': 'text/plain', origin: s3Origin, 'sec-fetch-site': 'same-site' })).status).toBe(403);
    expect((await rotate({ 'content-type': 'text/plain' })).status).toBe(403);
    // Even with the token: another origin, or a cross-site fetch, is refused.
    expect((await rotate({ 'content-type': 'application/json', 'x-lakecrypt-csrf': csrf, origin: s3Origin })).status).toBe(403);
    expect((await rotate({ 'content-type': 'application/json', 'x-lakecrypt-csrf': csrf, 'sec-fetch-site': 'same-site' })).status).toBe(403);
    // A wrong token of the right length.
    expect((await rotate({ 'content-type': 'application/json', 'x-lakecrypt-csrf': 'A'.repeat(csrf.length), origin: adminOrigin })).status).toBe(403);
    // Token and origin right, but not JSON: 415 before anything is done.
    const notJson = await rotate({ 'content-type': 'text/plain', 'x-lakecrypt-csrf': csrf, origin: adminOrigin });
    expect(notJson.status).toBe(415);
    expect(await notJson.json()).toMatchObject({ error: 'UnsupportedMediaType' });
    expect(await keyState(h)).toBe(before);
    const ok = await rotate({ 'content-type': 'application/json', 'x-lakecrypt-csrf': csrf, origin: adminOrigin, 'sec-fetch-site': 'same-origin' });
    expect(ok.status).toBe(200);
    expect(await keyState(h)).not.toBe(before);
    // The refused attempts are in the trail as refusals by the session's admin, the rotation once.
    const audit = await auditOf(h);
    const refused = audit.filter((e) => e.event === 'admin.refused' && e.details.path === `/admin/keys/${DS}/rotate`);
    expect(refused).toHaveLength(6);
    expect(refused.every((e) => e.actor === `admin:${h.gw.accessKey}`)).toBe(true);
    expect(audit.filter((e) => e.event === 'kek.rotate')).toHaveLength(1);
  });

  it('GETs with the cookie work same-origin and are refused cross-site; whoami hands a reloaded page its token', async () => {
    const { cookie, csrf } = await session(h);
    expect((await fetch(`${h.admin.url}/admin/keys`, { headers: { cookie, 'sec-fetch-site': 'same-origin' } })).status).toBe(200);
    expect((await fetch(`${h.admin.url}/admin/keys`, { headers: { cookie, 'sec-fetch-site': 'same-site' } })).status).toBe(403);
    const who = (await (await fetch(`${h.admin.url}/admin/whoami`, { headers: { cookie } })).json()) as { csrfToken?: string };
    expect(who.csrfToken).toBe(csrf);
  });

  it('the CLI (SigV4) is unaffected: it needs no token and no origin', async () => {
    const client = new AdminClient({ url: h.admin.url, accessKey: h.gw.accessKey, secretKey: h.gw.secretKey });
    const r = await client.request('GET', '/admin/keys');
    expect(r.status).toBe(200);
    // the CLI says JSON: a body that is not gets the endpoint's own 400, not a 415 or a 403
    await expect(client.request('POST', '/admin/restore', { raw: Buffer.from('not json') })).rejects.toMatchObject({ code: 'InvalidArgument' });
  });

  it('the body of an unauthenticated request is never read: the refusal comes while the client still holds it', async () => {
    // Headers promise 4 MiB; not one byte of body is sent. Reading before authenticating would wait forever.
    const answer = await new Promise<string>((resolve, reject) => {
      const u = new URL(h.admin.url);
      const sock = connect(Number(u.port), u.hostname);
      let got = '';
      const timer = setTimeout(() => {
        sock.destroy();
        resolve(got);
      }, 15_000);
      sock.on('data', (d) => {
        got += d.toString('latin1');
        if (got.includes('\r\n\r\n')) {
          clearTimeout(timer);
          sock.destroy();
          resolve(got);
        }
      });
      sock.on('error', reject);
      sock.write(`POST /admin/restore HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\nContent-Length: ${4 * 1024 * 1024}\r\n\r\n`);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 403 /);
  });
});

describe('admin login throttling and the refusal trail', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await start();
  });
  afterAll(() => close(h));

  it('after 5 wrong secrets for a key, even the right one answers 429 with Retry-After, and the trail says so', async () => {
    for (let i = 0; i < 5; i++) expect((await login(h, h.gw.accessKey, `wrong-${i}`)).status).toBe(403);
    const throttled = await login(h, h.gw.accessKey, h.gw.secretKey);
    expect(throttled.status).toBe(429);
    expect(Number(throttled.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await throttled.json()).toMatchObject({ error: 'TooManyRequests' });
    const audit = await auditOf(h);
    expect(audit.some((e) => e.event === 'admin.login.throttled')).toBe(true);
    expect(audit.some((e) => e.event === 'admin.login')).toBe(false);
    // The CLI's signed requests are not logins: the admin can still act.
    const client = new AdminClient({ url: h.admin.url, accessKey: h.gw.accessKey, secretKey: h.gw.secretKey });
    expect((await client.request('GET', '/admin/keys')).status).toBe(200);
  });

  it('anonymous refusals are aggregated, signed refusals are each recorded', async () => {
    const before = (await auditOf(h)).length;
    const N = 120;
    await Promise.all(Array.from({ length: N }, () => fetch(`${h.admin.url}/admin/keys`).then((r) => r.arrayBuffer())));
    // A non-admin user with a valid signature is refused: each of those is in the trail.
    const writer = new AdminClient({ url: h.admin.url, accessKey: WRITER.accessKey, secretKey: WRITER.secretKey });
    const M = 30;
    for (let i = 0; i < M; i++) await expect(writer.request('GET', '/admin/keys')).rejects.toMatchObject({ code: 'AccessDenied' });
    let anonymous: AuditEntry[] = [];
    await expect
      .poll(
        async () => {
          const fresh = (await auditOf(h)).slice(before);
          anonymous = fresh.filter((e) => e.event === 'admin.refused' && e.actor === 'anonymous');
          const single = anonymous.filter((e) => e.details.suppressed === undefined).length;
          const counted = anonymous.reduce((n, e) => n + (Number(e.details.suppressed) || 0), 0);
          const signed = fresh.filter((e) => e.event === 'admin.refused' && e.actor === `admin:${WRITER.accessKey}`).length;
          return { total: single + counted, signed };
        },
        { timeout: 20_000, interval: 250 },
      )
      .toEqual({ total: N, signed: M });
    // far fewer records than requests: the flood was counted, not written one by one
    expect(anonymous.length).toBeLessThan(N / 2);
    const metrics = await (await fetch(`${h.admin.url}/metrics`)).text();
    expect(Number(/lakecrypt_admin_refusals_total\{recorded="false"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThan(0);
  });
});

/** The attack as the review ran it: a page uploaded by a non-admin, opened by a signed-in admin. */
const ATTACK_PAGE = (adminUrl: string) => `<!doctype html><html><head><title>report</title></head><body><script>
(async () => {
  const admin = ${JSON.stringify(adminUrl)};
  const tries = [
    ['/admin/keys/${DS}/rotate', '{"rewrap":true}'],
    ['/admin/keys/${DS}/revoke', '{}'],
    ['/admin/keys/${DS}/destroy', '{"version":1,"confirm":true,"force":true}'],
    ['/admin/cmk/disable', '{"version":1,"confirm":true}'],
  ];
  for (const [path, body] of tries) {
    // a simple request: no preflight, cookies included (the admin port is the same site)
    try { await fetch(admin + path, { method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'content-type': 'text/plain' }, body }); } catch {}
    // a JSON request: preflighted, which the admin port does not grant
    try { await fetch(admin + path, { method: 'POST', credentials: 'include', headers: { 'content-type': 'application/json', 'x-lakecrypt-csrf': 'guess' }, body }); } catch {}
  }
  document.title = 'attacked';
})();
</script></body></html>`;

async function uploadAttack(h: Harness): Promise<string> {
  const u = new URL(h.gw.url);
  const writer = new MinioClient({ endPoint: u.hostname, port: Number(u.port), useSSL: false, accessKey: WRITER.accessKey, secretKey: WRITER.secretKey, region: 'us-east-1', pathStyle: true });
  const page = Buffer.from(ATTACK_PAGE(h.admin.url));
  await writer.putObject(DS, 'report.html', page, page.length, { 'Content-Type': 'text/html' });
  return writer.presignedGetObject(DS, 'report.html', 600);
}

describe('in Chromium: a signed-in admin opens a page a non-admin uploaded', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--headless=new'] });
  });
  afterAll(async () => browser?.close());

  for (const variant of ['default (CSP sandbox)', 'CSP off (an operator serving web assets)'] as const) {
    it(`every key stays as it was; the trail records refusals, not actions — ${variant}`, async () => {
      const cspOff = variant.startsWith('CSP off');
      const h = await start(cspOff ? { objectCsp: '' } : {});
      const context = await browser.newContext();
      try {
        const url = await uploadAttack(h);
        const page = await context.newPage();
        await page.goto(`${h.admin.url}/dashboard`);
        await page.fill('#ak', h.gw.accessKey);
        await page.fill('#sk', h.gw.secretKey);
        await page.click('#login-btn');
        await page.waitForSelector(`li.dataset[data-dataset="${DS}"]`);
        const before = await keyState(h);
        const auditBefore = (await auditOf(h)).length;

        const evil = await context.newPage();
        const resp = await evil.goto(url);
        expect(resp!.status()).toBe(200);
        const headers = resp!.headers();
        expect(headers['x-content-type-options']).toBe('nosniff');
        if (cspOff) {
          expect(headers['content-security-policy']).toBeUndefined();
          // The page's script runs to its end: every attempt was made and answered.
          await expect.poll(() => evil.title(), { timeout: 30_000 }).toBe('attacked');
          await expect
            .poll(async () => (await auditOf(h)).slice(auditBefore).filter((e) => e.event === 'admin.refused').length, { timeout: 20_000 })
            .toBeGreaterThanOrEqual(4);
        } else {
          expect(headers['content-security-policy']).toBe('sandbox');
          // Scripts do not run in a sandboxed document: give it time, then check nothing ran.
          await new Promise((r) => setTimeout(r, 2_000));
          expect(await evil.title()).not.toBe('attacked');
        }
        expect(await keyState(h)).toBe(before);
        const after = (await auditOf(h)).slice(auditBefore);
        const actions = after.filter((e) => /^(kek|cmk|block)\./.test(e.event));
        expect(actions).toEqual([]);
        if (cspOff) {
          const refused = after.filter((e) => e.event === 'admin.refused');
          // the simple requests reached the admin port with the admin's cookie and were refused as his
          expect(refused.some((e) => e.details.path === `/admin/keys/${DS}/rotate` && e.actor === `admin:${h.gw.accessKey}`)).toBe(true);
          expect(refused.some((e) => e.details.path === `/admin/keys/${DS}/destroy`)).toBe(true);
        }
        // The dashboard itself still works in the same browser: its own rotate goes through.
        await evil.close();
        await page.bringToFront();
        await page.click(`button.rotate[data-dataset="${DS}"]`);
        await page.click('#confirm-ok'); // the dashboard asks before it rotates
        await page.waitForSelector(`li.version[data-dataset="${DS}"][data-version="2"]`, { timeout: 30_000 });
      } finally {
        await context.close();
        await close(h);
      }
    });
  }
});
