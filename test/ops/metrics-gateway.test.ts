/**
 * Issue #20 items 4 and 6, on a gateway process started as operators start it (src/main.ts wires the metrics):
 * revocation denials by the level that really refused (a block, a KEK version, the customer's CMK), error codes,
 * build info, backend and CMK call metrics, crypto bytes counted by the engine (a copy into another dataset
 * re-encrypts without any request body), per-dataset key state, the epoch age; refusals in the admin's words (the
 * dataset, and for a block the object and its plaintext byte range) and HEAD denials that carry their code.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CopyObjectCommand, CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { AdminClient } from '../../src/cli/client.ts';
import { launchGateway, newCredentials, type GatewayProcess } from '../../tools/gateway.ts';
import { ROOT } from '../../tools/process.ts';
import { signedRequest } from '../../tools/sigv4.ts';
import { pollUntil } from '../../tools/wait.ts';

const MiB = 1024 * 1024;
const root = newCredentials();
let gw: GatewayProcess;
let s3: S3Client;
let admin: AdminClient;

/** The value of one series line (labels exactly as rendered), or undefined. */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
const scrape = async () => (await fetch(`${gw.adminUrl}/metrics`)).text();
const get = (bucket: string, key: string, method = 'GET', headers: Record<string, string> = {}) =>
  signedRequest(gw.url, root, { method, path: `/${bucket}/${key}`, headers, timeoutMs: 30_000 });
const codeIn = (b: Buffer) => /<Code>([^<]+)<\/Code>/.exec(b.toString())?.[1];
const messageIn = (b: Buffer) => /<Message>([^<]+)<\/Message>/.exec(b.toString())?.[1] ?? '';

beforeAll(async () => {
  gw = await launchGateway({
    credentials: root,
    quiet: true,
    env: {
      LAKECRYPT_BLOCK_SIZE: String(MiB),
      // small enough that the datasets below push keys out (lakecrypt_key_cache_evictions_total)
      LAKECRYPT_KEY_CACHE_SIZE: '2',
      LAKECRYPT_CMKS: JSON.stringify([{ id: 'second', provider: 'local' }]),
      LAKECRYPT_DATASETS: JSON.stringify([{ name: 'mx-cmk', cmk: 'second' }]),
    },
  });
  s3 = new S3Client({ endpoint: gw.url, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: root.accessKey, secretAccessKey: root.secretKey } });
  admin = new AdminClient({ url: gw.adminUrl, accessKey: root.accessKey, secretKey: root.secretKey });
  for (const b of ['mx-a', 'mx-b', 'mx-kek', 'mx-cmk']) await s3.send(new CreateBucketCommand({ Bucket: b }));
}, 120_000);

afterAll(async () => {
  await gw?.stop();
});

describe('metrics an operator can alert on', () => {
  it('build info, backend and CMK calls, epoch age, in-flight gauge, latency buckets from 0.5 ms', async () => {
    const version = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    await s3.send(new PutObjectCommand({ Bucket: 'mx-a', Key: 'small', Body: 'hello' }));
    expect((await get('mx-a', 'small')).status).toBe(200);
    const t = await scrape();
    expect(value(t, `lakecrypt_build_info{version="${version}",node="${process.version}"}`)).toBe(1);
    expect(value(t, 'lakecrypt_backend_request_duration_seconds_count{op="putObject"}')).toBeGreaterThan(0);
    expect(value(t, 'lakecrypt_backend_request_duration_seconds_count{op="getObject"}')).toBeGreaterThan(0);
    // the new dataset's KEK was wrapped under the CMK (and stays cached: no unwrap yet); the readiness check pings
    expect(value(t, 'lakecrypt_cmk_request_duration_seconds_count{cmk="default",op="wrap"}')).toBeGreaterThan(0);
    expect(value(t, 'lakecrypt_cmk_request_duration_seconds_count{cmk="default",op="ping"}')).toBeGreaterThan(0);
    expect(value(t, 'lakecrypt_cmk_up{cmk="default"}')).toBe(1);
    expect(value(t, 'lakecrypt_cmk_up{cmk="second"}')).toBe(1);
    const age = value(t, 'lakecrypt_revocation_epoch_age_seconds');
    expect(age).toBeGreaterThanOrEqual(0);
    expect(age).toBeLessThan(60);
    expect(value(t, 'lakecrypt_key_cache_entries')).toBeGreaterThan(0);
    expect(t).toContain('lakecrypt_request_duration_seconds_bucket{le="0.0005",op="GetObject"}');
    expect(value(t, 'lakecrypt_requests_in_flight')).toBeGreaterThanOrEqual(0);
    expect(t).toContain('lakecrypt_received_bytes_total');
    expect(t).not.toContain('lakecrypt_bytes_in_total');
  });

  it('crypto bytes come from the engine: a copy into another dataset re-encrypts without a request body', async () => {
    const before = await scrape();
    const enc0 = value(before, 'lakecrypt_crypto_bytes_total{direction="encrypt"}') ?? 0;
    const body = Buffer.alloc(3 * MiB + 5, 7);
    await s3.send(new PutObjectCommand({ Bucket: 'mx-a', Key: 'big', Body: body }));
    const mid = value(await scrape(), 'lakecrypt_crypto_bytes_total{direction="encrypt"}')!;
    expect(mid - enc0).toBe(body.length);
    // mx-a and mx-b are two datasets: the copy decrypts and encrypts again, inside the gateway
    await s3.send(new CopyObjectCommand({ Bucket: 'mx-b', Key: 'big', CopySource: 'mx-a/big' }));
    const after = await scrape();
    expect(value(after, 'lakecrypt_crypto_bytes_total{direction="encrypt"}')! - mid).toBe(body.length);
    expect(value(after, 'lakecrypt_crypto_bytes_total{direction="decrypt"}')).toBeGreaterThanOrEqual(body.length);
  });

  it('revocation denials by the level that refused, error codes, and refusals in the admin\'s words', async () => {
    // a block (DEK)
    await s3.send(new PutObjectCommand({ Bucket: 'mx-a', Key: 'blocks', Body: Buffer.alloc(3 * MiB, 1) }));
    await admin.post(AdminClient.path('admin', 'objects', 'revoke'), { bucket: 'mx-a', key: 'blocks', block: 1 });
    const rb = await get('mx-a', 'blocks', 'GET', { range: `bytes=${MiB}-${MiB + 10}` });
    expect(rb.status).toBe(403);
    expect(codeIn(rb.body)).toBe('KeyRevoked');
    expect(messageIn(rb.body)).toContain(`block 1 of part 1 (plaintext bytes ${MiB}-${2 * MiB - 1}) of mx-a/blocks in dataset mx-a is revoked`);
    // a KEK version
    await s3.send(new PutObjectCommand({ Bucket: 'mx-kek', Key: 'k', Body: 'kek data' }));
    await admin.post(AdminClient.path('admin', 'keys', 'mx-kek', 'revoke'), {});
    const rk = await pollUntil(async () => {
      const r = await get('mx-kek', 'k');
      return r.status === 403 && r;
    });
    expect(messageIn(rk.body)).toMatch(/dataset mx-kek/);
    // HEAD has no body: the code and the message travel in headers
    const head = await get('mx-kek', 'k', 'HEAD');
    expect(head.status).toBe(403);
    expect(head.headers['x-lakecrypt-error-code']).toBe('KeyRevoked');
    expect(String(head.headers['x-lakecrypt-error-desc'])).toMatch(/dataset mx-kek/);
    // the customer's CMK (version 1 of the second CMK disabled)
    await s3.send(new PutObjectCommand({ Bucket: 'mx-cmk', Key: 'c', Body: 'cmk data' }));
    await admin.post(AdminClient.path('admin', 'cmk', 'disable'), { cmk: 'second', version: 1, confirm: true });
    const rc = await pollUntil(async () => {
      const r = await get('mx-cmk', 'c');
      return r.status === 403 && r;
    });
    expect(messageIn(rc.body)).toMatch(/dataset mx-cmk/);
    const t = await scrape();
    expect(value(t, 'lakecrypt_revocation_denials_total{level="dek"}')).toBeGreaterThanOrEqual(1);
    expect(value(t, 'lakecrypt_revocation_denials_total{level="kek"}')).toBeGreaterThanOrEqual(1);
    expect(value(t, 'lakecrypt_revocation_denials_total{level="cmk"}')).toBeGreaterThanOrEqual(1);
    expect(value(t, 'lakecrypt_request_errors_total{op="GetObject",code="KeyRevoked"}')).toBeGreaterThanOrEqual(3);
    expect(value(t, 'lakecrypt_cmk_errors_total{cmk="second",op="unwrap",code="KeyRevoked"}')).toBeGreaterThanOrEqual(1);
    await admin.post(AdminClient.path('admin', 'cmk', 'enable'), { cmk: 'second', version: 1 });
    // readable again: through a real unwrap, counted by provider kind
    await pollUntil(async () => (await get('mx-cmk', 'c')).status === 200, { what: 'mx-cmk readable after enable' });
    expect(value(await scrape(), 'lakecrypt_key_unwraps_total{provider="local"}')).toBeGreaterThanOrEqual(1);
  });

  it('key state per dataset: versions by state and the active version\'s age; a re-wrap job\'s last success; cache evictions', async () => {
    const before = Math.floor(Date.now() / 1000);
    await admin.post(AdminClient.path('admin', 'keys', 'mx-b', 'rotate'), { rewrap: true });
    const job = await pollUntil(async () => {
      const x = await scrape();
      const v = value(x, 'lakecrypt_job_last_success_timestamp_seconds{job="rewrap",dataset="mx-b"}');
      return v !== undefined && v;
    }, { timeoutMs: 60_000, intervalMs: 500, what: 'the re-wrap job done' });
    expect(job).toBeGreaterThanOrEqual(before);
    expect(value(await scrape(), 'lakecrypt_key_cache_evictions_total')).toBeGreaterThan(0);
    // the datasets gauges are read at most every 30 s: wait for a scrape that shows the rotation
    const t = await pollUntil(async () => {
      const x = await scrape();
      return value(x, 'lakecrypt_dataset_kek_versions{dataset="mx-b",state="decrypt-only"}') === 1 && x;
    }, { timeoutMs: 90_000, intervalMs: 2000, what: 'the rotation in the dataset gauges' });
    expect(value(t, 'lakecrypt_dataset_kek_versions{dataset="mx-b",state="active"}')).toBe(1);
    expect(value(t, 'lakecrypt_dataset_kek_versions{dataset="mx-kek",state="revoked"}')).toBe(1);
    const age = value(t, 'lakecrypt_dataset_active_kek_age_seconds{dataset="mx-b"}');
    expect(age).toBeGreaterThanOrEqual(0);
    expect(age).toBeLessThan(3600);
  }, 120_000);
});
