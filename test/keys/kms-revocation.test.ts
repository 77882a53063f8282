/**
 * Customer-held root keys, end to end against real key servers (no mocks): a KeyService whose dataset is rooted in
 * an OpenBao Transit key or a (local-)KMS key. The customer revokes at their own server, with their own tools
 * (the `bao` CLI, the AWS SDK), and never calls lakecrypt: once the KEK cache TTL has passed, a fresh unwrap is
 * refused with KeyRevoked naming the CMK; re-enabling at the server brings it back for the same KeyService.
 * An outage of the key server: the cached KEK keeps working until the TTL, then ServiceUnavailable naming the CMK
 * (never a 500), and it recovers by itself when the server is back.
 *
 * Delays are printed; the only timing asserted is "within the TTL plus a generous margin" (polling).
 */
import { DisableKeyCommand, EnableKeyCommand } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isS3Error, type S3ErrorCode } from '../../src/errors.ts';
import { AwsKmsCmkProvider } from '../../src/keys/awskms-cmk.ts';
import { KeyService } from '../../src/keys/service.ts';
import { TransitCmkProvider } from '../../src/keys/transit-cmk.ts';
import type { CmkProvider } from '../../src/keys/types.ts';
import { startLocalKms, type LocalKmsHandle } from '../helpers/local-kms.ts';
import { startOpenBao, type OpenBaoHandle } from '../helpers/openbao.ts';
import { MemBackend } from './mem-backend.ts';
import { pollUntil, sleep } from '../../tools/wait.ts';

const META = 'lakecrypt-meta';
const TTL = 1000;
const MARGIN = 20_000;

let bao: OpenBaoHandle;
let kms: LocalKmsHandle;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  [bao, kms] = await Promise.all([startOpenBao({ persistent: true }), startLocalKms()]);
}, 180_000);

afterAll(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  await bao?.stop();
  await kms?.stop();
});

function service(cmk: CmkProvider, ttl = TTL): KeyService {
  const s = new KeyService({ backend: new MemBackend(), metaBucket: META, cmks: { [cmk.id]: cmk }, defaultCmk: cmk.id, cacheTtlMs: ttl, epochPollMs: 50 });
  cleanups.push(async () => {
    await s.stop();
    await cmk.close();
  });
  return s;
}

const outcome = (p: Promise<unknown>): Promise<{ ok: true } | { ok: false; code: string; message: string }> =>
  p.then(
    () => ({ ok: true as const }),
    (e: unknown) => ({ ok: false as const, code: isS3Error(e) ? e.code : `not an S3Error: ${String(e)}`, message: String((e as Error)?.message ?? e) }),
  );

/** Polls `probe` until it fails with `code` (or succeeds, when code is null); returns the delay and the last error. */
async function until(probe: () => Promise<unknown>, code: S3ErrorCode | null, label: string, limitMs = TTL + MARGIN) {
  const t0 = Date.now();
  const o = await pollUntil(
    async () => {
      const o = await outcome(probe());
      // on the way, only the expected outcomes: the old state, or the new one
      if (!o.ok && o.code !== code) expect(['KeyRevoked', 'ServiceUnavailable'], `${label}: ${o.code} ${o.message}`).toContain(o.code);
      return (code === null ? o.ok : !o.ok && o.code === code) ? o : undefined;
    },
    { timeoutMs: limitMs, intervalMs: 100, retryErrors: false, what: label },
  );
  const ms = Date.now() - t0;
  console.log(`[kms-revocation] ${label}: ${ms} ms`);
  return { ms, message: o.ok ? '' : o.message };
}

describe('transit (OpenBao): the customer revokes at their server', () => {
  it('min_decryption_version raised by the customer -> KeyRevoked naming the CMK after the TTL; lowered -> readable again', async () => {
    await bao.createKey('cust-ds');
    const cmk = new TransitCmkProvider({ id: 'cust-transit', addr: bao.addr, token: bao.token, key: 'cust-ds', timeoutMs: 3000 });
    const s = service(cmk);
    const { version, key } = await s.activeKek('lake');
    expect(version).toBe(1);
    const kek = Buffer.from(key);
    // the customer's own admin, with the bao CLI: a new version, then v1 no longer decrypts
    await bao.cli(['write', '-f', 'transit/keys/cust-ds/rotate']);
    await bao.cli(['write', 'transit/keys/cust-ds/config', 'min_decryption_version=2']);
    const r = await until(() => s.kek('lake', 1), 'KeyRevoked', 'transit min_decryption_version=2 -> KeyRevoked');
    expect(r.message).toContain('cust-transit');
    expect(r.message).not.toContain(bao.token);
    expect(r.ms).toBeLessThanOrEqual(TTL + MARGIN);
    await bao.cli(['write', 'transit/keys/cust-ds/config', 'min_decryption_version=1']);
    await until(() => s.kek('lake', 1), null, 'transit min_decryption_version=1 -> readable');
    expect((await s.kek('lake', 1)).equals(kek)).toBe(true);
  });

  it('key soft-deleted by the customer -> KeyRevoked; restored -> readable again', async () => {
    await bao.createKey('cust-ds2');
    const cmk = new TransitCmkProvider({ id: 'cust-transit2', addr: bao.addr, token: bao.token, key: 'cust-ds2', timeoutMs: 3000 });
    const s = service(cmk);
    const kek = Buffer.from((await s.activeKek('lake')).key);
    await bao.cli(['delete', 'transit/keys/cust-ds2/soft-delete']);
    const r = await until(() => s.kek('lake', 1), 'KeyRevoked', 'transit soft-delete -> KeyRevoked');
    expect(r.message).toContain('cust-transit2');
    expect(r.message).toMatch(/soft-deleted/);
    await bao.cli(['write', '-f', 'transit/keys/cust-ds2/soft-delete-restore']);
    await until(() => s.kek('lake', 1), null, 'transit soft-delete-restore -> readable');
    expect((await s.kek('lake', 1)).equals(kek)).toBe(true);
  });

  it('server stopped: cached KEK works until the TTL, then ServiceUnavailable naming the CMK; server back -> recovers', async () => {
    await bao.createKey('cust-ds3');
    const cmk = new TransitCmkProvider({ id: 'cust-transit3', addr: bao.addr, token: bao.token, key: 'cust-ds3', timeoutMs: 2000 });
    const ttl = 3000;
    const s = service(cmk, ttl);
    const kek = Buffer.from((await s.activeKek('lake')).key);
    await s.kek('lake', 1);
    await bao.kill();
    try {
      // still cached (fetched well under the TTL ago)
      expect((await s.kek('lake', 1)).equals(kek)).toBe(true);
      const r = await until(() => s.kek('lake', 1), 'ServiceUnavailable', 'transit server down -> ServiceUnavailable', ttl + MARGIN);
      expect(r.message).toContain('cust-transit3');
      expect(r.message).toContain(bao.addr);
      expect(r.message).not.toContain(bao.token);
    } finally {
      await bao.start();
    }
    await until(() => s.kek('lake', 1), null, 'transit server back -> readable', MARGIN);
    expect((await s.kek('lake', 1)).equals(kek)).toBe(true);
  });
});

describe('awskms (local-kms): the customer disables the key at their KMS', () => {
  it('DisableKey by the customer -> KeyRevoked naming the CMK after the TTL; EnableKey -> readable again', async () => {
    const keyId = await kms.createKey('customer key');
    const cmk = new AwsKmsCmkProvider({ id: 'cust-aws', keyId, endpoint: kms.endpoint, region: kms.region, credentials: kms.credentials, timeoutMs: 3000 });
    const s = service(cmk);
    const kek = Buffer.from((await s.activeKek('lake')).key);
    await kms.client.send(new DisableKeyCommand({ KeyId: keyId }));
    const r = await until(() => s.kek('lake', 1), 'KeyRevoked', 'awskms DisableKey -> KeyRevoked');
    expect(r.message).toContain('cust-aws');
    expect(r.message).not.toContain(kms.credentials.secretAccessKey);
    // no new writes either: a fresh dataset cannot get a KEK
    expect(await outcome(s.activeKek('other'))).toMatchObject({ ok: false, code: 'KeyRevoked' });
    await kms.client.send(new EnableKeyCommand({ KeyId: keyId }));
    await until(() => s.kek('lake', 1), null, 'awskms EnableKey -> readable');
    expect((await s.kek('lake', 1)).equals(kek)).toBe(true);
    expect((await s.activeKek('other')).version).toBe(1);
  });

  it('KMS stopped: cached KEK works until the TTL, then ServiceUnavailable naming the CMK; KMS back -> recovers', async () => {
    const keyId = await kms.createKey('customer key 2');
    const cmk = new AwsKmsCmkProvider({ id: 'cust-aws2', keyId, endpoint: kms.endpoint, region: kms.region, credentials: kms.credentials, timeoutMs: 2000 });
    const ttl = 3000;
    const s = service(cmk, ttl);
    const kek = Buffer.from((await s.activeKek('lake')).key);
    await s.kek('lake', 1);
    await kms.kill();
    try {
      expect((await s.kek('lake', 1)).equals(kek)).toBe(true);
      const r = await until(() => s.kek('lake', 1), 'ServiceUnavailable', 'awskms down -> ServiceUnavailable', ttl + MARGIN);
      expect(r.message).toContain('cust-aws2');
      expect(r.message).toContain(kms.endpoint);
      expect(r.message).not.toContain(kms.credentials.secretAccessKey);
    } finally {
      await kms.start();
    }
    await until(() => s.kek('lake', 1), null, 'awskms back -> readable', MARGIN);
    expect((await s.kek('lake', 1)).equals(kek)).toBe(true);
  });
});
