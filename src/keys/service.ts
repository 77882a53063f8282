/**
 * KeyService: dataset resolution, KEK lifecycle (lazy create, rotate, revoke/restore/destroy, block revocation),
 * CMK administration (status, rotate with re-wrap, disable, destroy), keystore export/import, KEK cache and the
 * revocation epoch (polled so that every gateway drops its caches within ~1 s of a revocation).
 *
 * Buffers returned by `activeKek`/`kek` are the cached ones: use them immediately (derive, then drop the reference);
 * they are zeroed when they leave the cache. Do not keep them across awaits of unrelated work.
 */
import { randomBytes } from 'node:crypto';
import type { Backend } from '../backend/types.ts';
import { S3Error, isS3Error } from '../errors.ts';
import type { AuditLog } from './audit.ts';
import { LruTtlCache, SecretCache, type CacheStats } from './cache.ts';
import {
  AUDIT_KEY_PATH,
  Keystore,
  NO_CHANGE,
  datasetIdOf,
  fromStored,
  kekAad,
  toStored,
  type DatasetRecord,
  type HeaderKeyRecord,
  type KekVersionRecord,
} from './keystore.ts';
import type { HeaderVersion } from '../format/header.ts';
import { currentHeaderKey, lastGivenHeaderKey, unwrapHeaderKey, wrapHeaderKey } from './header-keys.ts';
import type { CmkKind, CmkProvider, CmkVersionInfo } from './types.ts';

export interface DatasetConfig {
  /** "bucket" or "bucket/prefix". */
  name: string;
  /** CMK id (key of `cmks`); default `defaultCmk`. */
  cmk?: string;
}

export interface KeyServiceOptions {
  backend: Backend;
  metaBucket: string;
  cmks: Record<string, CmkProvider>;
  defaultCmk: string;
  datasets?: DatasetConfig[];
  cacheTtlMs?: number;
  cacheMax?: number;
  epochPollMs?: number;
  audit?: AuditLog;
}

export interface DatasetSummary {
  dataset: string;
  datasetId: string;
  cmkId: string;
  activeVersion: number | null;
  versions: { version: number; state: KekVersionRecord['state']; createdAt: string; cmkVersion: number | null }[];
  revokedBlocks: number;
}

/** A record as shown to operators: wrapped blobs are omitted. */
export type DatasetView = Omit<DatasetRecord, 'versions' | 'headerKeys'> & {
  versions: (Omit<KekVersionRecord, 'wrapped'> & { wrapped: { cmkId: string; cmkVersion: number } | null })[];
  headerKeys: Omit<HeaderKeyRecord, 'blob'>[];
};

export interface HeaderKeyRewrap {
  activeVersion: number;
  /** Header keys moved under the active version by this call. */
  rewrapped: number;
  /** Header keys left under another version (it is revoked or destroyed), by version. */
  pendingByVersion: Record<string, number>;
}

export interface CmkStatus {
  id: string;
  kind: CmkKind;
  isDefault: boolean;
  ok: boolean;
  error?: string;
  versions: CmkVersionInfo[];
  datasets: number;
}

export interface CmkRotateResult {
  cmkId: string;
  newVersion: number;
  rewrapped: number;
  /** Versions that could not be re-wrapped (their CMK version was already disabled/destroyed, or an error). */
  failed: { dataset: string; version: number; reason: string }[];
  /** Old CMK versions disabled after the re-wrap (empty if a blocking failure happened). */
  disabled: number[];
}

export interface KeystoreExport {
  format: 'lakecrypt-keystore/1';
  exportedAt: string;
  records: DatasetRecord[];
  auditKey?: unknown;
}

interface CachedRecord {
  rec: DatasetRecord;
  revoked: Set<string>;
}

const STATE_RANK: Record<KekVersionRecord['state'], number> = { active: 0, 'decrypt-only': 1, revoked: 2, destroyed: 3 };
const OID_RE = /^[0-9a-f]{2,128}$/;

export class KeyService {
  readonly backend: Backend;
  readonly metaBucket: string;
  readonly keystore: Keystore;
  readonly defaultCmk: string;
  private readonly cmks: Record<string, CmkProvider>;
  private readonly datasets: { bucket: string; prefix: string; name: string; cmk: string }[];
  private readonly epochPollMs: number;
  private audit?: AuditLog;
  private readonly kekCache: SecretCache;
  private readonly recCache: LruTtlCache<CachedRecord>;
  private readonly inflight = new Map<string, Promise<Buffer>>();
  private generation = 0;
  private lastEpoch: string | null | undefined;
  private timer?: NodeJS.Timeout;
  private polling = false;

  constructor(opts: KeyServiceOptions) {
    this.backend = opts.backend;
    this.metaBucket = opts.metaBucket;
    this.keystore = new Keystore({ backend: opts.backend, metaBucket: opts.metaBucket });
    this.cmks = { ...opts.cmks };
    for (const [k, p] of Object.entries(this.cmks)) {
      if (p.id !== k) throw new S3Error('InvalidArgument', `cmks["${k}"] has id "${p.id}"`);
    }
    if (!this.cmks[opts.defaultCmk]) throw new S3Error('InvalidArgument', `default CMK "${opts.defaultCmk}" not configured`);
    this.defaultCmk = opts.defaultCmk;
    this.datasets = (opts.datasets ?? []).map((d) => {
      const cmk = d.cmk ?? opts.defaultCmk;
      if (!this.cmks[cmk]) throw new S3Error('InvalidArgument', `dataset ${d.name}: CMK "${cmk}" not configured`);
      const i = d.name.indexOf('/');
      return i < 0
        ? { bucket: d.name, prefix: '', name: d.name, cmk }
        : { bucket: d.name.slice(0, i), prefix: d.name.slice(i + 1), name: d.name, cmk };
    });
    const ttl = opts.cacheTtlMs ?? 60_000;
    const max = opts.cacheMax ?? 1024;
    this.kekCache = new SecretCache({ max, ttlMs: ttl });
    this.recCache = new LruTtlCache<CachedRecord>({ max, ttlMs: ttl, countGlobally: false });
    this.epochPollMs = opts.epochPollMs ?? 250;
    this.audit = opts.audit;
  }

  /** Attach (or replace) the audit log after construction (the audit key itself is wrapped by this service). */
  setAudit(audit: AuditLog | undefined): void {
    this.audit = audit;
  }

  /** CMK provider by id (throws InvalidArgument when unknown). */
  cmk(id: string): CmkProvider {
    const p = this.cmks[id];
    if (!p) throw new S3Error('InvalidArgument', `unknown CMK "${id}"`);
    return p;
  }

  cmkIds(): string[] {
    return Object.keys(this.cmks);
  }

  get cacheStats(): CacheStats {
    return { ...this.kekCache.stats };
  }

  // ------------------------------------------------------------------ datasets

  /** Dataset of an object: the longest configured "bucket/prefix" matching the key, else the bucket. */
  datasetFor(bucket: string, key: string): string {
    let best: { name: string; len: number } | undefined;
    for (const d of this.datasets) {
      if (d.bucket !== bucket) continue;
      if (!key.startsWith(d.prefix)) continue;
      if (!best || d.prefix.length > best.len) best = { name: d.name, len: d.prefix.length };
    }
    return best ? best.name : bucket;
  }

  datasetId(dataset: string): string {
    return datasetIdOf(dataset);
  }

  private cmkForNew(dataset: string): string {
    return this.datasets.find((d) => d.name === dataset)?.cmk ?? this.defaultCmk;
  }

  // ------------------------------------------------------------------ caches / epoch

  private readonly invalidateListeners: (() => void)[] = [];

  /** Run `fn` whenever the caches are dropped (revocation, epoch change): dependent caches drop theirs too. */
  onInvalidate(fn: () => void): void {
    this.invalidateListeners.push(fn);
  }

  /**
   * Bumped by every cache clear (a revocation, rotation or any keystore change seen through the epoch, a failed
   * epoch poll). Streams in flight compare it once per input buffer: an integer compare while nothing changed,
   * a re-validation of their keys when it moved (src/server/live-revocation.ts).
   */
  get cacheGeneration(): number {
    return this.generation;
  }

  /** Drop (and zero) every cached KEK and record. */
  clearCaches(): void {
    this.generation++;
    // unwraps in flight started before the clear: later callers must not join them
    this.inflight.clear();
    this.kekCache.clear();
    this.recCache.clear();
    for (const fn of this.invalidateListeners) fn();
  }

  private cacheRecord(rec: DatasetRecord, gen: number): CachedRecord {
    const c: CachedRecord = { rec, revoked: new Set(rec.revokedBlocks) };
    if (gen === this.generation) this.recCache.set(rec.datasetId, c);
    return c;
  }

  private async record(dataset: string, fresh = false): Promise<CachedRecord | null> {
    const id = datasetIdOf(dataset);
    if (!fresh) {
      const c = this.recCache.get(id);
      if (c) return c;
    }
    const gen = this.generation;
    const r = await this.keystore.getRecord(id);
    if (!r) return null;
    return this.cacheRecord(r.value, gen);
  }

  private async afterChange(reason: string): Promise<void> {
    this.clearCaches();
    const etag = await this.keystore.bumpEpoch(reason);
    this.lastEpoch = etag;
    this.clearCaches();
  }

  /** Start polling `keystore/epoch`; on change, all caches are dropped (zeroed). */
  async start(): Promise<void> {
    await this.keystore.ensureBucket();
    this.lastEpoch = await this.keystore.epochEtag();
    if (this.timer) return;
    this.timer = setInterval(() => void this.pollOnce(), this.epochPollMs);
    this.timer.unref?.();
  }

  /** One poll of the epoch (exposed for tests and for a readiness probe). */
  async pollOnce(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const etag = await this.keystore.epochEtag();
      if (etag !== this.lastEpoch) {
        this.lastEpoch = etag;
        this.clearCaches();
      }
      this.kekCache.sweep();
      this.recCache.sweep();
    } catch {
      // Backend unreachable: be safe, stop serving cached keys until the epoch can be read again.
      this.clearCaches();
    } finally {
      this.polling = false;
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.clearCaches();
  }

  // ------------------------------------------------------------------ KEKs

  private async newVersion(rec: { datasetId: string; cmkId: string }, version: number): Promise<{ v: KekVersionRecord; key: Buffer }> {
    const key = randomBytes(32);
    try {
      const w = await this.cmk(rec.cmkId).wrap(key, kekAad(rec.datasetId, version));
      return { v: { version, state: 'active', wrapped: toStored(w), createdAt: new Date().toISOString() }, key };
    } catch (e) {
      key.fill(0);
      throw e;
    }
  }

  private async createRecord(dataset: string): Promise<CachedRecord> {
    const datasetId = datasetIdOf(dataset);
    const cmkId = this.cmkForNew(dataset);
    let pending: Buffer | undefined;
    const gen = this.generation;
    const r = await this.keystore.updateRecord(datasetId, async (cur) => {
      pending?.fill(0);
      pending = undefined;
      if (cur) return NO_CHANGE;
      const { v, key } = await this.newVersion({ datasetId, cmkId }, 1);
      pending = key;
      return { dataset, datasetId, cmkId, versions: [v], revokedBlocks: [], headerFormat: 2, updatedAt: new Date().toISOString() };
    });
    if (pending) {
      // we created it: keep the fresh KEK in the cache (saves one unwrap)
      if (gen === this.generation) this.kekCache.set(`${datasetId}:1`, pending);
      else pending.fill(0);
      await this.audit?.append('kek.create', { dataset, datasetId, version: 1, cmkId });
    }
    return this.cacheRecord(r!.value, gen);
  }

  /** The active KEK of a dataset (v1 created lazily). */
  async activeKek(dataset: string): Promise<{ version: number; key: Buffer }> {
    const c = (await this.record(dataset)) ?? (await this.createRecord(dataset));
    const a = c.rec.versions.find((v) => v.state === 'active');
    if (!a) throw new S3Error('KeyRevoked', `dataset ${dataset} has no active key`);
    return { version: a.version, key: await this.kek(dataset, a.version) };
  }

  /** KEK of a given version; KeyRevoked for revoked/destroyed versions or a disabled CMK version. */
  async kek(dataset: string, version: number): Promise<Buffer> {
    let c = await this.record(dataset);
    let v = c?.rec.versions.find((x) => x.version === version);
    if (!v) {
      // maybe created by another gateway since we cached the record
      c = await this.record(dataset, true);
      v = c?.rec.versions.find((x) => x.version === version);
    }
    if (!c || !v) throw new S3Error('KeyRevoked', `no key version ${version} for this dataset`);
    if (v.state === 'revoked' || v.state === 'destroyed' || !v.wrapped) {
      throw new S3Error('KeyRevoked', `key version ${version} is ${v.state}`);
    }
    const wrapped = fromStored(v.wrapped);
    const datasetIdHex = c.rec.datasetId;
    return this.cached(`${datasetIdHex}:${version}`, async () => {
      this.kekCache.countUnwrap();
      const key = await this.cmk(wrapped.cmkId).unwrap(wrapped, kekAad(datasetIdHex, version));
      if (key.length !== 32) {
        key.fill(0);
        throw new S3Error('IntegrityError', 'unwrapped KEK has the wrong length');
      }
      return key;
    });
  }

  /**
   * A cached key, or `unwrap` once however many callers ask meanwhile: a second set of the same entry would zero
   * the buffer the first caller holds. Not cached when the caches were cleared while it ran.
   */
  private cached(ck: string, unwrap: () => Promise<Buffer>): Promise<Buffer> {
    const hit = this.kekCache.get(ck);
    if (hit) return Promise.resolve(hit);
    const running = this.inflight.get(ck);
    if (running) return running;
    const gen = this.generation;
    const p = unwrap().then((key) => {
      if (gen === this.generation) this.kekCache.set(ck, key);
      return key;
    });
    this.inflight.set(ck, p);
    const done = () => this.inflight.delete(ck);
    p.then(done, done);
    return p;
  }

  // ------------------------------------------------------------------ header keys

  /** The key a header of this format version and key number is sealed under: a KEK version (1) or a header key (2). */
  headerSealKey(dataset: string, version: HeaderVersion, keyNumber: number): Promise<Buffer> {
    return version === 1 ? this.kek(dataset, keyNumber) : this.headerKey(dataset, keyNumber);
  }

  /**
   * Number of the header key new headers of the dataset are sealed under; the key is made on first use after
   * each rotation. Sealing fetches the key itself (`headerSealKey`), so writers do not unwrap it twice.
   */
  async activeHeaderKeyNumber(dataset: string): Promise<number> {
    for (let attempt = 0; attempt < 3; attempt++) {
      let c = (await this.record(dataset)) ?? (await this.createRecord(dataset));
      const a = c.rec.versions.find((v) => v.state === 'active');
      if (!a) throw new S3Error('KeyRevoked', `dataset ${dataset} has no active key`);
      let hk = currentHeaderKey(c.rec.headerKeys, a.version);
      if (!hk) {
        c = await this.makeHeaderKey(dataset, a.version, false);
        hk = currentHeaderKey(c.rec.headerKeys, a.version);
        if (!hk) continue; // the active version changed meanwhile: look again
      }
      return hk.n;
    }
    throw new S3Error('ServiceUnavailable', 'the active key version kept changing; retry');
  }

  /** The header key new headers of the dataset are sealed under, with its number. */
  async activeHeaderKey(dataset: string): Promise<{ n: number; key: Buffer }> {
    const n = await this.activeHeaderKeyNumber(dataset);
    return { n, key: await this.headerKey(dataset, n) };
  }

  /**
   * Start a fresh header key for new writes (a re-key: the job then reseals every header under it). Every
   * gateway drops its caches, so all switch to the new key within a poll.
   */
  async startHeaderKey(dataset: string, actor?: string): Promise<number> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const rec = await this.record(dataset, true);
      const a = rec?.rec.versions.find((v) => v.state === 'active');
      if (!a) throw new S3Error('KeyRevoked', `dataset ${dataset} has no active key`);
      const { made } = await this.makeHeaderKey(dataset, a.version, true, actor);
      if (made === undefined) continue; // the active version changed meanwhile: a key of the new one, then
      await this.afterChange(`rekey ${datasetIdOf(dataset)}`);
      return made;
    }
    throw new S3Error('ServiceUnavailable', 'the active key version kept changing; retry');
  }

  private async makeHeaderKey(dataset: string, generation: number, fresh: boolean, actor?: string): Promise<CachedRecord & { made?: number }> {
    const datasetId = datasetIdOf(dataset);
    const gen = this.generation;
    let made: number | undefined;
    const r = await this.keystore.updateRecord(datasetId, async (cur) => {
      made = undefined;
      if (!cur) throw new S3Error('InvalidArgument', `unknown dataset ${dataset}`);
      const active = cur.versions.find((v) => v.state === 'active');
      if (active?.version !== generation) return NO_CHANGE;
      if (!fresh && currentHeaderKey(cur.headerKeys, generation)) return NO_CHANGE;
      const kek = await this.kek(dataset, generation);
      // numbers are never reused, even after a key was retired
      const n = lastGivenHeaderKey(cur) + 1;
      cur.lastHeaderKey = n;
      const key = randomBytes(32);
      try {
        const blob = wrapHeaderKey(kek, key, datasetId, n, generation, generation);
        (cur.headerKeys ??= []).push({ n, generation, kekVersion: generation, blob, createdAt: new Date().toISOString() });
      } finally {
        key.fill(0);
      }
      made = n;
      cur.updatedAt = new Date().toISOString();
      return cur;
    });
    if (made !== undefined) await this.audit?.append('header-key.create', { dataset, datasetId, n: made, kekVersion: generation }, actor);
    return { ...this.cacheRecord(r!.value, gen), made };
  }

  /** Header key n of the dataset; KeyRevoked while the KEK version it is wrapped under is revoked or destroyed. */
  async headerKey(dataset: string, n: number): Promise<Buffer> {
    let c = await this.record(dataset);
    let hk = c?.rec.headerKeys?.find((k) => k.n === n);
    // Not in our copy: made by another gateway since (read the record again), unless our copy already counts past
    // it — then it was retired, and a listing of old sealed ETags must not cost a keystore read each.
    if (!hk && !(c && n <= lastGivenHeaderKey(c.rec))) {
      c = await this.record(dataset, true);
      hk = c?.rec.headerKeys?.find((k) => k.n === n);
    }
    if (!c || !hk) throw new S3Error('KeyRevoked', `no header key ${n} for this dataset (retired or never made)`);
    const wrapping = c.rec.versions.find((v) => v.version === hk!.kekVersion);
    if (!wrapping || wrapping.state === 'revoked' || wrapping.state === 'destroyed') {
      throw new S3Error('KeyRevoked', `header key ${n} is wrapped under key version ${hk.kekVersion}, which is ${wrapping?.state ?? 'unknown'}`);
    }
    const rec = hk;
    const datasetIdHex = c.rec.datasetId;
    return this.cached(`${datasetIdHex}:h${n}`, async () => unwrapHeaderKey(await this.kek(dataset, rec.kekVersion), rec, datasetIdHex));
  }

  /**
   * Re-wrap: every header key not under the active KEK version is moved under it, in one conditional write of
   * the dataset's record. No header changes. Keys under a revoked or destroyed version stay (pendingByVersion).
   */
  async rewrapHeaderKeys(dataset: string, actor?: string): Promise<HeaderKeyRewrap> {
    const out: HeaderKeyRewrap = { activeVersion: 0, rewrapped: 0, pendingByVersion: {} };
    const gen = this.generation;
    const rec = await this.mustUpdate(dataset, async (rec) => {
      Object.assign(out, { rewrapped: 0, pendingByVersion: {} });
      const active = rec.versions.find((v) => v.state === 'active');
      if (!active) throw new S3Error('KeyRevoked', `dataset ${dataset} has no active key`);
      out.activeVersion = active.version;
      const stale = (rec.headerKeys ?? []).filter((k) => k.kekVersion !== active.version);
      if (!stale.length) return NO_CHANGE;
      const newKek = await this.kek(dataset, active.version);
      for (const hk of stale) {
        const from = rec.versions.find((v) => v.version === hk.kekVersion);
        if (!from || from.state === 'revoked' || from.state === 'destroyed') {
          out.pendingByVersion[hk.kekVersion] = (out.pendingByVersion[hk.kekVersion] ?? 0) + 1;
          continue;
        }
        const key = unwrapHeaderKey(await this.kek(dataset, hk.kekVersion), hk, rec.datasetId);
        try {
          hk.blob = wrapHeaderKey(newKek, key, rec.datasetId, hk.n, hk.generation, active.version);
          hk.kekVersion = active.version;
          out.rewrapped++;
        } finally {
          key.fill(0);
        }
      }
      if (!out.rewrapped) return NO_CHANGE;
      rec.updatedAt = new Date().toISOString();
      return rec;
    });
    this.cacheRecord(rec, gen);
    if (out.rewrapped) await this.audit?.append('header-key.rewrap', { dataset, datasetId: datasetIdOf(dataset), rewrapped: out.rewrapped, kekVersion: out.activeVersion }, actor);
    return out;
  }

  /**
   * Remove the header keys no header uses any more (the last step of a re-key), except the one new writes use.
   * Every gateway drops its caches, so a header still naming a removed key (a replayed old one) no longer opens.
   */
  async retireHeaderKeys(dataset: string, below: number, referenced: ReadonlySet<number>, actor?: string): Promise<number[]> {
    const removed: number[] = [];
    await this.mustUpdate(dataset, (rec) => {
      removed.length = 0;
      const active = rec.versions.find((v) => v.state === 'active');
      const current = active ? currentHeaderKey(rec.headerKeys, active.version)?.n : undefined;
      // Only keys older than the re-key's own: any made since (a rotation meanwhile) may seal headers the scan passed.
      const keep = (rec.headerKeys ?? []).filter((k) => k.n >= below || referenced.has(k.n) || k.n === current);
      for (const k of rec.headerKeys ?? []) if (!keep.includes(k)) removed.push(k.n);
      if (!removed.length) return NO_CHANGE;
      rec.lastHeaderKey = lastGivenHeaderKey(rec);
      rec.headerKeys = keep;
      rec.updatedAt = new Date().toISOString();
      return rec;
    });
    if (removed.length) {
      await this.afterChange(`retire header keys ${datasetIdOf(dataset)}`);
      await this.audit?.append('header-key.destroy', { dataset, datasetId: datasetIdOf(dataset), removed }, actor);
    }
    return removed;
  }

  private readonly staleRewraps = new Map<string, Promise<unknown>>();

  /**
   * The lazy re-wrap on read: when header key n still sits under an older KEK version (as this gateway's copy of
   * the record says), re-wrap the dataset's header keys — one at a time per dataset, nothing when none is stale.
   */
  rewrapHeaderKeysIfStale(dataset: string, n: number): Promise<unknown> {
    const running = this.staleRewraps.get(dataset);
    if (running) return running;
    const c = this.recCache.get(datasetIdOf(dataset));
    const active = c?.rec.versions.find((v) => v.state === 'active')?.version;
    const hk = c?.rec.headerKeys?.find((k) => k.n === n);
    if (active === undefined || !hk || hk.kekVersion === active) return Promise.resolve();
    const p = this.rewrapHeaderKeys(dataset).finally(() => this.staleRewraps.delete(dataset));
    this.staleRewraps.set(dataset, p);
    return p;
  }

  /** Record that every header of the dataset is format 2 (a re-wrap job found no format-1 header left). */
  async markHeaderFormat2(dataset: string): Promise<void> {
    const gen = this.generation;
    const rec = await this.mustUpdate(dataset, (rec) => {
      if (rec.headerFormat === 2) return NO_CHANGE;
      rec.headerFormat = 2;
      return rec;
    });
    this.cacheRecord(rec, gen);
  }

  /** The dataset's record as this gateway has it cached (fresh: read again). */
  async datasetRecord(dataset: string, fresh = false): Promise<DatasetRecord | null> {
    return (await this.record(dataset, fresh))?.rec ?? null;
  }

  /**
   * The revocation list of one object as a synchronous predicate (part number, block): one record lookup per
   * read, however many blocks the object has.
   */
  async revocationCheck(dataset: string, oidHex: string): Promise<(part: number, block: number) => boolean> {
    const c = await this.record(dataset);
    if (!c || c.revoked.size === 0) return () => false;
    const oid = oidHex.toLowerCase();
    if (c.revoked.has(`${oid}:*`)) return () => true;
    return (part, block) => c.revoked.has(`${oid}:${part}:${block}`);
  }

  /** True if the block (or the whole object) is on the dataset's revocation list. */
  async isBlockRevoked(dataset: string, oidHex: string, part: number, block: number): Promise<boolean> {
    return (await this.revocationCheck(dataset, oidHex))(part, block);
  }


  private async mustUpdate(
    dataset: string,
    fn: (rec: DatasetRecord) => Promise<DatasetRecord | typeof NO_CHANGE> | DatasetRecord | typeof NO_CHANGE,
  ): Promise<DatasetRecord> {
    const r = await this.keystore.updateRecord(datasetIdOf(dataset), (cur) => {
      if (!cur) throw new S3Error('InvalidArgument', `unknown dataset ${dataset}`);
      return fn(cur);
    });
    return r!.value;
  }

  /** New active KEK version; the previous active one becomes decrypt-only. Returns the new version number. */
  async rotate(dataset: string, actor?: string): Promise<number> {
    const datasetId = datasetIdOf(dataset);
    let created: number | undefined;
    let pending: Buffer | undefined;
    await this.keystore.updateRecord(datasetId, async (cur) => {
      pending?.fill(0);
      pending = undefined;
      const rec: DatasetRecord = cur ?? { dataset, datasetId, cmkId: this.cmkForNew(dataset), versions: [], revokedBlocks: [], headerFormat: 2 };
      const next = Math.max(0, ...rec.versions.map((v) => v.version)) + 1;
      const { v, key } = await this.newVersion(rec, next);
      pending = key;
      for (const x of rec.versions) if (x.state === 'active') x.state = 'decrypt-only';
      rec.versions.push(v);
      rec.updatedAt = new Date().toISOString();
      created = next;
      return rec;
    });
    pending?.fill(0);
    await this.afterChange(`rotate ${datasetId}`);
    await this.audit?.append('kek.rotate', { dataset, datasetId, version: created }, actor);
    return created!;
  }

  /** Revoke one version, or all versions (no version). Reversible with restore (unless destroyed). */
  async revoke(dataset: string, version?: number, actor?: string): Promise<number[]> {
    const changed: number[] = [];
    await this.mustUpdate(dataset, (rec) => {
      changed.length = 0;
      if (version !== undefined && !rec.versions.some((v) => v.version === version)) {
        throw new S3Error('InvalidArgument', `dataset ${dataset} has no key version ${version}`);
      }
      for (const v of rec.versions) {
        if (version !== undefined && v.version !== version) continue;
        if (v.state === 'active' || v.state === 'decrypt-only') {
          v.revokedFrom = v.state;
          v.state = 'revoked';
          v.revokedAt = new Date().toISOString();
          changed.push(v.version);
        }
      }
      if (!changed.length) return NO_CHANGE;
      rec.updatedAt = new Date().toISOString();
      return rec;
    });
    await this.afterChange(`revoke ${datasetIdOf(dataset)}`);
    await this.audit?.append('kek.revoke', { dataset, datasetId: datasetIdOf(dataset), versions: changed, all: version === undefined }, actor);
    return changed;
  }

  /** Undo a revoke (one version or all revoked versions). Destroyed versions cannot be restored. */
  async restore(dataset: string, version?: number, actor?: string): Promise<number[]> {
    const changed: number[] = [];
    await this.mustUpdate(dataset, (rec) => {
      changed.length = 0;
      const target = version !== undefined ? rec.versions.find((v) => v.version === version) : undefined;
      if (version !== undefined && !target) throw new S3Error('InvalidArgument', `dataset ${dataset} has no key version ${version}`);
      if (target?.state === 'destroyed') throw new S3Error('InvalidRequest', `key version ${version} is destroyed and cannot be restored`);
      // restore newest first so that at most one version becomes active again
      const candidates = rec.versions
        .filter((v) => v.state === 'revoked' && (version === undefined || v.version === version))
        .sort((a, b) => b.version - a.version);
      for (const v of candidates) {
        const hasActive = rec.versions.some((x) => x.state === 'active');
        v.state = v.revokedFrom === 'active' && !hasActive ? 'active' : 'decrypt-only';
        delete v.revokedFrom;
        delete v.revokedAt;
        changed.push(v.version);
      }
      if (!changed.length) return NO_CHANGE;
      rec.updatedAt = new Date().toISOString();
      return rec;
    });
    await this.afterChange(`restore ${datasetIdOf(dataset)}`);
    await this.audit?.append('kek.restore', { dataset, datasetId: datasetIdOf(dataset), versions: changed }, actor);
    return changed;
  }

  /** Permanently destroy a (non-active) KEK version: its wrapped material is removed from the keystore. */
  async destroy(dataset: string, version: number, actor?: string): Promise<void> {
    await this.mustUpdate(dataset, (rec) => {
      const v = rec.versions.find((x) => x.version === version);
      if (!v) throw new S3Error('InvalidArgument', `dataset ${dataset} has no key version ${version}`);
      if (v.state === 'active') throw new S3Error('InvalidRequest', `key version ${version} is active: rotate first`);
      if (v.state === 'destroyed') return NO_CHANGE;
      v.state = 'destroyed';
      v.wrapped = null;
      delete v.revokedFrom;
      v.destroyedAt = new Date().toISOString();
      rec.updatedAt = new Date().toISOString();
      return rec;
    });
    await this.afterChange(`destroy ${datasetIdOf(dataset)}`);
    await this.audit?.append('kek.destroy', { dataset, datasetId: datasetIdOf(dataset), version }, actor);
  }

  /** Add blocks (or the whole object) to the dataset's revocation list. */
  async revokeBlocks(dataset: string, oidHex: string, blocks: { part: number; block: number }[] | 'all', actor?: string): Promise<number> {
    const oid = oidHex.toLowerCase();
    if (!OID_RE.test(oid) || oid.length % 2) throw new S3Error('InvalidArgument', 'invalid object id');
    const entries =
      blocks === 'all'
        ? [`${oid}:*`]
        : blocks.map((b) => {
            if (!Number.isInteger(b.part) || !Number.isInteger(b.block) || b.part < 0 || b.block < 0) {
              throw new S3Error('InvalidArgument', 'invalid block address');
            }
            return `${oid}:${b.part}:${b.block}`;
          });
    let added = 0;
    await this.mustUpdate(dataset, (rec) => {
      const set = new Set(rec.revokedBlocks);
      added = 0;
      for (const e of entries) if (!set.has(e)) (set.add(e), added++);
      if (!added) return NO_CHANGE;
      rec.revokedBlocks = [...set];
      rec.updatedAt = new Date().toISOString();
      return rec;
    });
    await this.afterChange(`revoke-blocks ${datasetIdOf(dataset)}`);
    await this.audit?.append('block.revoke', { dataset, datasetId: datasetIdOf(dataset), oid, blocks: blocks === 'all' ? 'all' : blocks }, actor);
    return added;
  }

  // ------------------------------------------------------------------ views

  async list(): Promise<DatasetSummary[]> {
    const recs = await this.keystore.listRecords();
    return recs
      .map((r) => ({
        dataset: r.dataset,
        datasetId: r.datasetId,
        cmkId: r.cmkId,
        activeVersion: r.versions.find((v) => v.state === 'active')?.version ?? null,
        versions: r.versions.map((v) => ({ version: v.version, state: v.state, createdAt: v.createdAt, cmkVersion: v.wrapped?.cmkVersion ?? null })),
        revokedBlocks: r.revokedBlocks.length,
      }))
      .sort((a, b) => a.dataset.localeCompare(b.dataset));
  }

  async show(dataset: string): Promise<DatasetView | null> {
    const r = await this.keystore.getRecord(datasetIdOf(dataset));
    if (!r) return null;
    return {
      ...r.value,
      versions: r.value.versions.map((v) => ({ ...v, wrapped: v.wrapped ? { cmkId: v.wrapped.cmkId, cmkVersion: v.wrapped.cmkVersion } : null })),
      headerKeys: (r.value.headerKeys ?? []).map(({ blob: _blob, ...k }) => k),
    };
  }

  // ------------------------------------------------------------------ CMK administration

  async cmkStatus(): Promise<CmkStatus[]> {
    const recs = await this.keystore.listRecords().catch(() => [] as DatasetRecord[]);
    const out: CmkStatus[] = [];
    for (const [id, p] of Object.entries(this.cmks)) {
      const s: CmkStatus = { id, kind: p.kind, isDefault: id === this.defaultCmk, ok: true, versions: [], datasets: recs.filter((r) => r.cmkId === id).length };
      try {
        await p.ping();
        s.versions = await p.versions();
      } catch (e) {
        s.ok = false;
        s.error = (e as Error).message;
      }
      out.push(s);
    }
    return out;
  }

  /**
   * New CMK version; every KEK (of every dataset bound to this CMK, and the audit key) is re-wrapped under it;
   * then the previously active CMK versions are disabled (skipped if a re-wrap failed for a reason other than an
   * already revoked CMK version, so nothing becomes unreadable by accident).
   */
  async cmkRotate(cmkId: string, actor?: string): Promise<CmkRotateResult> {
    const p = this.cmk(cmkId);
    const before = await p.versions();
    const info = await p.rotate();
    const res: CmkRotateResult = { cmkId, newVersion: info.version, rewrapped: 0, failed: [], disabled: [] };
    let blocking = false;
    for (const id of await this.keystore.listIds()) {
      let count = 0;
      let failed: CmkRotateResult['failed'] = [];
      await this.keystore.updateRecord(id, async (rec) => {
        count = 0;
        failed = [];
        if (!rec) return NO_CHANGE;
        let changed = false;
        for (const v of rec.versions) {
          if (!v.wrapped || v.wrapped.cmkId !== cmkId || v.wrapped.cmkVersion === info.version) continue;
          const aad = kekAad(rec.datasetId, v.version);
          let key: Buffer | undefined;
          try {
            key = await p.unwrap(fromStored(v.wrapped), aad);
            const w = await p.wrap(key, aad);
            if (w.cmkVersion !== info.version) throw new Error(`wrapped under v${w.cmkVersion}, expected v${info.version}`);
            v.wrapped = toStored(w);
            count++;
            changed = true;
          } catch (e) {
            failed.push({ dataset: rec.dataset, version: v.version, reason: (e as Error).message });
            if (!isS3Error(e, 'KeyRevoked')) blocking = true;
          } finally {
            key?.fill(0);
          }
        }
        if (!changed) return NO_CHANGE;
        rec.updatedAt = new Date().toISOString();
        return rec;
      });
      res.rewrapped += count;
      res.failed.push(...failed);
    }
    // the audit key, if wrapped under this CMK
    await this.keystore.update<{ wrapped: { cmkId: string; cmkVersion: number; blob: string } }>(AUDIT_KEY_PATH, async (cur) => {
      if (!cur || cur.wrapped.cmkId !== cmkId || cur.wrapped.cmkVersion === info.version) return NO_CHANGE;
      const aad = Buffer.from('lakecrypt/v1 audit-key', 'utf8');
      let key: Buffer | undefined;
      try {
        key = await p.unwrap(fromStored(cur.wrapped), aad);
        cur.wrapped = toStored(await p.wrap(key, aad));
        res.rewrapped++;
        return cur;
      } catch (e) {
        res.failed.push({ dataset: '(audit key)', version: 0, reason: (e as Error).message });
        if (!isS3Error(e, 'KeyRevoked')) blocking = true;
        return NO_CHANGE;
      } finally {
        key?.fill(0);
      }
    });
    if (!blocking) {
      for (const v of before) {
        if (v.state === 'active' && v.version !== info.version) {
          await p.disable(v.version);
          res.disabled.push(v.version);
        }
      }
    }
    await this.afterChange(`cmk-rotate ${cmkId}`);
    await this.audit?.append('cmk.rotate', { ...res, failed: res.failed.length }, actor);
    return res;
  }

  async cmkDisable(cmkId: string, version: number, actor?: string): Promise<void> {
    await this.cmk(cmkId).disable(version);
    await this.afterChange(`cmk-disable ${cmkId}`);
    await this.audit?.append('cmk.disable', { cmkId, version }, actor);
  }

  async cmkEnable(cmkId: string, version: number, actor?: string): Promise<void> {
    await this.cmk(cmkId).enable(version);
    await this.afterChange(`cmk-enable ${cmkId}`);
    await this.audit?.append('cmk.enable', { cmkId, version }, actor);
  }

  async cmkDestroy(cmkId: string, version: number, actor?: string): Promise<void> {
    await this.cmk(cmkId).destroy(version);
    await this.afterChange(`cmk-destroy ${cmkId}`);
    await this.audit?.append('cmk.destroy', { cmkId, version }, actor);
  }

  // ------------------------------------------------------------------ export / import

  /** JSON of every dataset record (KEKs stay wrapped under their CMKs) and the wrapped audit key. */
  async exportKeystore(actor?: string): Promise<Buffer> {
    const records = await this.keystore.listRecords();
    const auditKey = (await this.keystore.readJson<unknown>(AUDIT_KEY_PATH))?.value;
    const doc: KeystoreExport = { format: 'lakecrypt-keystore/1', exportedAt: new Date().toISOString(), records, ...(auditKey ? { auditKey } : {}) };
    await this.audit?.append('keystore.export', { records: records.length }, actor);
    return Buffer.from(JSON.stringify(doc, null, 1), 'utf8');
  }

  /**
   * Import an export: missing records are created; existing ones are merged (union of versions, the more
   * restrictive state wins — an import never resurrects a revoked or destroyed key — union of revoked blocks).
   */
  async importKeystore(buf: Buffer, actor?: string): Promise<{ created: number; merged: number; unchanged: number }> {
    let doc: KeystoreExport;
    try {
      doc = JSON.parse(buf.toString('utf8')) as KeystoreExport;
    } catch (e) {
      throw new S3Error('InvalidArgument', 'keystore import is not valid JSON', {}, { cause: e });
    }
    if (doc?.format !== 'lakecrypt-keystore/1' || !Array.isArray(doc.records)) throw new S3Error('InvalidArgument', 'not a lakecrypt keystore export');
    const out = { created: 0, merged: 0, unchanged: 0 };
    for (const inc of doc.records) {
      if (typeof inc?.dataset !== 'string' || !Array.isArray(inc.versions) || datasetIdOf(inc.dataset) !== inc.datasetId) {
        throw new S3Error('InvalidArgument', 'malformed record in keystore import');
      }
      if (!this.cmks[inc.cmkId]) throw new S3Error('InvalidArgument', `record ${inc.dataset} uses unknown CMK ${inc.cmkId}`);
      let kind: 'created' | 'merged' | 'unchanged' = 'unchanged';
      await this.keystore.updateRecord(inc.datasetId, (cur) => {
        if (!cur) {
          kind = 'created';
          return { ...inc, revokedBlocks: inc.revokedBlocks ?? [] };
        }
        const before = JSON.stringify(cur);
        for (const iv of inc.versions) {
          const cv = cur.versions.find((v) => v.version === iv.version);
          if (!cv) {
            cur.versions.push({ ...iv, state: iv.state === 'active' && cur.versions.some((v) => v.state === 'active') ? 'decrypt-only' : iv.state });
          } else if (STATE_RANK[iv.state] > STATE_RANK[cv.state]) {
            cv.state = iv.state;
            if (iv.state === 'destroyed') cv.wrapped = null;
          }
        }
        cur.versions.sort((a, b) => a.version - b.version);
        // a key missing here with a number this record already gave out was retired: never bring it back
        const given = lastGivenHeaderKey(cur);
        for (const ik of inc.headerKeys ?? []) {
          if (!cur.headerKeys?.some((k) => k.n === ik.n) && ik.n > given) (cur.headerKeys ??= []).push(ik);
        }
        const last = Math.max(lastGivenHeaderKey(cur), lastGivenHeaderKey(inc));
        if (last > 0) cur.lastHeaderKey = last;
        // format-1 headers may exist if either side says they may
        if (inc.headerFormat !== 2) delete cur.headerFormat;
        cur.revokedBlocks = [...new Set([...cur.revokedBlocks, ...(inc.revokedBlocks ?? [])])];
        if (JSON.stringify(cur) === before) {
          kind = 'unchanged';
          return NO_CHANGE;
        }
        kind = 'merged';
        return cur;
      });
      out[kind]++;
    }
    if (doc.auditKey) {
      await this.keystore.update(AUDIT_KEY_PATH, (cur) => (cur ? NO_CHANGE : doc.auditKey));
    }
    await this.afterChange('import');
    await this.audit?.append('keystore.import', out, actor);
    return out;
  }
}
