/**
 * Issue #19 item 1: the revocation bound holds whatever the backend's latency. Three gateways share one MinIO, each
 * through its own fault proxy: A issues the revocation; B's every backend request is slowed by 300 ms; C's reads of
 * `keystore/epoch` take 3 s (a meta object on an overloaded node) while its data reads stay fast. Once the revoke
 * call has returned, no read that starts more than the bound (1 s) later is served by any gateway — B denies with
 * KeyRevoked, C (which cannot confirm the epoch within the bound) with 503 KeyStateStale — and a stream C was
 * serving stops instead of running to its end. /readyz says so from cached state, answering even while the
 * backend does not.
 *
 * Every assertion is about which answers a request gets after a point in time measured by the same clock as the
 * gateways (they run in this process); none is about how fast anything runs.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { createBackend } from '../../src/backend/index.ts';
import { LocalCmkProvider } from '../../src/keys/local-cmk.ts';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { signHeaders, signedRequest } from '../../tools/sigv4.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { pollUntil, sleep } from '../../tools/wait.ts';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.ts';

const BOUND_MS = 1000;
const MiB = 1024 * 1024;
const BIG = 40 * MiB;
const minio = inject('minio');
const tmp = makeTmpDir('lakecrypt-bound-');
const meta = `lcmeta-bound-${randomBytes(3).toString('hex')}`;
const bucket = `bound-${randomBytes(3).toString('hex')}`;
const user = { accessKey: 'bound-user', secretKey: randomBytes(18).toString('base64url') };

let proxies: FaultProxy[] = [];
let gws: TestGateway[] = [];
/** Per proxy: what to slow down (set per phase). */
const slow = { b: false, c: false, d: false };

async function gatewayVia(p: FaultProxy): Promise<TestGateway> {
  return startTestGateway('s3', {
    backend: createBackend({ kind: 's3', endpoint: p.endpoint, accessKey: minio.accessKey, secretKey: minio.secretKey, region: minio.region }),
    cmks: { default: new LocalCmkProvider({ id: 'default', dataDir: tmp.path }) },
    metaBucket: meta,
    epochPollMs: 100,
    revocationBoundMs: BOUND_MS,
    users: [{ ...user, buckets: ['*'], admin: true }],
    blockSize: MiB,
  });
}

const get = (g: TestGateway, key: string) => signedRequest(g.url, user, { method: 'GET', path: `/${bucket}/${key}`, timeoutMs: 60_000 });
const codeOf = (body: Buffer) => /<Code>([^<]+)<\/Code>/.exec(body.toString('utf8'))?.[1] ?? '';

/** A GET read slowly: pauses after the first MiB until `resume()`; resolves with the bytes received and how it ended. */
function slowRead(g: TestGateway, key: string) {
  const u = new URL(g.url);
  const { headers } = signHeaders(user, { method: 'GET', host: u.host, path: `/${bucket}/${key}`, payload: 'UNSIGNED-PAYLOAD' });
  let resumeFn = () => {};
  let pausedFn = () => {};
  let isPaused = false;
  const paused = new Promise<void>((r) => (pausedFn = r));
  const done = new Promise<{ status: number; bytes: number; complete: boolean }>((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method: 'GET', path: `/${bucket}/${key}`, headers }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (bytes >= MiB && !isPaused) {
          isPaused = true;
          res.pause();
          resumeFn = () => res.resume();
          pausedFn();
        }
      });
      const end = () => resolve({ status: res.statusCode ?? 0, bytes, complete: res.complete });
      res.on('end', end);
      res.on('close', end);
      res.on('error', end);
    });
    req.on('error', reject);
    req.end();
  });
  return { paused, done, resume: () => resumeFn() };
}

beforeAll(async () => {
  // A, B, C (and D for the probe-without-backend check) each talk to MinIO through their own proxy
  proxies = await Promise.all([0, 1, 2, 3].map(() => startFaultProxy(minio.endpoint)));
  const [, pb, pc, pd] = proxies;
  pb.fault = () => (slow.b ? { delayMs: 300 } : null);
  pc.fault = (req) => (slow.c && decodeURIComponent(req.url ?? '').includes('keystore/epoch') ? { delayMs: 3000 } : null);
  pd.fault = () => (slow.d ? { delayMs: 60_000 } : null);
  gws = [];
  for (const p of proxies) gws.push(await gatewayVia(p));
  const s3 = gws[0].client(user);
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'small', Body: 'plaintext of small' }));
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'big', Body: randomBytes(BIG) }));
}, 120_000);

afterAll(async () => {
  slow.b = slow.c = slow.d = false;
  for (const g of gws) await g.close().catch(() => {});
  for (const p of proxies) await p.close();
  tmp.cleanup();
});

describe('revocation bound under backend latency', () => {
  it('after the revoke call returns, no gateway serves a read started later than the bound; C refuses with KeyStateStale, its stream stops', async () => {
    const [a, b, c] = gws as [TestGateway, TestGateway, TestGateway];
    // every gateway serves the object before (caches warm)
    for (const g of [a, b, c]) {
      const r = await get(g, 'small');
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe('plaintext of small');
    }
    // a slow reader on C, paused after its first MiB
    const stream = slowRead(c, 'big');
    await stream.paused;

    slow.b = true;
    slow.c = true;
    const dataset = a.running.keys.datasetFor(bucket, 'small');
    await a.running.keys.revoke(dataset, undefined, 'test');
    const returned = performance.now();

    // reads through B and C from the moment the call returned, for 2.5 s (C's epoch answers take 3 s)
    const answers: { g: string; startMs: number; status: number; code: string }[] = [];
    const loop = async (name: string, g: TestGateway) => {
      while (performance.now() - returned < 2500) {
        const startMs = performance.now() - returned;
        const r = await get(g, 'small');
        answers.push({ g: name, startMs, status: r.status, code: r.status === 200 ? '' : codeOf(r.body) });
        if (r.status === 200) expect(r.body.toString()).toBe('plaintext of small');
      }
    };
    // the paused stream resumes once the bound has passed
    const resumeAt = (async () => {
      await sleep(Math.max(0, BOUND_MS + 50 - (performance.now() - returned)));
      stream.resume();
    })();
    await Promise.all([loop('B', b), loop('C', c), resumeAt]);

    const late = answers.filter((x) => x.startMs > BOUND_MS);
    expect(late.some((x) => x.g === 'B') && late.some((x) => x.g === 'C'), JSON.stringify(answers.slice(-6))).toBe(true);
    expect(late.filter((x) => x.status === 200)).toEqual([]);
    for (const x of late) expect(x.status === 403 ? x.code : x.status === 503 ? x.code : `${x.status}`, JSON.stringify(x)).toMatch(/^(KeyRevoked|KeyStateStale)$/);
    // C cannot confirm the epoch within the bound: it refuses as stale rather than answering from its caches
    expect(late.filter((x) => x.g === 'C').every((x) => x.code === 'KeyStateStale')).toBe(true);

    const s = await stream.done;
    expect(s.status).toBe(200);
    expect(s.complete).toBe(false);
    expect(s.bytes).toBeLessThan(BIG);
    console.log(`revocation bound: ${answers.length} reads after the call returned, ${late.length} after the bound, none served; ` +
      `first denial on B at ${answers.find((x) => x.g === 'B' && x.status !== 200)?.startMs.toFixed(0)} ms, on C at ` +
      `${answers.find((x) => x.g === 'C' && x.status !== 200)?.startMs.toFixed(0)} ms; C's stream stopped at ${(s.bytes / MiB).toFixed(1)} of ${BIG / MiB} MiB`);

    // B's answers settle on KeyRevoked (its polls confirm within the bound even at +300 ms per request)
    await pollUntil(async () => {
      const r = await get(b, 'small');
      return r.status === 403 && codeOf(r.body) === 'KeyRevoked';
    }, { timeoutMs: 30_000, what: 'B denies with KeyRevoked' });
  }, 120_000);

  it('/readyz answers from cached state: unready on C (epoch unconfirmed) with its age, ready on B, and it answers while the backend does not', async () => {
    const [, b, c, d] = gws as [TestGateway, TestGateway, TestGateway, TestGateway];
    const ready = async (g: TestGateway) => {
      const r = await signedRequest(g.url, user, { method: 'GET', path: '/readyz', timeoutMs: 20_000 });
      return { status: r.status, body: JSON.parse(r.body.toString()) as { ready: boolean; failing?: string; epoch: { ageMs: number | null; boundMs: number } } };
    };
    const rc = await pollUntil(async () => {
      const r = await ready(c);
      return r.status === 503 && r.body.failing === 'epoch' && r;
    }, { timeoutMs: 30_000, what: 'C unready' });
    expect(rc.body.epoch.boundMs).toBe(BOUND_MS);
    expect(rc.body.epoch.ageMs).toBeGreaterThan(BOUND_MS);
    // the native pumps' view of it (freshUntil, CLOCK_MONOTONIC ns): past as well, so a stream on C asks before its next chunk
    expect(c.running.keys.freshUntil[0]).toBeLessThan(process.hrtime.bigint());
    await pollUntil(async () => (await ready(b)).status === 200, { timeoutMs: 30_000, what: 'B ready at +300 ms per backend request' });

    // D's backend stops answering (every request held 60 s): its probe still answers at once from cached state,
    // and goes unready when the epoch has not been confirmed for longer than the bound
    expect((await ready(d)).status).toBe(200);
    slow.d = true;
    const rd = await pollUntil(async () => {
      const r = await ready(d);
      return r.status === 503 && r;
    }, { timeoutMs: 30_000, what: 'D unready' });
    expect(rd.body.failing).toBe('epoch');
    slow.d = false;
    slow.c = false;
    await pollUntil(async () => (await ready(d)).status === 200 && (await ready(c)).status === 200, { timeoutMs: 90_000, intervalMs: 200, what: 'C and D ready again' });
    // confirmed again: freshUntil is the last confirmation plus the bound, ahead of now by at most the bound
    await pollUntil(() => {
      const now = process.hrtime.bigint();
      const until = c.running.keys.freshUntil[0];
      return until > now && until <= now + BigInt(BOUND_MS) * 1_000_000n;
    }, { timeoutMs: 30_000, what: "C's freshUntil ahead of now, within the bound" });
  }, 180_000);
});
