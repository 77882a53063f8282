/**
 * The encryption-aware object layer below the S3 front end (src/server) and the admin jobs (src/admin): objects
 * are written as header-then-data (docs/DESIGN.md "Write order"), read by one GET plus a cached header, copied
 * server-side within a dataset, and decrypted as streams that re-check revocations while they run. Headers go
 * through the one door (header-door.ts); the reads are in object-reads.ts, multipart uploads in multipart-store.ts,
 * stream helpers in streams.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Backend, DeleteResult, ObjectInfo } from '../backend/types.ts';
import { S3Error, isS3Error } from '../errors.ts';
import {
  CHUNK_SIZE,
  blockCount,
  ciphertextSize,
  createEncryptStream,
  newDeks,
  sealWhole,
  zero,
  type HeaderChecksums,
  type HeaderFields,
  type HeaderMeta,
} from '../engine/index.ts';
import type { KeyService } from '../keys/service.ts';
import type { Logger } from '../ops/logger.ts';
import { HeaderCache, cloneHeaderKeys, wipeHeaderKeys } from './header-cache.ts';
import { HeaderDoor, META_ETAG, META_FMT, META_OID, dekWiped, headerDir, headerPath } from './header-door.ts';
import { InlinePolicy, META_HEADER, FMT_INLINE, isInline, loadHeaderBytes, type DataInfo } from './inline-header.ts';
import { LayoutMemory } from './layout-memory.ts';
import { LiveRevocation } from './live-revocation.ts';
import type { NativeRead } from './native-read.ts';
import { sealToBackend, type NativeUploadSource } from './native-write.ts';
import { nativeDataplane } from '../engine/dataplane.ts';
import { ByteBudget, consuming, holdLastBytes, readExactly } from './streams.ts';
import { deleteVersion, replacedPrevious } from './versions.ts';
import { MultipartStore } from './multipart-store.ts';
import { ObjectReads } from './object-reads.ts';

export { SMALL_READ_MAX, storedSizeOf } from './object-reads.ts';

/**
 * What a re-sealed copy of a stored object can declare before its bytes stream: its checksums, when its ETag
 * is the plaintext MD5 (authenticated in its header) — so the copy keeps that ETag at any size.
 */
export const knownOf = (obj: StoredObject): HeaderChecksums | undefined =>
  !obj.plaintext && obj.info.meta[META_ETAG] !== undefined && obj.header.checksums.md5 === obj.etag ? obj.header.checksums : undefined;

/** A backend ETag as clients see it when it is not the plaintext MD5: never bare hex (S3's multipart shape). */
export const notMd5 = (etag: string): string => (/-\d+$/.test(etag) ? etag : `${etag}-1`);

/** Bodies up to this size are read whole before anything is written (one header write, MD5 ETag up front). */
export const WHOLE_BODY_MAX = 8 * 1024 * 1024;

export interface StoredObject {
  bucket: string;
  key: string;
  header: HeaderFields;
  info: ObjectInfo;
  size: number;
  etag: string;
  lastModified: Date;
  /** An object written before lakecrypt, served as stored because its dataset allows plaintext reads. */
  plaintext?: boolean;
  /** The version asked for by id (reads then fetch that version); undefined for the current one. */
  versionId?: string;
}

/** A whole-object read opened by one backend GET (ObjectStore.openWhole). */
export interface WholeRead {
  obj: StoredObject;
  /** The plaintext stream; resolves once the keys are in hand (a revoked DEK fails here, before any response header). */
  open: () => Promise<Readable>;
  /**
   * The same read through the native data plane (native-read.ts), when it applies: resolves with null — the body
   * untouched, for `open` — when it does not; fails, before any response header, as `open` would.
   */
  openNative?: () => Promise<NativeRead | null>;
  /**
   * The whole plaintext in one buffer, for an object of at most SMALL_READ_MAX bytes (else absent): read whole and
   * opened in one call, no stream. Resolves with null, the body untouched for `open`, when the whole-body budget
   * is spent; fails, before any response header, on anything `open`'s stream would fail on.
   */
  openSmall?: () => Promise<Buffer | null>;
  /** Not read after all (a failed precondition): the backend body is let go. */
  discard: () => void;
}

/** Conditions on the current BACKEND ETag of the key. */
export type PutCondition = { ifMatch?: string; ifNoneMatch?: '*' };

export interface PutResult {
  etag: string;
  oid: Buffer;
  /** The backend's id of the version written (buckets with versioning). */
  versionId?: string;
}

/**
 * The encryption-aware object layer: every handler goes through it, it alone talks to the engine, the key
 * service and the backend for object data. See docs/DESIGN.md for the write order and layout.
 */
/** Where a best-effort step's failure goes: a warn line and a counter (lakecrypt_best_effort_failures_total). */
export interface BestEffortReport {
  log?: Logger;
  onFailure?: (what: string) => void;
}

export class ObjectStore {
  readonly headers: HeaderCache;
  /** Each key's current oid and layout as last seen: ranged GETs without a HEAD (openRange). */
  readonly layouts = new LayoutMemory();
  /** The one way header bytes are opened and sealed. */
  readonly door: HeaderDoor;
  readonly bodyBudget: ByteBudget;
  /** The read side (object-reads.ts). */
  private readonly reads = new ObjectReads(this);
  /** Which new small objects carry their header inline (inline-header.ts); replace with maxChars 0 to write format 1 only. */
  inline: InlinePolicy;
  /**
   * The dataPlane setting: 'auto' lets large whole-object GETs (native-read.ts), large plain single PUTs and parts
   * (native-write.ts) go through the native data plane.
   */
  dataPlane: 'auto' | 'node' = 'auto';
  /** Datasets whose not-yet-migrated (plaintext) objects may be read, and who to tell when one is. */
  plaintextReads: { allowed: (dataset: string) => boolean; onRead?: (bucket: string, key: string) => void } = { allowed: () => false };
  /**
   * A step whose failure must not fail the request it serves (the answer is already decided): it is logged at warn
   * and counted, and leaves at worst garbage that `lakecrypt gc` finds (an old or orphan header).
   */
  bestEffort<T>(what: string, p: Promise<T>, fallback: T): Promise<T> {
    return p.catch((err: unknown) => {
      this.report.onFailure?.(what);
      this.report.log?.warn({ err, what }, 'best-effort step failed (left for gc)');
      return fallback;
    });
  }

  constructor(
    readonly backend: Backend,
    readonly keys: KeyService,
    readonly metaBucket: string,
    readonly blockSize: number,
    headerCacheTtlMs = 30_000,
    readonly wholeBodyMax = WHOLE_BODY_MAX,
    wholeBodyBudget = 64 * 1024 * 1024,
    /** Where work done on the side (after the answer, or on a failure path) reports that it failed. */
    private readonly report: BestEffortReport = {},
  ) {
    this.headers = new HeaderCache(4096, headerCacheTtlMs);
    this.door = new HeaderDoor(keys);
    this.bodyBudget = new ByteBudget(wholeBodyBudget);
    this.inline = new InlinePolicy(backend);
  }

  /**
   * The ETag clients see (src/format/etag.ts), by one rule for HEAD, GET and listings so they always agree:
   * - a sealed ETag in the data object's metadata: the plaintext MD5 (from the header when at hand, else the
   *   sealed value, else the header read now — after its KEK version was destroyed);
   * - else, an object written through lakecrypt: the backend's ETag, never 32 bare hex digits — a multipart
   *   `<hex>-N` stays, a single-part one gets `-1` — so no client mistakes an MD5 of ciphertext for the content's;
   * - else (a not-yet-migrated plaintext object): the backend's ETag, which is its content's.
   */
  async clientEtag(bucket: string, key: string, info: { etag: string; meta: Record<string, string> }, header?: HeaderFields): Promise<string> {
    const sealed = info.meta[META_ETAG];
    const oidHex = info.meta[META_OID];
    if (!oidHex || !/^[0-9a-f]{32}$/.test(oidHex)) return info.etag;
    if (!sealed) return notMd5(info.etag);
    if (header?.checksums.md5 && header.oid.toString('hex') === oidHex) return header.checksums.md5;
    try {
      const md5 = await this.door.openEtag(sealed, { bucket, key, oidHex });
      if (md5) return md5;
    } catch {
      // Its key is revoked or destroyed since (format 1: a KEK version): the header (re-wrapped) still says.
    }
    try {
      const md5 = (await this.readHeader(bucket, key, oidHex, { info })).header.checksums.md5;
      if (md5) return md5;
    } catch {
      // unreadable object: its listing entry keeps the backend's ETag
    }
    return notMd5(info.etag);
  }

  /** A pending header for a new object version: fresh oid, format 2 under the dataset's current header key. */
  async newHeader(bucket: string, key: string, meta: HeaderMeta, parts: HeaderFields['parts'], checksums: HeaderChecksums): Promise<HeaderFields> {
    const dataset = this.keys.datasetFor(bucket, key);
    return {
      version: 2,
      dataset,
      keyNumber: await this.keys.activeHeaderKeyNumber(dataset),
      oid: randomBytes(16),
      bucket,
      key,
      state: 'pending',
      createdAt: Date.now(),
      blockSize: this.blockSize,
      chunkSize: CHUNK_SIZE,
      parts,
      meta,
      checksums,
    };
  }

  headerPath(bucket: string, key: string, oidHex: string): string {
    return headerPath(bucket, key, oidHex);
  }
  headerDir(bucket: string, key: string): string {
    return headerDir(bucket, key);
  }

  /** Seal and store a header under the key its fields name (format 2: a header key; format 1: a KEK version). */
  async writeHeader(fields: HeaderFields, opts: { ifMatch?: string; ifNoneMatch?: '*' } = {}): Promise<string> {
    const bytes = await this.door.seal(fields);
    const { etag } = await this.backend.putObject(
      this.metaBucket,
      this.headerPath(fields.bucket, fields.key, fields.oid.toString('hex')),
      bytes,
      { size: bytes.length, ...opts },
    );
    return etag;
  }

  /**
   * The header of version `oidHex`, from the cache or where it is stored (inline-header.ts). `from.info`: the data
   * object's HEAD or GET at hand (an inline header is then read from it, no backend call); `from.versionId`: the
   * version, when the data object has to be asked.
   */
  async readHeader(bucket: string, key: string, oidHex: string, from: { info?: DataInfo; versionId?: string } = {}): Promise<{ header: HeaderFields; etag: string }> {
    const cached = this.headers.get(bucket, key, oidHex);
    if (cached) return cached;
    let got: Awaited<ReturnType<typeof loadHeaderBytes>>;
    try {
      got = await loadHeaderBytes(this, bucket, key, oidHex, from);
    } catch (e) {
      if (isS3Error(e, 'NoSuchKey')) throw new S3Error('IntegrityError', 'The object header is missing.', {}, { cause: e });
      throw e;
    }
    const header = await this.door.open(got.data, { bucket, key, oidHex });
    const entry = { header, etag: got.site.etag };
    this.headers.set(bucket, key, oidHex, entry);
    void this.maybeRewrapOnRead(header, got.site.etag);
    return entry;
  }

  /**
   * Lazy re-wrap on read. A format-2 header needs nothing itself: when its header key is still wrapped under an
   * older KEK version, the dataset's header keys are re-wrapped (one keystore write, at most one at a time). A
   * format-1 header (sealed under a KEK version) is resealed as format 2 (conditional write).
   */
  private async maybeRewrapOnRead(cached: HeaderFields, etag: string): Promise<void> {
    if (cached.version === 2) {
      void this.keys.rewrapHeaderKeysIfStale(cached.dataset, cached.keyNumber).catch(() => {
        // best effort: the re-wrap job does the same
      });
      return;
    }
    // Own copy of the DEKs: the cached ones are zeroed when the cache is cleared (a rotation does that) while we
    // await the active KEK, and resealing zeroed DEKs would destroy the object.
    const header = cloneHeaderKeys(cached);
    try {
      await this.writeHeader({ ...header, version: 2, keyNumber: await this.keys.activeHeaderKeyNumber(header.dataset) }, { ifMatch: etag });
      this.headers.delete(header.bucket, header.key, header.oid.toString('hex'));
    } catch {
      // Best effort: the background re-wrap job will pick it up; a lost race means someone else wrote it.
    } finally {
      wipeHeaderKeys(header);
    }
  }

  /** HEAD the data object (the current one, or `versionId`) and open its header (object-reads.ts). */
  stat(bucket: string, key: string, versionId?: string): Promise<StoredObject> {
    return this.reads.stat(bucket, key, versionId);
  }

  /** Whole-object read in one backend round trip (object-reads.ts). */
  openWhole(bucket: string, key: string, versionId?: string): Promise<WholeRead> {
    return this.reads.openWhole(bucket, key, versionId);
  }

  /** The keys of one read: an own copy of the header and its live revocation state (object-reads.ts). */
  readKeys(obj: StoredObject, body: Readable): Promise<{ header: HeaderFields; live: LiveRevocation; since: number }> {
    return this.reads.readKeys(obj, body);
  }

  /** Plaintext stream of [start, end] of an object opened by `stat` (object-reads.ts). */
  read(obj: StoredObject, start: number, endInclusive: number): Promise<Readable> {
    return this.reads.read(obj, start, endInclusive);
  }

  /** read(), through the native data plane when `native` is asked and it applies (object-reads.ts). */
  readRange(obj: StoredObject, start: number, endInclusive: number, native: boolean): Promise<{ stream?: Readable; native?: NativeRead }> {
    return this.reads.readRange(obj, start, endInclusive, native);
  }

  /** The plaintext of `body`, the sealed bytes of [start, endInclusive] of `obj` (object-reads.ts). */
  openRangeBody(obj: StoredObject, body: Readable, start: number, endInclusive: number, native: boolean): Promise<{ stream?: Readable; native?: NativeRead }> {
    return this.reads.openRangeBody(obj, body, start, endInclusive, native);
  }

  /** A Range or partNumber GET of the current version in one backend round trip, or null (object-reads.ts). */
  openRange(
    bucket: string,
    key: string,
    pick: (size: number, partSizes: number[]) => { start: number; end: number } | null,
  ): Promise<{ obj: StoredObject; start: number; end: number; body: Readable } | null> {
    return this.reads.openRange(bucket, key, pick);
  }

  /**
   * Encrypt a plaintext stream of exactly `size` bytes to bucket/key. `verify` runs after the last plaintext
   * byte and before the last ciphertext chunk leaves, so a failed checksum never commits the object.
   *
   * The returned ETag is the MD5 of the plaintext (S3's single-PUT ETag), stored in the header and, sealed, in
   * the data object's metadata for listings (src/format/etag.ts), whenever it is known before the data object is
   * written: a body of at most `wholeBodyMax` is read whole first (then the header and the data object are each
   * written once, complete), and a declared Content-MD5 is verified before the commit. A larger body without
   * Content-MD5 streams and gets a non-MD5 ETag (`<backend ETag>-1`, see clientEtag) rather than paying MD5 on
   * every byte (it costs more CPU than AES-GCM here: bench/README.md).
   *
   * `cond.ifMatch` is a condition on the current BACKEND ETag.
   */
  async put(
    bucket: string,
    key: string,
    body: Readable,
    size: number,
    meta: HeaderMeta,
    finish: () => Promise<HeaderChecksums> | HeaderChecksums,
    cond: PutCondition = {},
    /** Checksums to store, when known before the body (then the header is written once, already final). */
    known?: HeaderChecksums,
  ): Promise<PutResult> {
    if (size <= this.wholeBodyMax && this.bodyBudget.take(size)) {
      try {
        const plain = await readExactly(body, size);
        return await this.putBytes(bucket, key, plain, meta, await finish(), cond, known);
      } finally {
        this.bodyBudget.give(size);
      }
    }
    return this.putStream(bucket, key, body, size, meta, finish, cond, known);
  }

  /**
   * put() of a body already read whole and verified (`verified`: what its verification computed; `known`: the
   * checksums declared before the body, as put() takes them). The caller holds the bytes within bodyBudget.
   */
  putBytes(bucket: string, key: string, plain: Buffer, meta: HeaderMeta, verified: HeaderChecksums, cond: PutCondition = {}, known?: HeaderChecksums): Promise<PutResult> {
    // With Content-MD5 the verification already hashed the body: no second MD5 pass.
    const md5 = verified.md5 ?? createHash('md5').update(plain).digest('hex');
    return this.putWhole(bucket, key, plain, meta, { ...(known ?? verified), md5 }, cond);
  }

  /**
   * One new version of bucket/key: its header first (the DEKs; `final` when the checksums to store are already
   * known), then `writeData` stores the data object — the commit point — then its `afterCommit`, best effort.
   * Not committed: the header is removed again (gc otherwise). The overwritten version's header goes after the
   * answer: one backend round trip less per overwrite (a failure or a stop meanwhile leaves it for gc).
   */
  private async writeVersion(
    v: { bucket: string; key: string; size: number; meta: HeaderMeta; checksums: HeaderChecksums; final: boolean; inline?: boolean },
    writeData: (w: { header: HeaderFields; headerEtag: string; dataMeta: Record<string, string> }) => Promise<{ etag: string; versionId?: string; afterCommit?: () => Promise<void> }>,
  ): Promise<PutResult> {
    const { bucket, key, size } = v;
    const deks = newDeks(blockCount(size, this.blockSize));
    const header = await this.newHeader(bucket, key, v.meta, [{ partNumber: 1, plaintextSize: size, deks }], v.checksums);
    if (v.final) header.state = 'final';
    const oidHex = header.oid.toString('hex');
    let committed = false;
    let inlined = false;
    try {
      if (v.inline && v.final) {
        // Data format 2: the final header travels in the data object's own metadata, so the one write that
        // commits the data commits its header with it (inline-header.ts). The version this one replaces is not
        // looked at: if it had a header object (format 1), that header is named by no data object any more, and
        // gc removes it; looking would cost a backend read, and looking concurrently could name a newer version.
        const value = (await this.door.seal(header)).toString('base64');
        if (value.length <= this.inline.maxChars) {
          inlined = true;
          const sealed = v.checksums.md5 ? await this.sealedEtag(header) : undefined;
          const dataMeta: Record<string, string> = { [META_OID]: oidHex, [META_FMT]: FMT_INLINE, [META_HEADER]: value };
          if (sealed) dataMeta[META_ETAG] = sealed;
          const { etag, versionId } = await writeData({ header, headerEtag: '', dataMeta });
          return { etag: sealed ? v.checksums.md5! : notMd5(etag), oid: header.oid, versionId };
        }
      }
      const [headerEtag, previous, sealed] = await Promise.all([
        this.writeHeader(header),
        this.bestEffort('previous-version-head', this.backend.headObject(bucket, key), null),
        v.checksums.md5 ? this.sealedEtag(header) : undefined,
      ]);
      const dataMeta: Record<string, string> = { [META_OID]: oidHex, [META_FMT]: '1' };
      if (sealed) dataMeta[META_ETAG] = sealed;
      const { etag, versionId, afterCommit } = await writeData({ header, headerEtag, dataMeta });
      committed = true;
      if (afterCommit) await this.bestEffort('final-header', afterCommit(), undefined);
      this.later(this.dropPreviousHeader(bucket, key, previous, header.oid, versionId));
      return { etag: sealed ? v.checksums.md5! : notMd5(etag), oid: header.oid, versionId };
    } catch (e) {
      if (!committed && !inlined) await this.bestEffort('uncommitted-header-delete', this.backend.deleteObject(this.metaBucket, this.headerPath(bucket, key, oidHex)), undefined);
      throw e;
    } finally {
      for (const d of deks) zero(d);
    }
  }

  /** A whole plaintext in memory, verified: final header, then the data object with its sealed ETag. */
  private async putWhole(bucket: string, key: string, plain: Buffer, meta: HeaderMeta, checksums: HeaderChecksums, cond: PutCondition): Promise<PutResult> {
    const size = plain.length;
    const inline = await this.inline.allowed(bucket);
    return this.writeVersion({ bucket, key, size, meta, checksums, final: true, inline }, async ({ header, dataMeta }) => {
      const { dataset, oid } = header;
      const deks = header.parts[0].deks as Buffer[];
      const cipher = sealWhole({ dataset, oid, partNumber: 1, plaintextSize: size, blockSize: this.blockSize, deks, withPrefix: true }, plain);
      return this.backend.putObject(bucket, key, cipher, { size: cipher.length, meta: dataMeta, ...cond });
    });
  }

  /** The plaintext ETag sealed for the data object's metadata, under the header's key. */
  private sealedEtag(h: HeaderFields): Promise<string> {
    return this.door.sealEtag(h);
  }

  /**
   * Whether a single PUT of `size` bytes, with nothing to verify, may be sealed by the native data plane
   * (putNative): dataPlane 'auto', the addon loaded, a body the whole-body path would not take, and a backend
   * that takes a raw PUT now (s3 on plain http, a store that drops a body cut short).
   */
  nativePutApplies(size: number): boolean {
    return this.dataPlane === 'auto' && size > this.wholeBodyMax && !!this.backend.rawPut && !!this.backend.canRawPut?.() && nativeDataplane() !== null;
  }

  /**
   * putStream's write through the native data plane (native-write.ts), for a body with nothing to verify: the
   * header is written final first, then the sealed body is the commit; the ETag is `<backend ETag>-1` as putStream's.
   */
  putNative(
    bucket: string,
    key: string,
    src: NativeUploadSource,
    size: number,
    meta: HeaderMeta,
    cond: PutCondition = {},
    /** Declared, so final before the body (the pump verifies them before the commit: src.verify); null: `settle`'s. */
    checksums: HeaderChecksums | null = {},
    /** The checksums to store from the pump's CRC-32 (an aws-chunked body's: known after its trailer). */
    settle?: (crc32: number | undefined) => HeaderChecksums,
  ): Promise<PutResult & { crc32?: number }> {
    let crc32: number | undefined;
    const put = this.writeVersion({ bucket, key, size, meta, checksums: checksums ?? {}, final: checksums !== null }, async ({ header, headerEtag, dataMeta }) => {
      const done = await sealToBackend(this.backend, bucket, key, header, size, { size: ciphertextSize(size), meta: dataMeta, ...cond }, src);
      crc32 = done.crc32;
      if (checksums !== null || !settle) return done;
      // as putStream: the first header already decrypts the object; the final one, with the checksums, under the
      // header key current now and only if nobody rewrote the first one meanwhile
      const settled = settle(done.crc32);
      return {
        ...done,
        afterCommit: async () => {
          const n = await this.keys.activeHeaderKeyNumber(header.dataset);
          await this.writeHeader({ ...header, version: 2, keyNumber: n, state: 'final', checksums: settled }, { ifMatch: headerEtag });
        },
      };
    });
    return put.then((r) => ({ ...r, crc32 }));
  }

  /**
   * A body streamed through the engine. The last ciphertext bytes wait for `finish` (the upload's checksums),
   * so a failed verification never commits; without `known` checksums the header is rewritten final afterwards.
   */
  private putStream(...[bucket, key, body, size, meta, finish, cond = {}, known]: Parameters<ObjectStore['put']>): Promise<PutResult> {
    return this.writeVersion({ bucket, key, size, meta, checksums: known ?? {}, final: !!known }, async ({ header, headerEtag, dataMeta }) => {
      const { dataset, oid } = header;
      const deks = header.parts[0].deks as Buffer[];
      let checksums: HeaderChecksums = {};
      const gate = holdLastBytes(async () => {
        checksums = await finish();
      });
      const encrypt = createEncryptStream({ dataset, oid, partNumber: 1, plaintextSize: size, blockSize: this.blockSize, deks, withPrefix: true });
      // one socket read queued, no more: longer queues are freed by major GCs (INLINE_HWM in chunk-stream.ts)
      const cipher = new PassThrough({ highWaterMark: 64 * 1024 });
      const [, put] = await Promise.all([
        pipeline(body, encrypt, gate, cipher),
        this.backend.putObject(bucket, key, cipher, { size: ciphertextSize(size), meta: dataMeta, ...cond }),
      ]);
      return {
        etag: put.etag,
        versionId: put.versionId,
        // The first header already decrypts the object; the final one goes under the header key current now,
        // and only if nobody (a re-wrap, a revocation) rewrote the first one meanwhile.
        afterCommit: known
          ? undefined
          : async () => {
              const n = await this.keys.activeHeaderKeyNumber(dataset);
              await this.writeHeader({ ...header, version: 2, keyNumber: n, state: 'final', checksums }, { ifMatch: headerEtag });
            },
      };
    });
  }

  private readonly background = new Set<Promise<void>>();
  /** Work that finishes after the response; `settled()` waits for it (graceful stop, tests). */
  private later(p: Promise<void>): void {
    this.background.add(p);
    void p.finally(() => this.background.delete(p));
  }
  async settled(): Promise<void> {
    await Promise.allSettled([...this.background]);
  }

  /**
   * After a write committed as version `committed` (undefined: the backend named none), the header of the version
   * it replaced — unless the backend kept that version (bucket versioning: versions.ts).
   */
  async dropPreviousHeader(bucket: string, key: string, previous: ObjectInfo | null, current: Buffer, committed?: string): Promise<void> {
    const prevOid = previous?.meta[META_OID];
    if (!prevOid || prevOid === current.toString('hex')) return;
    // an inline header went with the data object it was in
    if (isInline(previous.meta)) return;
    if (!replacedPrevious(previous, committed)) return;
    this.headers.delete(bucket, key, prevOid);
    await this.bestEffort('previous-header-delete', this.backend.deleteObject(this.metaBucket, this.headerPath(bucket, key, prevOid)), undefined);
  }

  /**
   * Rewrite an object under new DEKs in a single stream's layout (odd multipart layouts, DEK rekey), on condition that
   * it is still the version read. Up to `wholeBodyMax` bytes: read whole, then one PUT. Larger: a multipart upload of
   * whole-chunk parts (MultipartStore.rewrite), never one streamed PUT while the same object is being read — that
   * PUT carries If-Match, and MinIO takes the object's lock for a conditional PUT before it reads the body while our
   * GET of the object holds its read lock until read out: each waited for the other until MinIO's idle time-out
   * (about 30 s), and the complete failed (IncompleteBody). Parts take no lock; the complete's condition is checked
   * after every byte was read.
   */
  async reseal(bucket: string, key: string): Promise<PutResult> {
    const obj = await this.stat(bucket, key);
    const plain = await this.read(obj, 0, obj.size - 1);
    const cond = { ifMatch: obj.info.etag };
    if (obj.size > this.wholeBodyMax) {
      return consuming(plain, (s) => new MultipartStore(this).rewrite(bucket, key, s, obj.size, obj.header.meta, obj.header.checksums, cond));
    }
    const bytes = await readExactly(plain, obj.size);
    return this.put(bucket, key, Readable.from([bytes]), obj.size, obj.header.meta, () => obj.header.checksums, cond, knownOf(obj));
  }

  /** Delete the current object (a delete marker on a versioned bucket) or one version, and its header (versions.ts). */
  delete(bucket: string, key: string, versionId?: string): Promise<DeleteResult> {
    return deleteVersion(this, bucket, key, versionId);
  }

  /** Server-side copy of the ciphertext within one dataset, with a new header bound to the destination. */
  async copySameDataset(src: StoredObject, dstBucket: string, dstKey: string, meta: HeaderMeta): Promise<PutResult> {
    // Our own copy of the DEKs before any await: the cached header's may be zeroed by a concurrent cache clear.
    let own = cloneHeaderKeys(src.header);
    if (dekWiped(own)) {
      wipeHeaderKeys(own);
      own = cloneHeaderKeys((await this.readHeader(src.bucket, src.key, src.header.oid.toString('hex'))).header);
    }
    try {
      return await this.copyWithKeys(src, own, dstBucket, dstKey, meta);
    } finally {
      wipeHeaderKeys(own);
    }
  }

  private async copyWithKeys(src: StoredObject, own: HeaderFields, dstBucket: string, dstKey: string, meta: HeaderMeta): Promise<PutResult> {
    const dataset = own.dataset;
    const header: HeaderFields = {
      ...own,
      bucket: dstBucket,
      key: dstKey,
      version: 2,
      keyNumber: await this.keys.activeHeaderKeyNumber(dataset),
      meta,
      state: 'final',
      createdAt: Date.now(),
    };
    const previous = await this.bestEffort('previous-version-head', this.backend.headObject(dstBucket, dstKey), null);
    const oidHex = src.header.oid.toString('hex');
    // The destination may already hold this oid (in place, or an earlier copy of the same source): then the header
    // about to be written replaces its live one, and a failed copy has to put that one's fields back.
    let before: Pick<HeaderFields, 'meta' | 'state' | 'createdAt'> | null = null;
    if (previous?.meta[META_OID] === oidHex) {
      if (src.bucket === dstBucket && src.key === dstKey) before = { meta: own.meta, state: own.state, createdAt: own.createdAt };
      else {
        // The cache's own object: not wiped here. Unreadable, it has nothing to put back (the copy replaces it).
        // Silent on purpose: an unreadable live header has nothing to put back, and the copy replaces it.
        const live = (await this.readHeader(dstBucket, dstKey, oidHex).catch(() => null))?.header;
        if (live) before = { meta: live.meta, state: live.state, createdAt: live.createdAt };
      }
    }
    const written = await this.writeHeader(header);
    // The copy keeps the source's ETag when that is the plaintext MD5 (as S3 does for a single-part source).
    const md5Etag = src.info.meta[META_ETAG] !== undefined && own.checksums.md5 === src.etag;
    const dataMeta: Record<string, string> = { [META_OID]: oidHex, [META_FMT]: '1' };
    if (md5Etag) dataMeta[META_ETAG] = await this.sealedEtag(header);
    try {
      const copied = await this.backend.copyObject(src.bucket, src.key, dstBucket, dstKey, {
        meta: dataMeta,
        ifMatch: src.info.etag,
        srcVersionId: src.versionId,
      });
      const etag = md5Etag ? src.etag : notMd5(copied.etag);
      // An in-place copy (metadata change) keeps the oid: the cached header of that oid is stale now.
      this.headers.delete(dstBucket, dstKey, oidHex);
      if (!(previous?.meta[META_OID] === oidHex && src.bucket === dstBucket && src.key === dstKey)) {
        await this.dropPreviousHeader(dstBucket, dstKey, previous, src.header.oid, copied.versionId);
      }
      return { etag, oid: src.header.oid, versionId: copied.versionId };
    } catch (e) {
      // The copy did not happen (or not that we know). Whatever holds this oid at the destination now keeps a
      // header: the fields it had put back (unless another writer replaced ours meanwhile), or ours if it is a
      // copy that committed after all. Only a header nobody references is deleted.
      const now = await this.bestEffort('failed-copy-head', this.backend.headObject(dstBucket, dstKey), undefined);
      if (now?.meta[META_OID] === oidHex && isInline(now.meta)) {
        // still the inline-header version it was: the header object written for the copy names nothing
        await this.bestEffort('failed-copy-header-delete', this.backend.deleteObject(this.metaBucket, this.headerPath(dstBucket, dstKey, oidHex)), undefined);
      } else if (now?.meta[META_OID] === oidHex) {
        if (before) await this.bestEffort('failed-copy-header-restore', this.writeHeader({ ...header, ...before }, { ifMatch: written }), '');
      } else if (now !== undefined) {
        await this.bestEffort('failed-copy-header-delete', this.backend.deleteObject(this.metaBucket, this.headerPath(dstBucket, dstKey, oidHex)), undefined);
      }
      this.headers.delete(dstBucket, dstKey, oidHex);
      throw e;
    }
  }
}

