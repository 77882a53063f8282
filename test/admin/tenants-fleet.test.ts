/**
 * Issue #18's fleet line: two tenants on two gateways over one MinIO, each rooted in its own key at the customer
 * (OpenBao transit keys; then an AWS KMS key on local-kms). The customer disables its key at its own server — no
 * lakecrypt call — and both gateways deny that tenant's GETs and PUTs within the key cache TTL (the delay is
 * printed, not asserted), while the other tenant reads and writes throughout; re-enabled, it works again without
 * a restart.
 */
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client, type S3ServiceException } from '@aws-sdk/client-s3';
import { DisableKeyCommand, EnableKeyCommand } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchGateway, newCredentials, type GatewayProcess } from '../../tools/gateway.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { startLocalKms, type LocalKmsHandle } from '../helpers/local-kms.ts';
import { startOpenBao, type OpenBaoHandle } from '../helpers/openbao.ts';

const TTL_MS = 1000;
const secret = () => randomBytes(18).toString('base64url');
const user = (name: string) => ({ accessKey: `${name}-user`, secretKey: secret() });
const A = user('fa');
const B = user('fb');
const C = user('fc');

let bao: OpenBaoHandle;
let kms: LocalKmsHandle;
let cKey: string;
const gws: GatewayProcess[] = [];

const s3Of = (g: GatewayProcess, c: { accessKey: string; secretKey: string }) =>
  new S3Client({ endpoint: g.url, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: c.accessKey, secretAccessKey: c.secretKey } });

/** 'ok' or the S3 error code: a GET of k and a PUT of a new key, through one gateway. */
async function access(g: GatewayProcess, c: { accessKey: string; secretKey: string }, bucket: string): Promise<{ get: string; put: string }> {
  const code = (e: unknown) => (e as S3ServiceException).name;
  const s3 = s3Of(g, c);
  const get = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'k' })).then(
    async (o) => ((await o.Body!.transformToString()) === `data of ${bucket}` ? 'ok' : 'WRONG BYTES'),
    code,
  );
  const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `w-${randomBytes(4).toString('hex')}`, Body: 'x' })).then(() => 'ok', code);
  return { get, put };
}

beforeAll(async () => {
  [bao, kms] = await Promise.all([startOpenBao(), startLocalKms()]);
  await bao.createKey('fleet-a');
  await bao.createKey('fleet-b');
  cKey = await kms.createKey('fleet c');
  const root = newCredentials();
  const env = {
    LAKECRYPT_BACKEND: 's3',
    LAKECRYPT_S3_ENDPOINT: process.env.LAKECRYPT_TEST_MINIO_ENDPOINT!,
    LAKECRYPT_S3_ACCESS_KEY: process.env.LAKECRYPT_TEST_MINIO_ACCESS_KEY!,
    LAKECRYPT_S3_SECRET_KEY: process.env.LAKECRYPT_TEST_MINIO_SECRET_KEY!,
    LAKECRYPT_META_BUCKET: `fleet-meta-${randomBytes(4).toString('hex')}`,
    LAKECRYPT_KEY_CACHE_TTL_MS: String(TTL_MS),
    LAKECRYPT_EPOCH_POLL_MS: '100',
    AWS_ACCESS_KEY_ID: kms.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: kms.credentials.secretAccessKey,
    LAKECRYPT_CMKS: JSON.stringify([
      { id: 'cmk-a', provider: 'transit', addr: bao.addr, token: bao.token, key: 'fleet-a' },
      { id: 'cmk-b', provider: 'transit', addr: bao.addr, token: bao.token, key: 'fleet-b' },
      { id: 'cmk-c', provider: 'awskms', keyId: cKey, region: kms.region, endpoint: kms.endpoint },
    ]),
    LAKECRYPT_TENANTS: JSON.stringify([
      { name: 'fa', cmk: 'cmk-a', buckets: ['fleet-a'], admins: [] },
      { name: 'fb', cmk: 'cmk-b', buckets: ['fleet-b'], admins: [] },
      { name: 'fc', cmk: 'cmk-c', buckets: ['fleet-c'], admins: [] },
    ]),
    LAKECRYPT_USERS: JSON.stringify([
      { ...A, buckets: ['*'], tenant: 'fa' },
      { ...B, buckets: ['*'], tenant: 'fb' },
      { ...C, buckets: ['*'], tenant: 'fc' },
    ]),
  };
  // One data dir: the default CMK (a local key file, which wraps the audit key) is the operator's, shared.
  const dataDir = makeTmpDir('lakecrypt-fleet-').path;
  for (let i = 0; i < 2; i++) gws.push(await launchGateway({ env, credentials: root, quiet: true, dataDir }));
  const admin = s3Of(gws[0]!, root);
  for (const b of ['fleet-a', 'fleet-b', 'fleet-c']) {
    await admin.send(new CreateBucketCommand({ Bucket: b }));
    await admin.send(new PutObjectCommand({ Bucket: b, Key: 'k', Body: `data of ${b}` }));
  }
}, 180_000);

afterAll(async () => {
  await Promise.all(gws.map((g) => g.stop()));
  await Promise.all([bao?.stop(), kms?.stop()]);
});

/** Both gateways answer `want` for the tenant's GET and PUT; B (the other tenant) is checked on the way. */
async function untilBoth(c: { accessKey: string; secretKey: string }, bucket: string, want: string, label: string, other: [typeof B, string]): Promise<number> {
  const t0 = Date.now();
  await expect
    .poll(
      async () => {
        const seen = await Promise.all(gws.map((g) => access(g, c, bucket)));
        // the other tenant is untouched throughout, on both gateways
        for (const g of gws) expect(await access(g, other[0], other[1])).toEqual({ get: 'ok', put: 'ok' });
        return seen.every((s) => s.get === want && s.put === want);
      },
      { timeout: 60_000, interval: 100 },
    )
    .toBe(true);
  const ms = Date.now() - t0;
  console.log(`[tenants-fleet] ${label}: both gateways after ${ms} ms (key cache TTL ${TTL_MS} ms)`);
  return ms;
}

describe('two tenants on two gateways over one MinIO, roots at the customer', () => {
  it('OpenBao: tenant A disables its transit key (bao soft-delete) -> both gateways deny A, B untouched; restored -> A again, no restart', async () => {
    for (const g of gws) {
      expect(await access(g, A, 'fleet-a')).toEqual({ get: 'ok', put: 'ok' });
      expect(await access(g, B, 'fleet-b')).toEqual({ get: 'ok', put: 'ok' });
    }
    await bao.cli(['delete', 'transit/keys/fleet-a/soft-delete']);
    await untilBoth(A, 'fleet-a', 'KeyRevoked', 'OpenBao soft-delete of A', [B, 'fleet-b']);
    await bao.cli(['write', '-f', 'transit/keys/fleet-a/soft-delete-restore']);
    await untilBoth(A, 'fleet-a', 'ok', 'OpenBao restore of A', [B, 'fleet-b']);
  });

  it('local-kms: tenant C disables its KMS key (DisableKey) -> both gateways deny C, B untouched; EnableKey -> C again', async () => {
    for (const g of gws) expect(await access(g, C, 'fleet-c')).toEqual({ get: 'ok', put: 'ok' });
    await kms.client.send(new DisableKeyCommand({ KeyId: cKey }));
    await untilBoth(C, 'fleet-c', 'KeyRevoked', 'local-kms DisableKey of C', [B, 'fleet-b']);
    await kms.client.send(new EnableKeyCommand({ KeyId: cKey }));
    await untilBoth(C, 'fleet-c', 'ok', 'local-kms EnableKey of C', [B, 'fleet-b']);
  });
});
