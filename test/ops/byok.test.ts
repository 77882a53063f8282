/**
 * docs/OPERATIONS.md "Bring your own KMS", run as written: every `sh` block of the section is executed with bash
 * against a real OpenBao server and local-kms (the customer's commands), the operator's `export` blocks become a
 * gateway process's environment, and the customer's revocation and restore are seen through the S3 port.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client, type S3ServiceException } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchGateway, ROOT, type GatewayProcess } from '../../tools/gateway.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { startLocalKms, type LocalKmsHandle } from '../helpers/local-kms.ts';
import { startOpenBao, type OpenBaoHandle } from '../helpers/openbao.ts';

const doc = readFileSync(path.join(ROOT, 'docs/OPERATIONS.md'), 'utf8');
const section = doc.slice(doc.indexOf('\n## Bring your own KMS\n'), doc.indexOf('\n## ', doc.indexOf('\n## Bring your own KMS\n') + 5));
const blocks = [...section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);

/** Run a block with bash -eu; `probe` is appended (to print what the block set). */
function sh(block: string, env: Record<string, string>, probe = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('bash', ['-euo', 'pipefail', '-c', `${block}\n${probe}`], { env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`block failed: ${String(stderr)}\n${block}`));
      else resolve(String(stdout));
    });
  });
}

/** The LAKECRYPT_* variables an `export` block sets. */
async function exported(block: string, env: Record<string, string>): Promise<Record<string, string>> {
  const out = await sh(block, env, 'env -0');
  return Object.fromEntries(
    out
      .split('\0')
      .filter((l) => l.startsWith('LAKECRYPT_'))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

let bao: OpenBaoHandle;
let kms: LocalKmsHandle;
const gateways: GatewayProcess[] = [];

beforeAll(async () => {
  [bao, kms] = await Promise.all([startOpenBao(), startLocalKms()]);
}, 120_000);
afterAll(async () => {
  await Promise.all(gateways.map((g) => g.stop()));
  await Promise.all([bao?.stop(), kms?.stop()]);
});

async function readOutcome(g: GatewayProcess, bucket: string): Promise<string> {
  const s3 = new S3Client({ endpoint: g.url, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: g.accessKey, secretAccessKey: g.secretKey } });
  try {
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'k' }));
    return (await got.Body!.transformToString()) === 'byok' ? 'ok' : 'WRONG BYTES';
  } catch (e) {
    return (e as S3ServiceException).name;
  }
}

async function startWith(env: Record<string, string>, bucket: string): Promise<GatewayProcess> {
  const g = await launchGateway({ env: { ...env, LAKECRYPT_KEY_CACHE_TTL_MS: '1000' }, quiet: true });
  gateways.push(g);
  const s3 = new S3Client({ endpoint: g.url, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: g.accessKey, secretAccessKey: g.secretKey } });
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'byok' }));
  expect(await readOutcome(g, bucket)).toBe('ok');
  return g;
}

describe('docs/OPERATIONS.md "Bring your own KMS", as written', () => {
  it('has the eight blocks the walk-throughs need', () => {
    expect(blocks).toHaveLength(8);
  });

  it('OpenBao: the customer sets up a key and a narrow token, the gateway runs on it, the customer cuts it off and lets it back', async () => {
    const secrets = makeTmpDir('lakecrypt-byok-').path;
    const customer = { BAO_ADDR: bao.addr, BAO_TOKEN: bao.token, SECRETS: secrets, PATH: `${path.dirname(bao.bin)}:${process.env.PATH}` };
    const [setup, operator, cut, restore] = blocks;
    await sh(setup!, customer);
    const env = await exported(operator!, customer);
    expect(env).toMatchObject({ LAKECRYPT_CMK: 'transit', LAKECRYPT_TRANSIT_KEY: 'lake-root' });
    const g = await startWith(env, 'byok-transit');
    // the gateway used the narrow token, not the customer's root token
    expect(readFileSync(path.join(secrets, 'bao-token'), 'utf8').trim()).not.toBe(bao.token);
    await sh(cut!, customer);
    await expect.poll(() => readOutcome(g, 'byok-transit'), { timeout: 30_000, interval: 100 }).toBe('KeyRevoked');
    await sh(restore!, customer);
    await expect.poll(() => readOutcome(g, 'byok-transit'), { timeout: 30_000, interval: 100 }).toBe('ok');
  });

  it('AWS KMS (local-kms): the customer creates the key, the gateway runs on it, DisableKey cuts it off, EnableKey lets it back', async () => {
    const customer = {
      KMS_ENDPOINT: kms.endpoint,
      AWS_REGION: kms.region,
      AWS_DEFAULT_REGION: kms.region,
      AWS_ACCESS_KEY_ID: kms.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: kms.credentials.secretAccessKey,
    };
    const [, , , , create, operator, disable, enable] = blocks;
    const keyId = (await sh(create!, customer, 'echo "$KEY_ID"')).trim();
    expect(keyId).toMatch(/^[0-9a-f-]{36}$/);
    const withKey = { ...customer, KEY_ID: keyId };
    const env = await exported(operator!, withKey);
    expect(env).toMatchObject({ LAKECRYPT_CMK: 'awskms', LAKECRYPT_KMS_KEY_ID: keyId });
    const g = await startWith({ ...env, AWS_ACCESS_KEY_ID: customer.AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: customer.AWS_SECRET_ACCESS_KEY }, 'byok-kms');
    await sh(disable!, withKey);
    await expect.poll(() => readOutcome(g, 'byok-kms'), { timeout: 30_000, interval: 100 }).toBe('KeyRevoked');
    await sh(enable!, withKey);
    await expect.poll(() => readOutcome(g, 'byok-kms'), { timeout: 30_000, interval: 100 }).toBe('ok');
  });
});
