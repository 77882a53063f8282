/**
 * Issue #19 item 2: the haproxy configuration of docs/OPERATIONS.md ("Load balancer (haproxy)"), run as written
 * (Debian's haproxy) in front of three gateways on one MinIO: haproxy's own health check (`GET /readyz HTTP/1.0`,
 * no Host header) marks all three UP; S3 clients sign against haproxy's address and work through it; a gateway
 * whose backend stops answering goes unready (from cached state) and haproxy takes it out while clients keep being
 * served by the other two; when its backend answers again it is put back.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { createBackend } from '../../src/backend/index.ts';
import { LocalCmkProvider } from '../../src/keys/local-cmk.ts';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { freePort } from '../../tools/ports.ts';
import { ROOT, findBinary, startProcess, type RunningProcess } from '../../tools/process.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { pollUntil } from '../../tools/wait.ts';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.ts';

const minio = inject('minio');
const tmp = makeTmpDir('lakecrypt-haproxy-');
const user = { accessKey: 'lb-user', secretKey: randomBytes(18).toString('base64url') };
const meta = `lcmeta-lb-${randomBytes(3).toString('hex')}`;
const bucket = `lb-${randomBytes(3).toString('hex')}`;
let proxies: FaultProxy[] = [];
const gws: TestGateway[] = [];
let haproxy: RunningProcess;
let lbPort = 0;
let statsPort = 0;
let hang = false;

/** The haproxy.cfg block of docs/OPERATIONS.md. */
function documentedConfig(): string {
  const doc = readFileSync(path.join(ROOT, 'docs/OPERATIONS.md'), 'utf8');
  const m = /<!-- haproxy\.cfg -->\n```\n([\s\S]*?)```/.exec(doc);
  if (!m) throw new Error('docs/OPERATIONS.md has no haproxy.cfg block');
  return m[1];
}

/** Server name -> status (UP, DOWN, ...), from haproxy's CSV stats. */
async function serverStates(): Promise<Record<string, string>> {
  const csv = await (await fetch(`http://127.0.0.1:${statsPort}/stats;csv`)).text();
  const out: Record<string, string> = {};
  for (const line of csv.split('\n')) {
    const f = line.split(',');
    if (f[0] === 'lakecrypt' && f[1] && f[1] !== 'BACKEND') out[f[1]] = f[17]!;
  }
  return out;
}

beforeAll(async () => {
  proxies = await Promise.all([0, 1, 2].map(() => startFaultProxy(minio.endpoint)));
  // gateway 3's backend can be made to hold every request (an unreachable backend)
  proxies[2].fault = () => (hang ? { delayMs: 30_000 } : null);
  for (const p of proxies) {
    gws.push(
      await startTestGateway('s3', {
        backend: createBackend({ kind: 's3', endpoint: p.endpoint, accessKey: minio.accessKey, secretKey: minio.secretKey, region: minio.region }),
        cmks: { default: new LocalCmkProvider({ id: 'default', dataDir: tmp.path }) },
        metaBucket: meta,
        users: [{ ...user, buckets: ['*'], admin: false }],
      }),
    );
  }
  lbPort = await freePort();
  statsPort = await freePort();
  const servers = gws.map((g, i) => `    server gw${i + 1} 127.0.0.1:${new URL(g.url).port} check`).join('\n');
  const cfg =
    documentedConfig()
      .replace(/^ {4}bind :9000$/m, `    bind 127.0.0.1:${lbPort}`)
      .replace(/(?:^ {4}server gw\d .*\n)+/m, `${servers}\n`) +
    `\nlisten stats\n    bind 127.0.0.1:${statsPort}\n    stats enable\n    stats uri /stats\n`;
  expect(cfg).toContain(`bind 127.0.0.1:${lbPort}`);
  expect(cfg.match(/server gw\d 127\.0\.0\.1:/g)?.length).toBe(3);
  const file = path.join(tmp.path, 'haproxy.cfg');
  writeFileSync(file, cfg);
  const bin = findBinary('haproxy') ?? '/usr/sbin/haproxy';
  haproxy = startProcess(bin, ['-f', file, '-db'], {});
}, 120_000);

afterAll(async () => {
  hang = false;
  await haproxy?.stop('SIGTERM', 5000);
  for (const g of gws) await g.close().catch(() => {});
  for (const p of proxies) await p.close();
  tmp.cleanup();
});

describe('haproxy in front of three gateways (docs/OPERATIONS.md configuration)', () => {
  it('marks all three UP with its default check, and S3 clients work through it', async () => {
    await pollUntil(async () => Object.values(await serverStates()).filter((s) => s === 'UP').length === 3, {
      timeoutMs: 60_000,
      intervalMs: 250,
      what: 'all three gateways UP in haproxy',
      giveUpIf: () => (haproxy.running() ? undefined : `haproxy exited: ${haproxy.output()}`),
    });
    const s3 = new S3Client({ endpoint: `http://127.0.0.1:${lbPort}`, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: user.accessKey, secretAccessKey: user.secretKey } });
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    // round robin: consecutive requests land on different gateways; each must serve the others' writes
    for (let i = 0; i < 6; i++) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `k${i}`, Body: `body ${i}` }));
    for (let i = 0; i < 6; i++) expect(await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `k${i}` }))).Body!.transformToString()).toBe(`body ${i}`);
  }, 120_000);

  it('takes out a gateway whose backend stops answering, keeps serving through the others, and puts it back', async () => {
    hang = true;
    await pollUntil(async () => (await serverStates()).gw3 === 'DOWN', { timeoutMs: 60_000, intervalMs: 250, what: 'gw3 DOWN' });
    const states = await serverStates();
    expect(states.gw1).toBe('UP');
    expect(states.gw2).toBe('UP');
    // SDK retries off: every request must be answered by a gateway that is up
    const s3 = new S3Client({ endpoint: `http://127.0.0.1:${lbPort}`, region: 'us-east-1', forcePathStyle: true, maxAttempts: 1, credentials: { accessKeyId: user.accessKey, secretAccessKey: user.secretKey } });
    for (let i = 0; i < 6; i++) expect(await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `k${i}` }))).Body!.transformToString()).toBe(`body ${i}`);
    hang = false;
    await pollUntil(async () => (await serverStates()).gw3 === 'UP', { timeoutMs: 90_000, intervalMs: 250, what: 'gw3 UP again' });
  }, 180_000);
});
