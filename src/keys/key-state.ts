/**
 * The shared core of the key service: the keystore, the CMK registry, the audit sink, and the caches every part
 * reads through — dataset records and unwrapped keys (KEKs, header keys), with the cache `generation` that
 * every clear bumps. Each part of the key service (kek-lifecycle, header-key-service, dek-revocations,
 * cmk-admin, keystore-io, epoch-watch) holds one KeyState; nothing else shares mutable key state.
 *
 * Buffers handed out by `cached` are the cached ones: use them immediately; they are zeroed when they leave the
 * cache.
 */
import type { Backend } from '../backend/types.ts';
import { S3Error } from '../errors.ts';
import type { BestEffort } from './best-effort.ts';
import { LruTtlCache, SecretCache } from './cache.ts';
import { Keystore, NO_CHANGE, datasetIdOf, type DatasetRecord } from './keystore.ts';
import type { CmkProvider } from './types.ts';

/** Where lifecycle events go (the AuditLog; narrow so that the key service does not depend on the log). */
export interface AuditSink {
  append(event: string, details?: Record<string, unknown>, actor?: string): Promise<unknown>;
}

/** A dataset record as cached: the record and its DEK revocation list as a set. */
export interface CachedRecord {
  rec: DatasetRecord;
  revoked: Set<string>;
}

export interface KeyStateOptions {
  backend: Backend;
  metaBucket: string;
  cmks: Record<string, CmkProvider>;
  defaultCmk: string;
  cacheTtlMs: number;
  cacheMax: number;
  audit?: AuditSink;
  bestEffort: BestEffort;
}

export type RecordUpdate = (rec: DatasetRecord) => Promise<DatasetRecord | typeof NO_CHANGE> | DatasetRecord | typeof NO_CHANGE;

export class KeyState {
  readonly keystore: Keystore;
  readonly defaultCmk: string;
  readonly bestEffort: BestEffort;
  /** Replaced by `KeyService.setAudit` (the audit key is wrapped by a CMK of this registry). */
  audit?: AuditSink;
  /** The `keystore/epoch` ETag this gateway last saw or wrote (undefined: not read yet). */
  seenEpoch: string | null | undefined;
  readonly kekCache: SecretCache;
  readonly recCache: LruTtlCache<CachedRecord>;
  private readonly cmks: Record<string, CmkProvider>;
  private readonly inflight = new Map<string, Promise<Buffer>>();
  private readonly invalidateListeners: (() => void)[] = [];
  private gen = 0;

  constructor(opts: KeyStateOptions) {
    this.keystore = new Keystore({ backend: opts.backend, metaBucket: opts.metaBucket });
    this.cmks = { ...opts.cmks };
    for (const [k, p] of Object.entries(this.cmks)) {
      if (p.id !== k) throw new S3Error('InvalidArgument', `cmks["${k}"] has id "${p.id}"`);
    }
    if (!this.cmks[opts.defaultCmk]) throw new S3Error('InvalidArgument', `default CMK "${opts.defaultCmk}" not configured`);
    this.defaultCmk = opts.defaultCmk;
    this.kekCache = new SecretCache({ max: opts.cacheMax, ttlMs: opts.cacheTtlMs });
    this.recCache = new LruTtlCache<CachedRecord>({ max: opts.cacheMax, ttlMs: opts.cacheTtlMs, countGlobally: false });
    this.audit = opts.audit;
    this.bestEffort = opts.bestEffort;
  }

  // ------------------------------------------------------------------ CMK registry

  /** CMK provider by id (throws InvalidArgument when unknown). */
  cmk(id: string): CmkProvider {
    const p = this.cmks[id];
    if (!p) throw new S3Error('InvalidArgument', `unknown CMK "${id}"`);
    return p;
  }

  hasCmk(id: string): boolean {
    return !!this.cmks[id];
  }

  cmkIds(): string[] {
    return Object.keys(this.cmks);
  }

  // ------------------------------------------------------------------ caches

  /** Bumped by every cache clear (see KeyService.cacheGeneration). */
  get generation(): number {
    return this.gen;
  }

  onInvalidate(fn: () => void): void {
    this.invalidateListeners.push(fn);
  }

  /** Drop (and zero) every cached KEK, header key and record; dependent caches drop theirs too. */
  clearCaches(): void {
    this.gen++;
    // unwraps in flight started before the clear: later callers must not join them
    this.inflight.clear();
    this.kekCache.clear();
    this.recCache.clear();
    for (const fn of this.invalidateListeners) fn();
  }

  /**
   * Move the generation without dropping anything: streams in flight re-validate their keys at their next buffer
   * (the epoch watch does this when the revocation state goes stale, so that re-validation must wait for it).
   */
  bumpGeneration(): void {
    this.gen++;
  }

  /** Cache a record read at generation `gen` (not when the caches were cleared since). */
  cacheRecord(rec: DatasetRecord, gen: number): CachedRecord {
    const c: CachedRecord = { rec, revoked: new Set(rec.revokedBlocks) };
    if (gen === this.gen) this.recCache.set(rec.datasetId, c);
    return c;
  }

  /** The dataset's record, cached unless `fresh`; null when the dataset has none yet. */
  async record(dataset: string, fresh = false): Promise<CachedRecord | null> {
    const id = datasetIdOf(dataset);
    if (!fresh) {
      const c = this.recCache.get(id);
      if (c) return c;
    }
    const gen = this.gen;
    const r = await this.keystore.getRecord(id);
    if (!r) return null;
    return this.cacheRecord(r.value, gen);
  }

  /**
   * A cached key, or `unwrap` once however many callers ask meanwhile: a second set of the same entry would zero
   * the buffer the first caller holds. Not cached when the caches were cleared while it ran.
   */
  cached(ck: string, unwrap: () => Promise<Buffer>): Promise<Buffer> {
    const hit = this.kekCache.get(ck);
    if (hit) return Promise.resolve(hit);
    const running = this.inflight.get(ck);
    if (running) return running;
    const gen = this.gen;
    const p = unwrap().then((key) => {
      if (gen === this.gen) this.kekCache.set(ck, key);
      return key;
    });
    this.inflight.set(ck, p);
    // only unregisters: every caller gets p itself, rejection included
    const done = () => this.inflight.delete(ck);
    p.then(done, done);
    return p;
  }

  /** After a keystore change: drop the caches and bump the epoch so that every gateway drops theirs. */
  async afterChange(reason: string): Promise<void> {
    this.clearCaches();
    const etag = await this.keystore.bumpEpoch(reason);
    this.seenEpoch = etag;
    this.clearCaches();
  }

  /** Read-modify-write of an existing record (InvalidArgument when the dataset has none). */
  async mustUpdate(dataset: string, fn: RecordUpdate): Promise<DatasetRecord> {
    const r = await this.keystore.updateRecord(datasetIdOf(dataset), (cur) => {
      if (!cur) throw new S3Error('InvalidArgument', `unknown dataset ${dataset}`);
      return fn(cur);
    });
    return r!.value;
  }
}
