/**
 * The audit log's MAC secret: 32 random bytes, created once (If-None-Match: *) and stored wrapped under the
 * default CMK at `keystore/audit-key.json` (AAD `AUDIT_KEY_AAD`); re-wrapped when its CMK rotates. It needs
 * only the keystore and the CMK providers (`AuditKeySource`), so the audit log does not depend on the key
 * service (a KeyService satisfies AuditKeySource as it is).
 */
import { randomBytes } from 'node:crypto';
import { S3Error, isS3Error } from '../errors.ts';
import { AUDIT_KEY_PATH, NO_CHANGE, fromStored, toStored, type Keystore, type StoredWrapped } from './keystore.ts';
import type { CmkProvider } from './types.ts';

/** AAD binding a wrapped blob to its use as the audit key (stored audit keys are bound to it: never change it). */
export const AUDIT_KEY_AAD: Buffer = Buffer.from('lakecrypt/v1 audit-key', 'utf8');

/** The stored document at AUDIT_KEY_PATH. */
export interface StoredAuditKey {
  wrapped: StoredWrapped;
  createdAt: string;
}

/** What loading the audit key takes. */
export interface AuditKeySource {
  /** The keystore holding `keystore/audit-key.json`. */
  readonly keystore: Pick<Keystore, 'readJson' | 'writeJson'>;
  /** The CMK a new audit key is wrapped under. */
  readonly defaultCmk: string;
  /** CMK provider by id (the stored key names the CMK that wrapped it). */
  cmk(id: string): Pick<CmkProvider, 'wrap' | 'unwrap'>;
}

/** The 32-byte audit secret (created on first use). Use it as AuditLog's macKey. */
export async function loadAuditKey(src: AuditKeySource): Promise<Buffer> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const cur = await src.keystore.readJson<StoredAuditKey>(AUDIT_KEY_PATH);
    if (cur) {
      const w = fromStored(cur.value.wrapped);
      return src.cmk(w.cmkId).unwrap(w, AUDIT_KEY_AAD);
    }
    const secret = randomBytes(32);
    try {
      const w = await src.cmk(src.defaultCmk).wrap(secret, AUDIT_KEY_AAD);
      await src.keystore.writeJson(AUDIT_KEY_PATH, { wrapped: toStored(w), createdAt: new Date().toISOString() } satisfies StoredAuditKey, null);
      return secret;
    } catch (e) {
      secret.fill(0);
      // another gateway created it first: read theirs
      if (!isS3Error(e, 'PreconditionFailed')) throw e;
    }
  }
  throw new S3Error('ServiceUnavailable', 'could not load the audit key');
}

/**
 * After `cmk` rotated to `toVersion`: re-wrap the audit key under it, if the key is wrapped under an older
 * version of this CMK. A failure is returned (the caller reports it with the KEKs it could not re-wrap), and
 * the stored key is left as it was.
 */
export async function rewrapAuditKey(
  keystore: Pick<Keystore, 'update'>,
  cmk: Pick<CmkProvider, 'id' | 'wrap' | 'unwrap'>,
  toVersion: number,
): Promise<{ rewrapped: boolean; error?: unknown }> {
  let out: { rewrapped: boolean; error?: unknown } = { rewrapped: false };
  await keystore.update<StoredAuditKey>(AUDIT_KEY_PATH, async (cur) => {
    out = { rewrapped: false };
    if (!cur || cur.wrapped.cmkId !== cmk.id || cur.wrapped.cmkVersion === toVersion) return NO_CHANGE;
    let key: Buffer | undefined;
    try {
      key = await cmk.unwrap(fromStored(cur.wrapped), AUDIT_KEY_AAD);
      cur.wrapped = toStored(await cmk.wrap(key, AUDIT_KEY_AAD));
      out.rewrapped = true;
      return cur;
    } catch (e) {
      out.error = e;
      return NO_CHANGE;
    } finally {
      key?.fill(0);
    }
  });
  return out;
}
