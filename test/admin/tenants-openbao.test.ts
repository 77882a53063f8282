/**
 * Tenants as an operator configures them (a gateway process: LAKECRYPT_CMKS, LAKECRYPT_TENANTS, LAKECRYPT_USERS
 * with "tenant"), tenant A rooted in a real OpenBao transit key, tenant B in a local CMK. A bucket A's user creates
 * is rooted in A's transit key; A's admin sees and rotates only that CMK; the customer's revocation at OpenBao
 * (no lakecrypt call) denies A's bucket and leaves B's alone; no admin secret reaches the log.
 */
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client, type S3ServiceException } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminClient } from '../../src/cli/client.ts';
import { launchGateway, type GatewayProcess } from '../../tools/gateway.ts';
import { startOpenBao, type OpenBaoHandle } from '../helpers/openbao.ts';

const secret = () => randomBytes(18).toString('base64url');
const A = { admin: { accessKey: 'ta-admin', secretKey: secret() }, user: { accessKey: 'ta-user', secretKey: secret() } };
const B = { admin: { accessKey: 'tb-admin', secretKey: secret() }, user: { accessKey: 'tb-user', secretKey: secret() } };

let bao: OpenBaoHandle;
let g: GatewayProcess;

const s3Of = (c: { accessKey: string; secretKey: string }) =>
  new S3Client({ endpoint: g.url, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: c.accessKey, secretAccessKey: c.secretKey } });

async function read(c: { accessKey: string; secretKey: string }, bucket: string): Promise<string> {
  try {
    const got = await s3Of(c).send(new GetObjectCommand({ Bucket: bucket, Key: 'k' }));
    return await got.Body!.transformToString();
  } catch (e) {
    return (e as S3ServiceException).name;
  }
}

beforeAll(async () => {
  bao = await startOpenBao();
  await bao.createKey('tenant-a');
  g = await launchGateway({
    env: {
      LAKECRYPT_KEY_CACHE_TTL_MS: '1000',
      LAKECRYPT_CMKS: JSON.stringify([
        { id: 'cmk-a', provider: 'transit', addr: bao.addr, token: bao.token, key: 'tenant-a' },
        { id: 'cmk-b', provider: 'local' },
      ]),
      LAKECRYPT_TENANTS: JSON.stringify([
        { name: 'ta', cmk: 'cmk-a', buckets: [], admins: [A.admin] },
        { name: 'tb', cmk: 'cmk-b', buckets: ['tb-lake'], admins: [B.admin] },
      ]),
      LAKECRYPT_USERS: JSON.stringify([
        { ...A.user, buckets: ['*', 'ta-made'], tenant: 'ta' },
        { ...B.user, buckets: ['*'], tenant: 'tb' },
      ]),
    },
  });
}, 120_000);

afterAll(async () => {
  await g?.stop();
  await bao?.stop();
});

describe('tenants from the environment, A rooted in OpenBao transit', () => {
  it("A's bucket is rooted in its transit key; A's admin manages only that CMK; OpenBao's revocation denies A only", async () => {
    const root = new AdminClient({ url: g.adminUrl, accessKey: g.accessKey, secretKey: g.secretKey });
    await s3Of({ accessKey: g.accessKey, secretKey: g.secretKey }).send(new CreateBucketCommand({ Bucket: 'tb-lake' }));
    await s3Of(A.user).send(new CreateBucketCommand({ Bucket: 'ta-made' }));
    await s3Of(A.user).send(new PutObjectCommand({ Bucket: 'ta-made', Key: 'k', Body: 'a data' }));
    await s3Of(B.user).send(new PutObjectCommand({ Bucket: 'tb-lake', Key: 'k', Body: 'b data' }));
    expect(await read(A.user, 'ta-made')).toBe('a data');
    expect(await read(A.user, 'tb-lake')).toBe('AccessDenied');
    expect(await read(B.user, 'ta-made')).toBe('AccessDenied');
    expect((await root.get<{ cmkId: string }>(AdminClient.path('admin', 'datasets', 'ta-made'))).cmkId).toBe('cmk-a');

    const adminA = new AdminClient({ url: g.adminUrl, ...A.admin });
    const cmks = (await adminA.get<{ cmks: { id: string; kind: string }[] }>('/admin/cmk')).cmks;
    expect(cmks.map((c) => [c.id, c.kind])).toEqual([['cmk-a', 'transit']]);
    expect(await adminA.post('/admin/cmk/rotate', { cmk: 'cmk-b' }).then(() => 'ok', (e: { code?: string }) => e.code)).toBe('AccessDenied');
    expect((await adminA.post<{ cmkId: string; newVersion: number }>('/admin/cmk/rotate', {})).cmkId).toBe('cmk-a');
    expect(await read(A.user, 'ta-made')).toBe('a data');

    // the customer revokes at its own server: every version up to the current one no longer decrypts
    await bao.cli(['write', '-f', 'transit/keys/tenant-a/rotate']);
    await bao.cli(['write', 'transit/keys/tenant-a/config', 'min_decryption_version=3']);
    await expect.poll(() => read(A.user, 'ta-made'), { timeout: 30_000, interval: 100 }).toBe('KeyRevoked');
    expect(await read(B.user, 'tb-lake')).toBe('b data');
    await bao.cli(['write', 'transit/keys/tenant-a/config', 'min_decryption_version=1']);
    await expect.poll(() => read(A.user, 'ta-made'), { timeout: 30_000, interval: 100 }).toBe('a data');

    const log = g.output();
    for (const s of [A.admin.secretKey, B.admin.secretKey, A.user.secretKey, bao.token]) expect(log).not.toContain(s);
  });
});
