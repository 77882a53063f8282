/**
 * Header keys of a dataset (FORMAT.md 3.4; the wrap/unwrap of one key is header-keys.ts): the key a header is
 * sealed under, the key new headers use (made on first use after each rotation), a fresh key for a re-key, the
 * re-wrap of every header key under the active KEK version (in the re-wrap job, or lazily on read), the
 * retirement of keys no header uses, and the record's header-format mark.
 *
 * Buffers returned are the cached ones: use them immediately; they are zeroed when they leave the cache.
 */
import { randomBytes } from 'node:crypto';
import { S3Error } from '../errors.ts';
import type { HeaderVersion } from '../format/header.ts';
import { currentHeaderKey, lastGivenHeaderKey, unwrapHeaderKey, wrapHeaderKey } from './header-keys.ts';
import type { KekLifecycle } from './kek-lifecycle.ts';
import type { CachedRecord, KeyState } from './key-state.ts';
import { NO_CHANGE, datasetIdOf } from './keystore.ts';

export interface HeaderKeyRewrap {
  activeVersion: number;
  /** Header keys moved under the active version by this call. */
  rewrapped: number;
  /** Header keys left under another version (it is revoked or destroyed), by version. */
  pendingByVersion: Record<string, number>;
}

export class HeaderKeyService {
  private readonly staleRewraps = new Map<string, Promise<unknown>>();

  constructor(
    private readonly s: KeyState,
    private readonly keks: Pick<KekLifecycle, 'kek' | 'recordOrCreate'>,
  ) {}

  /** The key a header of this format version and key number is sealed under: a KEK version (1) or a header key (2). */
  headerSealKey(dataset: string, version: HeaderVersion, keyNumber: number): Promise<Buffer> {
    return version === 1 ? this.keks.kek(dataset, keyNumber) : this.headerKey(dataset, keyNumber);
  }

  /**
   * Number of the header key new headers of the dataset are sealed under; the key is made on first use after
   * each rotation. Sealing fetches the key itself (`headerSealKey`), so writers do not unwrap it twice.
   */
  async activeHeaderKeyNumber(dataset: string): Promise<number> {
    for (let attempt = 0; attempt < 3; attempt++) {
      let c = await this.keks.recordOrCreate(dataset);
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
      const rec = await this.s.record(dataset, true);
      const a = rec?.rec.versions.find((v) => v.state === 'active');
      if (!a) throw new S3Error('KeyRevoked', `dataset ${dataset} has no active key`);
      const { made } = await this.makeHeaderKey(dataset, a.version, true, actor);
      if (made === undefined) continue; // the active version changed meanwhile: a key of the new one, then
      await this.s.afterChange(`rekey ${datasetIdOf(dataset)}`);
      return made;
    }
    throw new S3Error('ServiceUnavailable', 'the active key version kept changing; retry');
  }

  private async makeHeaderKey(dataset: string, generation: number, fresh: boolean, actor?: string): Promise<CachedRecord & { made?: number }> {
    const datasetId = datasetIdOf(dataset);
    const gen = this.s.generation;
    let made: number | undefined;
    const r = await this.s.keystore.updateRecord(datasetId, async (cur) => {
      made = undefined;
      if (!cur) throw new S3Error('InvalidArgument', `unknown dataset ${dataset}`);
      const active = cur.versions.find((v) => v.state === 'active');
      if (active?.version !== generation) return NO_CHANGE;
      if (!fresh && currentHeaderKey(cur.headerKeys, generation)) return NO_CHANGE;
      const kek = await this.keks.kek(dataset, generation);
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
    if (made !== undefined) await this.s.audit?.append('header-key.create', { dataset, datasetId, n: made, kekVersion: generation }, actor);
    return { ...this.s.cacheRecord(r!.value, gen), made };
  }

  /** Header key n of the dataset; KeyRevoked while the KEK version it is wrapped under is revoked or destroyed. */
  async headerKey(dataset: string, n: number): Promise<Buffer> {
    let c = await this.s.record(dataset);
    let hk = c?.rec.headerKeys?.find((k) => k.n === n);
    // Not in our copy: made by another gateway since (read the record again), unless our copy already counts past
    // it — then it was retired, and a listing of old sealed ETags must not cost a keystore read each.
    if (!hk && !(c && n <= lastGivenHeaderKey(c.rec))) {
      c = await this.s.record(dataset, true);
      hk = c?.rec.headerKeys?.find((k) => k.n === n);
    }
    if (!c || !hk) throw new S3Error('KeyRevoked', `dataset ${dataset} has no header key ${n} (retired by a re-key, or never made)`);
    const wrapping = c.rec.versions.find((v) => v.version === hk.kekVersion);
    if (!wrapping || wrapping.state === 'revoked' || wrapping.state === 'destroyed') {
      throw new S3Error('KeyRevoked', `key version ${hk.kekVersion} of dataset ${dataset} is ${wrapping?.state ?? 'unknown'} (this object's header key ${n} is wrapped under it)`);
    }
    const rec = hk;
    const datasetIdHex = c.rec.datasetId;
    return this.s.cached(`${datasetIdHex}:h${n}`, async () => unwrapHeaderKey(await this.keks.kek(dataset, rec.kekVersion), rec, datasetIdHex));
  }

  /**
   * Re-wrap: every header key not under the active KEK version is moved under it, in one conditional write of
   * the dataset's record. No header changes. Keys under a revoked or destroyed version stay (pendingByVersion).
   */
  async rewrapHeaderKeys(dataset: string, actor?: string): Promise<HeaderKeyRewrap> {
    const out: HeaderKeyRewrap = { activeVersion: 0, rewrapped: 0, pendingByVersion: {} };
    const gen = this.s.generation;
    const rec = await this.s.mustUpdate(dataset, async (rec) => {
      Object.assign(out, { rewrapped: 0, pendingByVersion: {} });
      const active = rec.versions.find((v) => v.state === 'active');
      if (!active) throw new S3Error('KeyRevoked', `dataset ${dataset} has no active key`);
      out.activeVersion = active.version;
      const stale = (rec.headerKeys ?? []).filter((k) => k.kekVersion !== active.version);
      if (!stale.length) return NO_CHANGE;
      const newKek = await this.keks.kek(dataset, active.version);
      for (const hk of stale) {
        const from = rec.versions.find((v) => v.version === hk.kekVersion);
        if (!from || from.state === 'revoked' || from.state === 'pending-destruction' || from.state === 'destroyed') {
          out.pendingByVersion[hk.kekVersion] = (out.pendingByVersion[hk.kekVersion] ?? 0) + 1;
          continue;
        }
        const key = unwrapHeaderKey(await this.keks.kek(dataset, hk.kekVersion), hk, rec.datasetId);
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
    this.s.cacheRecord(rec, gen);
    if (out.rewrapped) await this.s.audit?.append('header-key.rewrap', { dataset, datasetId: datasetIdOf(dataset), rewrapped: out.rewrapped, kekVersion: out.activeVersion }, actor);
    return out;
  }

  /**
   * Remove the header keys no header uses any more (the last step of a re-key), except the one new writes use.
   * Every gateway drops its caches, so a header still naming a removed key (a replayed old one) no longer opens.
   */
  async retireHeaderKeys(dataset: string, below: number, referenced: ReadonlySet<number>, actor?: string): Promise<number[]> {
    const removed: number[] = [];
    await this.s.mustUpdate(dataset, (rec) => {
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
      await this.s.afterChange(`retire header keys ${datasetIdOf(dataset)}`);
      await this.s.audit?.append('header-key.destroy', { dataset, datasetId: datasetIdOf(dataset), removed }, actor);
    }
    return removed;
  }

  /**
   * The lazy re-wrap on read: when header key n still sits under an older KEK version (as this gateway's copy of
   * the record says), re-wrap the dataset's header keys — one at a time per dataset, nothing when none is stale.
   * The caller treats a failure as best effort (the re-wrap job does the same work), so it is reported here too:
   * counted on every failure, logged at warn once per failure streak of the dataset.
   */
  rewrapHeaderKeysIfStale(dataset: string, n: number): Promise<unknown> {
    const running = this.staleRewraps.get(dataset);
    if (running) return running;
    const datasetId = datasetIdOf(dataset);
    const c = this.s.recCache.get(datasetId);
    const active = c?.rec.versions.find((v) => v.state === 'active')?.version;
    const hk = c?.rec.headerKeys?.find((k) => k.n === n);
    if (active === undefined || !hk || hk.kekVersion === active) return Promise.resolve();
    const p = this.rewrapHeaderKeys(dataset).finally(() => this.staleRewraps.delete(dataset));
    this.staleRewraps.set(dataset, p);
    const streak = `lazy-rewrap ${datasetId}`;
    p.then(
      () => this.s.bestEffort.ok('lazy-rewrap', streak),
      (e: unknown) =>
        this.s.bestEffort.failed('lazy-rewrap', e, 'lazy re-wrap of header keys on read failed; the re-wrap job or a later read retries', { dataset, datasetId }, streak),
    );
    return p;
  }

  /** Record that every header of the dataset is format 2 (a re-wrap job found no format-1 header left). */
  async markHeaderFormat2(dataset: string): Promise<void> {
    const gen = this.s.generation;
    const rec = await this.s.mustUpdate(dataset, (rec) => {
      if (rec.headerFormat === 2) return NO_CHANGE;
      rec.headerFormat = 2;
      return rec;
    });
    this.s.cacheRecord(rec, gen);
  }
}
