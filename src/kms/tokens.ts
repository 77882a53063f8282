/**
 * Tokens of the KMS endpoint (`X-Vault-Token`): issued to an S3 user by the admin API (`lakecrypt kms token
 * create --user <accessKey>`), checked by every gateway.
 *
 * Why a record in the meta bucket rather than a self-contained MACed token: gateways are stateless and share
 * nothing but the backend, a token must be revocable before it expires (`kms token revoke`), and an operator
 * must be able to list what is outstanding. So each token is one object `kms-tokens/<sha256hex(token)>.json`:
 * the token itself is never stored, only its SHA-256 (the *accessor*, safe to show and to audit: the token
 * has 256 random bits, so the hash gives nothing back).
 *
 * The backend is untrusted (docs/THREAT-MODEL.md), and a record it could write would be a key to every column
 * key of the lake. So each record carries a *seal*: SHA-256(token) wrapped under the default CMK with the
 * record's fields (accessor, user, expiry, issuer) as AAD. A record made up or edited in the backend does not
 * unwrap, and the unwrapped hash must equal the presented token's (constant-time). What the backend can still do
 * is put back a record that was deleted (a revoked token, until it expires) — the same rollback it can do to the
 * keystore. A CMK version disabled after a `cmk rotate` ends the tokens sealed under it (they are short-lived).
 *
 * A verified lookup is cached for `cacheMs` (default 1 s, the revocation bound), so a revoked token stops
 * working on every gateway within that time; failed lookups are not cached.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Backend } from '../backend/types.ts';
import { S3Error, isS3Error } from '../errors.ts';
import { LruTtlCache } from '../keys/cache.ts';
import { fromStored, toStored, type StoredWrapped } from '../keys/keystore.ts';
import type { CmkProvider } from '../keys/types.ts';
import { signaturesEqual } from '../s3/sigv4.ts';

export const TOKEN_PREFIX = 'kms-tokens/';
/** Issued tokens start with this, so that one found in a log or a file is recognisable. */
const TOKEN_MARK = 'lct_';
const TOKEN_RE = /^lct_[A-Za-z0-9_-]{43}$/;
const ACCESSOR_RE = /^[0-9a-f]{64}$/;
const SEAL_LABEL = 'lakecrypt/v1 kms-token\0';
/** A token lives at most this long: it is for a job or a service that asks for a new one, and a leaked one must end on its own. */
export const MAX_TOKEN_TTL_SECONDS = 30 * 86_400;
/** When `kms token create` names no --ttl. */
export const DEFAULT_TOKEN_TTL_SECONDS = 3600;

/** What the meta bucket holds per token (never the token). */
export interface KmsTokenRecord {
  format: 'lakecrypt-kms-token/1';
  /** SHA-256 hex of the token: its name in listings, the audit trail and `kms token revoke`. */
  accessor: string;
  /** The S3 user (access key) the token acts as. */
  user: string;
  createdAt: string;
  /** `admin:<accessKey>` of the issuer. */
  createdBy: string;
  expiresAt: string;
  /** SHA-256(token) wrapped under a CMK, AAD = the fields above (see the file comment). */
  seal: StoredWrapped;
}

/** A record as listings show it. */
export type KmsTokenView = Omit<KmsTokenRecord, 'seal' | 'format'> & { expired: boolean };

/** What the store needs of the key service: the CMKs (a KeyService fits). */
export interface TokenSealer {
  readonly defaultCmk: string;
  cmk(id: string): Pick<CmkProvider, 'wrap' | 'unwrap'>;
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();
const keyOf = (accessor: string): string => `${TOKEN_PREFIX}${accessor}.json`;

function sealAad(r: Pick<KmsTokenRecord, 'accessor' | 'user' | 'createdAt' | 'createdBy' | 'expiresAt'>): Buffer {
  // a fixed field order: the AAD must be the same bytes at every check
  return Buffer.from(SEAL_LABEL + JSON.stringify([r.accessor, r.user, r.createdAt, r.createdBy, r.expiresAt]), 'utf8');
}

export const viewOf = (r: KmsTokenRecord, now = Date.now()): KmsTokenView => ({
  accessor: r.accessor,
  user: r.user,
  createdAt: r.createdAt,
  createdBy: r.createdBy,
  expiresAt: r.expiresAt,
  expired: Date.parse(r.expiresAt) <= now,
});

export class KmsTokens {
  private readonly cache: LruTtlCache<KmsTokenRecord>;

  constructor(
    private readonly o: { backend: Backend; metaBucket: string; sealer: TokenSealer; cacheMs?: number },
  ) {
    this.cache = new LruTtlCache({ max: 10_000, ttlMs: o.cacheMs ?? 1000, countGlobally: false });
  }

  /** Issue a token for `user`, valid for `ttlSeconds`. The token is returned once and never stored. */
  async create(user: string, ttlSeconds: number, createdBy: string): Promise<{ token: string; record: KmsTokenRecord }> {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_TOKEN_TTL_SECONDS) {
      throw new S3Error('InvalidArgument', `ttl must be 1 s to ${MAX_TOKEN_TTL_SECONDS / 86_400} days`);
    }
    const token = TOKEN_MARK + randomBytes(32).toString('base64url');
    const hash = sha256(token);
    const now = Date.now();
    const fields = {
      accessor: hash.toString('hex'),
      user,
      createdAt: new Date(now).toISOString(),
      createdBy,
      expiresAt: new Date(now + ttlSeconds * 1000).toISOString(),
    };
    const w = await this.o.sealer.cmk(this.o.sealer.defaultCmk).wrap(hash, sealAad(fields));
    const record: KmsTokenRecord = { format: 'lakecrypt-kms-token/1', ...fields, seal: toStored(w) };
    const body = Buffer.from(JSON.stringify(record, null, 1), 'utf8');
    await this.o.backend.putObject(this.o.metaBucket, keyOf(record.accessor), body, { size: body.length, ifNoneMatch: '*' });
    return { token, record };
  }

  /**
   * The live record of a presented token, or null (malformed, unknown, expired, revoked, or a record that does
   * not verify). Backend or CMK outages throw (ServiceUnavailable): the caller answers 503, not "invalid".
   */
  async lookup(token: string): Promise<KmsTokenRecord | null> {
    if (!TOKEN_RE.test(token)) return null;
    const hash = sha256(token);
    const accessor = hash.toString('hex');
    const hit = this.cache.get(accessor);
    if (hit) return Date.parse(hit.expiresAt) > Date.now() ? hit : null;
    const rec = await this.read(accessor);
    if (!rec || rec.accessor !== accessor || Date.parse(rec.expiresAt) <= Date.now()) return null;
    let sealed: Buffer;
    try {
      const w = fromStored(rec.seal);
      sealed = await this.o.sealer.cmk(w.cmkId).unwrap(w, sealAad(rec));
    } catch (e) {
      // a record that does not unwrap (forged, edited, or its CMK version disabled) is no token; an outage is
      if (isS3Error(e, 'ServiceUnavailable')) throw e;
      return null;
    }
    const ok = signaturesEqual(sealed.toString('hex'), accessor);
    sealed.fill(0);
    if (!ok) return null;
    this.cache.set(accessor, rec);
    return rec;
  }

  /** The accessor (SHA-256 hex) of a token. */
  static accessorOf(token: string): string {
    return sha256(token).toString('hex');
  }

  /** Revoke by token or accessor: the record is deleted (every gateway within `cacheMs`). Null: no such token. */
  async revoke(tokenOrAccessor: string): Promise<KmsTokenRecord | null> {
    const accessor = ACCESSOR_RE.test(tokenOrAccessor) ? tokenOrAccessor : sha256(tokenOrAccessor).toString('hex');
    const rec = await this.read(accessor);
    if (!rec) return null;
    await this.o.backend.deleteObject(this.o.metaBucket, keyOf(accessor));
    this.cache.delete(accessor);
    return rec;
  }

  /** The record of an accessor (unverified: for listings and revocation), null when there is none. */
  async read(accessor: string): Promise<KmsTokenRecord | null> {
    if (!ACCESSOR_RE.test(accessor)) return null;
    try {
      const { data } = await this.o.backend.getBuffer(this.o.metaBucket, keyOf(accessor));
      const v = JSON.parse(data.toString('utf8')) as KmsTokenRecord;
      return v && typeof v === 'object' && v.format === 'lakecrypt-kms-token/1' ? v : null;
    } catch (e) {
      if (isS3Error(e, 'NoSuchKey') || e instanceof SyntaxError) return null;
      throw e;
    }
  }

  /** Every token record (expired ones too, until revoked), oldest first. */
  async list(): Promise<KmsTokenRecord[]> {
    const out: KmsTokenRecord[] = [];
    let token: string | undefined;
    do {
      const page = await this.o.backend.listObjects(this.o.metaBucket, { prefix: TOKEN_PREFIX, continuationToken: token });
      for (const o of page.objects) {
        const rec = await this.read(o.key.slice(TOKEN_PREFIX.length).replace(/\.json$/, ''));
        if (rec) out.push(rec);
      }
      token = page.isTruncated ? page.nextContinuationToken : undefined;
    } while (token);
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }
}

/** A TTL as `kms token create --ttl` takes it: seconds, or a number with s, m, h or d (`1h`, `90m`, `7d`). */
export function parseTtl(v: unknown): number {
  if (v === undefined || v === null || v === '') return DEFAULT_TOKEN_TTL_SECONDS;
  const m = typeof v === 'number' ? [String(v), String(v), 's'] : typeof v === 'string' ? /^(\d{1,9})([smhd]?)$/.exec(v.trim()) : null;
  if (!m || !Number.isInteger(Number(m[1]))) throw new S3Error('InvalidArgument', 'ttl must be seconds or a number with s, m, h or d (e.g. 1h)');
  const s = Number(m[1]) * { s: 1, '': 1, m: 60, h: 3600, d: 86_400 }[m[2] as 's' | '' | 'm' | 'h' | 'd'];
  if (s < 1 || s > MAX_TOKEN_TTL_SECONDS) throw new S3Error('InvalidArgument', `ttl must be 1 s to ${MAX_TOKEN_TTL_SECONDS / 86_400} days`);
  return s;
}
