/**
 * Dataset KEK records in the backend meta bucket: `keystore/<datasetIdHex>.json`, plus the revocation epoch
 * `keystore/epoch`. Every update is read-modify-write with a conditional write (If-Match the ETag read, or
 * If-None-Match: * on create), retried on PreconditionFailed, so concurrent gateways never lose updates.
 *
 * KEK wrapping AAD = "lakecrypt/v1 kek" || datasetId (32 bytes) || uint32be(version).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Backend } from '../backend/types.ts';
import { S3Error, isS3Error } from '../errors.ts';
import type { WrappedKey } from './types.ts';

/**
 * `pending-destruction`: `keys destroy` scheduled it (reads refused, wrapped material kept until `destroyAt`;
 * `keys cancel-destroy` returns it to `pendingFrom`); then `destroyed` (wrapped material removed).
 */
export type KekState = 'active' | 'decrypt-only' | 'revoked' | 'pending-destruction' | 'destroyed';

export interface StoredWrapped {
  cmkId: string;
  cmkVersion: number;
  /** base64 */
  blob: string;
}

export interface KekVersionRecord {
  version: number;
  state: KekState;
  /** null once destroyed (wrapped material removed permanently). */
  wrapped: StoredWrapped | null;
  createdAt: string;
  /** State before a revoke, so restore can return to it. */
  revokedFrom?: 'active' | 'decrypt-only';
  revokedAt?: string;
  destroyedAt?: string;
  /** Pending destruction: the state to return to on cancel. */
  pendingFrom?: 'decrypt-only' | 'revoked';
  /** Pending destruction: when it is due (ISO time). */
  destroyAt?: string;
  /** Pending destruction: who scheduled it, and when. */
  scheduledBy?: string;
  scheduledAt?: string;
  /** Pending destruction scheduled with force: destroyed when due even if headers still reference it. */
  destroyForced?: boolean;
  /** Pending destruction that came due while headers still referenced it (not forced): left pending. */
  destroyBlocked?: { at: string; referencingHeaders: number };
}

/**
 * A header key: the key format-2 headers of the dataset are sealed under (docs/FORMAT.md 3.4), wrapped under one
 * of the dataset's KEK versions. Re-wrapping after a KEK rotation rewraps these records, not the headers.
 */
export interface HeaderKeyRecord {
  /** Header-key number, from 1, unique in the dataset: the key number of the headers sealed under it. */
  n: number;
  /** The KEK version that was active when it was made: new headers use the newest key of the active version. */
  generation: number;
  /** The KEK version it is wrapped under now. */
  kekVersion: number;
  /** base64 of nonce(12) || AES-256-GCM(KEK, header key, aad = hkAad) || tag(16). */
  blob: string;
  createdAt: string;
}

export interface DatasetRecord {
  /** Dataset name: "bucket" or "bucket/prefix". */
  dataset: string;
  /** hex SHA-256 of the dataset name. */
  datasetId: string;
  cmkId: string;
  versions: KekVersionRecord[];
  /** "<oidHex>:<part>:<block>" or "<oidHex>:*" */
  revokedBlocks: string[];
  policy?: { rotateEveryDays?: number };
  updatedAt?: string;
  /** Header keys (format-2 headers); absent before the first format-2 write. */
  headerKeys?: HeaderKeyRecord[];
  /** The highest header-key number ever given (numbers of retired keys are not reused). */
  lastHeaderKey?: number;
  /**
   * 2 when every header of the dataset is format 2 (the record was made by a gateway writing format 2 only, or a
   * re-wrap job found no format-1 header left): a re-wrap then rewraps header keys only. Absent: format-1
   * headers (sealed under a KEK version directly) may exist.
   */
  headerFormat?: 2;
}

export const KEYSTORE_PREFIX = 'keystore/';
export const EPOCH_KEY = 'keystore/epoch';
export const AUDIT_KEY_PATH = 'keystore/audit-key.json';

export const datasetIdOf = (dataset: string): string => createHash('sha256').update(dataset, 'utf8').digest('hex');
export const recordKey = (datasetIdHex: string): string => `${KEYSTORE_PREFIX}${datasetIdHex}.json`;

export function kekAad(datasetIdHex: string, version: number): Buffer {
  const v = Buffer.alloc(4);
  v.writeUInt32BE(version >>> 0);
  return Buffer.concat([Buffer.from('lakecrypt/v1 kek', 'utf8'), Buffer.from(datasetIdHex, 'hex'), v]);
}

export const toStored = (w: WrappedKey): StoredWrapped => ({ cmkId: w.cmkId, cmkVersion: w.cmkVersion, blob: w.blob.toString('base64') });
export const fromStored = (w: StoredWrapped): WrappedKey => ({ cmkId: w.cmkId, cmkVersion: w.cmkVersion, blob: Buffer.from(w.blob, 'base64') });

/** Thrown by an update function to leave the record unchanged (no write). */
export const NO_CHANGE = Symbol('no-change');

export interface Versioned<T> {
  value: T;
  etag: string;
}

export class Keystore {
  readonly backend: Backend;
  readonly metaBucket: string;
  /** Max attempts of a conditional read-modify-write before giving up (SlowDown). */
  maxAttempts = 200;
  private bucketReady?: Promise<void>;

  constructor(opts: { backend: Backend; metaBucket: string }) {
    this.backend = opts.backend;
    this.metaBucket = opts.metaBucket;
  }

  /** Creates the meta bucket if it does not exist (once per instance). */
  ensureBucket(): Promise<void> {
    this.bucketReady ??= (async () => {
      if (await this.backend.bucketExists(this.metaBucket)) return;
      try {
        await this.backend.createBucket(this.metaBucket);
      } catch (e) {
        if (!isS3Error(e, 'BucketAlreadyOwnedByYou') && !isS3Error(e, 'BucketAlreadyExists')) throw e;
      }
    })();
    this.bucketReady.catch(() => (this.bucketReady = undefined));
    return this.bucketReady;
  }

  async readJson<T>(key: string): Promise<Versioned<T> | null> {
    await this.ensureBucket();
    try {
      const { data, info } = await this.backend.getBuffer(this.metaBucket, key);
      return { value: JSON.parse(data.toString('utf8')) as T, etag: info.etag };
    } catch (e) {
      if (isS3Error(e, 'NoSuchKey')) return null;
      throw e;
    }
  }

  /** Conditional write: etag null = create only (If-None-Match: *). */
  async writeJson(key: string, value: unknown, etag: string | null): Promise<string> {
    await this.ensureBucket();
    const body = Buffer.from(JSON.stringify(value, null, 1), 'utf8');
    const opts = etag === null ? { size: body.length, ifNoneMatch: '*' as const } : { size: body.length, ifMatch: etag };
    const r = await this.backend.putObject(this.metaBucket, key, body, opts);
    return r.etag;
  }

  /**
   * Read-modify-write with optimistic concurrency. `fn` gets the current value (null if absent) and returns the
   * new value, or NO_CHANGE to skip writing. Retries (re-reading) on PreconditionFailed.
   */
  async update<T>(key: string, fn: (cur: T | null) => Promise<T | typeof NO_CHANGE> | T | typeof NO_CHANGE): Promise<Versioned<T> | null> {
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      const cur = await this.readJson<T>(key);
      const next = await fn(cur ? structuredClone(cur.value) : null);
      if (next === NO_CHANGE) return cur;
      try {
        const etag = await this.writeJson(key, next, cur ? cur.etag : null);
        return { value: next, etag };
      } catch (e) {
        if (!isS3Error(e, 'PreconditionFailed')) throw e;
        // Someone else wrote in between: back off a little (jittered) and retry on fresh state.
        await new Promise((r) => setTimeout(r, Math.min(50, attempt * 2) * Math.random()));
      }
    }
    throw new S3Error('SlowDown', `too much contention updating ${key}`);
  }

  getRecord(datasetIdHex: string): Promise<Versioned<DatasetRecord> | null> {
    return this.readJson<DatasetRecord>(recordKey(datasetIdHex));
  }

  updateRecord(
    datasetIdHex: string,
    fn: (cur: DatasetRecord | null) => Promise<DatasetRecord | typeof NO_CHANGE> | DatasetRecord | typeof NO_CHANGE,
  ): Promise<Versioned<DatasetRecord> | null> {
    return this.update<DatasetRecord>(recordKey(datasetIdHex), fn);
  }

  /** Every dataset record id (hex) in the keystore. */
  async listIds(): Promise<string[]> {
    await this.ensureBucket();
    const ids: string[] = [];
    let token: string | undefined;
    do {
      const r = await this.backend.listObjects(this.metaBucket, { prefix: KEYSTORE_PREFIX, continuationToken: token, maxKeys: 1000 });
      for (const o of r.objects) {
        const m = /^keystore\/([0-9a-f]{64})\.json$/.exec(o.key);
        if (m) ids.push(m[1]);
      }
      token = r.isTruncated ? r.nextContinuationToken : undefined;
    } while (token);
    return ids;
  }

  async listRecords(): Promise<DatasetRecord[]> {
    const out: DatasetRecord[] = [];
    for (const id of await this.listIds()) {
      const r = await this.getRecord(id);
      if (r) out.push(r.value);
    }
    return out;
  }

  /** Current epoch ETag (null if never bumped). */
  async epochEtag(): Promise<string | null> {
    await this.ensureBucket();
    const h = await this.backend.headObject(this.metaBucket, EPOCH_KEY);
    return h ? h.etag : null;
  }

  /** Bump the revocation epoch (conditional write, retried). Returns the new ETag. */
  async bumpEpoch(reason: string): Promise<string> {
    const r = await this.update<{ epoch: number; at: string; reason: string; nonce: string }>(EPOCH_KEY, (cur) => ({
      epoch: (cur?.epoch ?? 0) + 1,
      at: new Date().toISOString(),
      reason,
      // Guarantees a new ETag even if two bumps produce otherwise identical content.
      nonce: randomBytes(8).toString('hex'),
    }));
    return r!.etag;
  }
}
