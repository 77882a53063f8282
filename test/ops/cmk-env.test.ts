/**
 * The CMK settings as an operator uses them: a gateway process whose default CMK is an OpenBao transit key
 * (LAKECRYPT_CMK=transit) or an AWS KMS key on local-kms (LAKECRYPT_CMK=awskms), and a tenant CMK from
 * LAKECRYPT_CMKS with a dataset bound to it, which the customer revokes at their own server.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { DisableKeyCommand, EnableKeyCommand } from '@aws-sdk/client-kms';
import { launchGateway, ROOT, type GatewayProcess } from '../../tools/gateway.ts';
import { startOpenBao, type OpenBaoHandle } from '../helpers/openbao.ts';
import { startLocalKms, type LocalKmsHandle } from '../helpers/local-kms.ts';
import { AdminClient } from '../../src/cli/client.ts';
import path from 'node:path';

let bao: OpenBaoHandle;
let kms: LocalKmsHandle;
const gateways: GatewayProcess[] = [];

beforeAll(async () => {
  [bao, kms] = await Promise.all([startOpenBao(), startLocalKms()]);
});
afterAll(async () => {
  await Promise.all(gateways.map((g) => g.stop()));
  await Promise.all([bao?.stop(), kms?.stop()]);
});

const s3Of = (g: GatewayProcess) =>
  new S3Client({ endpoint: g.url, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: g.accessKey, secretAccessKey: g.secretKey } });

async function roundTrip(g: GatewayProcess, bucket: string): Promise<void> {
  const s3 = s3Of(g);
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: `hello ${bucket}` }));
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'k' }));
  expect(await got.Body!.transformToString()).toBe(`hello ${bucket}`);
}

/** The S3 error code of a fresh GET (a new client: nothing cached client-side), or 'ok'. */
async function readOutcome(g: GatewayProcess, bucket: string): Promise<string> {
  return (await readDetail(g, bucket)).code;
}
async function readDetail(g: GatewayProcess, bucket: string): Promise<{ code: string; status?: number; message?: string }> {
  try {
    const got = await s3Of(g).send(new GetObjectCommand({ Bucket: bucket, Key: 'k' }));
    await got.Body!.transformToString();
    return { code: 'ok' };
  } catch (e) {
    const err = e as S3ServiceException;
    return { code: err.name, status: err.$metadata?.httpStatusCode, message: err.message };
  }
}

async function start(env: Record<string, string>): Promise<GatewayProcess> {
  const g = await launchGateway({ env: { LAKECRYPT_KEY_CACHE_TTL_MS: '1000', ...env } });
  gateways.push(g);
  return g;
}

describe('the default CMK in a key service', () => {
  it('LAKECRYPT_CMK=transit: objects round-trip, the admin API shows a transit CMK, the token appears nowhere', async () => {
    await bao.createKey('lake-default');
    const g = await start({ LAKECRYPT_CMK: 'transit', LAKECRYPT_TRANSIT_ADDR: bao.addr, LAKECRYPT_TRANSIT_TOKEN: bao.token, LAKECRYPT_TRANSIT_KEY: 'lake-default' });
    expect(g.output()).toMatch(/CMK:\s+transit/);
    await roundTrip(g, 'transit-default');
    const admin = new AdminClient({ url: g.adminUrl, accessKey: g.accessKey, secretKey: g.secretKey });
    const status = (await admin.get<{ cmks: { id: string; kind: string; ok: boolean }[] }>('/admin/cmk')).cmks;
    expect(status).toEqual([expect.objectContaining({ id: 'default', kind: 'transit', ok: true })]);
    expect(g.output()).not.toContain(bao.token);
  });

  it('LAKECRYPT_CMK=awskms (local-kms endpoint, standard AWS credential variables): objects round-trip', async () => {
    const keyId = await kms.createKey('lake default');
    const g = await start({
      LAKECRYPT_CMK: 'awskms',
      LAKECRYPT_KMS_KEY_ID: keyId,
      LAKECRYPT_KMS_REGION: kms.region,
      LAKECRYPT_KMS_ENDPOINT: kms.endpoint,
      AWS_ACCESS_KEY_ID: kms.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: kms.credentials.secretAccessKey,
    });
    expect(g.output()).toMatch(/CMK:\s+awskms/);
    await roundTrip(g, 'kms-default');
  });

  it('a setting missing or a bad LAKECRYPT_CMKS entry stops start-up with one line naming it, never a secret', async () => {
    const dataDir = path.join(ROOT, '.cache', `cmk-env-${process.pid}`);
    for (const [env, re] of [
      [{ LAKECRYPT_CMK: 'transit', LAKECRYPT_TRANSIT_ADDR: bao.addr, LAKECRYPT_TRANSIT_TOKEN: 'tok-secret-xyz' }, /LAKECRYPT_TRANSIT_KEY\): required when cmk is "transit"/],
      [{ LAKECRYPT_CMKS: JSON.stringify([{ id: 'tenant-x', provider: 'transit', addr: 'not a url', token: 'tok-secret-xyz', key: 'k' }]) }, /CMK "tenant-x": addr: expected/],
    ] as const) {
      const r = await launchGateway({ dataDir, env }).then(
        (g) => ({ started: true, out: g.output(), stop: g.stop() }),
        (e: Error) => ({ started: false, out: e.message, stop: undefined }),
      );
      await r.stop;
      expect(r.started, r.out).toBe(false);
      expect(r.out).toMatch(re);
      expect(r.out).not.toContain('tok-secret-xyz');
      expect(r.out).not.toMatch(/\n\s+at /);
    }
  });
});

describe('a tenant CMK at the customer (LAKECRYPT_CMKS + a dataset bound to it)', () => {
  it('OpenBao: the customer raises min_decryption_version with bao -> the tenant bucket is refused within the TTL, the other reads; lowered -> back', async () => {
    await bao.createKey('tenant-a');
    const g = await start({
      LAKECRYPT_CMKS: JSON.stringify([{ id: 'tenant-a', provider: 'transit', addr: bao.addr, token: bao.token, key: 'tenant-a' }]),
      LAKECRYPT_DATASETS: JSON.stringify([{ name: 'tenant-a-lake', cmk: 'tenant-a' }]),
    });
    await roundTrip(g, 'tenant-a-lake');
    await roundTrip(g, 'operator-lake');
    await bao.cli(['write', '-f', 'transit/keys/tenant-a/rotate']);
    await bao.cli(['write', 'transit/keys/tenant-a/config', 'min_decryption_version=2']);
    const t0 = Date.now();
    await expect.poll(() => readOutcome(g, 'tenant-a-lake'), { timeout: 30_000, interval: 100 }).toBe('KeyRevoked');
    console.log(`[cmk-env] transit tenant revoked at OpenBao -> KeyRevoked after ${Date.now() - t0} ms (TTL 1000 ms)`);
    expect(await readOutcome(g, 'operator-lake')).toBe('ok');
    await bao.cli(['write', 'transit/keys/tenant-a/config', 'min_decryption_version=1']);
    await expect.poll(() => readOutcome(g, 'tenant-a-lake'), { timeout: 30_000, interval: 100 }).toBe('ok');
  });

  it('local-kms: the customer disables the key -> refused within the TTL, the other reads; enabled -> back', async () => {
    const keyId = await kms.createKey('tenant b');
    const g = await start({
      LAKECRYPT_CMKS: JSON.stringify([{ id: 'tenant-b', provider: 'awskms', keyId, region: kms.region, endpoint: kms.endpoint }]),
      LAKECRYPT_DATASETS: JSON.stringify([{ name: 'tenant-b-lake', cmk: 'tenant-b' }]),
      AWS_ACCESS_KEY_ID: kms.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: kms.credentials.secretAccessKey,
    });
    await roundTrip(g, 'tenant-b-lake');
    await roundTrip(g, 'operator-lake-2');
    await kms.client.send(new DisableKeyCommand({ KeyId: keyId }));
    const t0 = Date.now();
    await expect.poll(() => readOutcome(g, 'tenant-b-lake'), { timeout: 30_000, interval: 100 }).toBe('KeyRevoked');
    console.log(`[cmk-env] awskms tenant DisableKey -> KeyRevoked after ${Date.now() - t0} ms (TTL 1000 ms)`);
    expect(await readOutcome(g, 'operator-lake-2')).toBe('ok');
    await kms.client.send(new EnableKeyCommand({ KeyId: keyId }));
    await expect.poll(() => readOutcome(g, 'tenant-b-lake'), { timeout: 30_000, interval: 100 }).toBe('ok');
  });

  it('OpenBao stopped mid-run: hot reads go on from the cache, then a clear 503 naming the CMK (never a 500); back -> recovers, no restart', async () => {
    const own = await startOpenBao({ persistent: true });
    try {
      await own.createKey('tenant-o');
      const g = await start({
        LAKECRYPT_KEY_CACHE_TTL_MS: '3000',
        LAKECRYPT_CMKS: JSON.stringify([{ id: 'tenant-o', provider: 'transit', addr: own.addr, token: own.token, key: 'tenant-o' }]),
        LAKECRYPT_DATASETS: JSON.stringify([{ name: 'tenant-o-lake', cmk: 'tenant-o' }]),
      });
      await roundTrip(g, 'tenant-o-lake');
      await own.kill();
      const t0 = Date.now();
      const seen: string[] = [];
      let last = await readDetail(g, 'tenant-o-lake');
      while (last.code === 'ok' && Date.now() - t0 < 60_000) {
        seen.push('ok');
        await new Promise((r) => setTimeout(r, 100));
        last = await readDetail(g, 'tenant-o-lake');
      }
      console.log(`[cmk-env] OpenBao down: ${seen.length} hot reads served for ${Date.now() - t0} ms (TTL 3000 ms), then ${last.code} ${last.status}`);
      expect(last).toMatchObject({ code: 'ServiceUnavailable', status: 503 });
      expect(last.message).toContain('tenant-o');
      expect(last.message).not.toContain(own.token);
      // stays closed while the server is down: no 500, no stale plaintext
      expect((await readDetail(g, 'tenant-o-lake')).code).toBe('ServiceUnavailable');
      await own.start();
      await expect.poll(() => readOutcome(g, 'tenant-o-lake'), { timeout: 60_000, interval: 200 }).toBe('ok');
    } finally {
      await own.stop();
    }
  });
});
