/**
 * The read side of the object layer (ObjectStore delegates its reads here): a HEAD or one GET of the data object, its
 * header from the cache or where it is stored, and the plaintext — whole in one buffer for a small object, through
 * the native data plane for a large one, else a decrypt stream that re-checks revocations while it runs. Ranged and
 * partNumber reads plan their backend range from the header, or from the remembered layout in one round trip.
 */
import { Readable, type Transform } from 'node:stream';
import type { ObjectInfo } from '../backend/types.ts';
import { S3Error, isS3Error } from '../errors.ts';
import {
  CHUNK_SIZE,
  ciphertextSize,
  createDecryptStream,
  openWhole as openWholeCipher,
  planRange,
  totalPlaintextSize,
  type HeaderFields,
} from '../engine/index.ts';
import { cloneHeaderKeys, wipeHeaderKeys } from './header-cache.ts';
import { META_OID, dekWiped } from './header-door.ts';
import { layoutHeader, sameLayout } from './layout-memory.ts';
import { LiveRevocation } from './live-revocation.ts';
import { openNativeRead, type NativeRead } from './native-read.ts';
import type { ObjectStore, StoredObject, WholeRead } from './object-store.ts';
import { collect } from './streams.ts';

/**
 * Objects up to this size are read whole and answered in one write (WholeRead.openSmall). A 4 KiB GET spent more
 * CPU setting up its decrypt stream and piping it than decrypting; larger objects stream (memory stays bounded).
 */
export const SMALL_READ_MAX = 256 * 1024;

/** Ciphertext size of a header's layout: prefix (carried by part 1) + every part's sealed chunks. */
export function storedSizeOf(h: HeaderFields): number {
  const prefix = ciphertextSize(0);
  let n = (h.parts[0]?.partNumber ?? 1) === 1 ? prefix : 0;
  for (const p of h.parts) n += ciphertextSize(p.plaintextSize) - prefix;
  return n;
}

/** An ObjectStore's reads: the store owns one and its read methods delegate here; `s` gives the backend, keys and caches. */
export class ObjectReads {
  constructor(private readonly s: ObjectStore) {}

  /** A pre-lakecrypt object: refused, unless its dataset allows plaintext reads until it is migrated. */
  private unmigrated(bucket: string, key: string, info: ObjectInfo): StoredObject {
    const dataset = this.s.keys.datasetFor(bucket, key);
    if (!this.s.plaintextReads.allowed(dataset)) {
      throw new S3Error('AccessDenied', 'This object was not written through lakecrypt and is not readable until migrated.');
    }
    this.s.plaintextReads.onRead?.(bucket, key);
    const user = Object.fromEntries(Object.entries(info.meta).filter(([k]) => !k.startsWith('lc-')));
    const header: HeaderFields = {
      version: 2,
      dataset,
      keyNumber: 0,
      oid: Buffer.alloc(16),
      bucket,
      key,
      state: 'final',
      createdAt: info.lastModified.getTime(),
      blockSize: this.s.blockSize,
      chunkSize: CHUNK_SIZE,
      parts: [{ partNumber: 1, plaintextSize: info.size, deks: [] }],
      meta: { user },
      checksums: {},
    };
    return { bucket, key, header, info, size: info.size, etag: info.etag, lastModified: info.lastModified, plaintext: true };
  }

  /** HEAD the data object (the current one, or `versionId`) and open its header. Throws NoSuchKey / NoSuchVersion. */
  async stat(bucket: string, key: string, versionId?: string): Promise<StoredObject> {
    for (let attempt = 0; ; attempt++) {
      const info = await this.s.backend.headObject(bucket, key, versionId);
      if (!info) {
        if (!(await this.s.backend.bucketExists(bucket))) throw new S3Error('NoSuchBucket', undefined, { BucketName: bucket });
        if (versionId !== undefined) throw new S3Error('NoSuchVersion', undefined, { Key: key, VersionId: versionId });
        throw new S3Error('NoSuchKey', undefined, { Key: key });
      }
      const oidHex = info.meta[META_OID];
      if (!oidHex || !/^[0-9a-f]{32}$/.test(oidHex)) return { ...this.unmigrated(bucket, key, info), versionId };
      try {
        const { header } = await this.s.readHeader(bucket, key, oidHex, { info });
        return await this.storedObject(bucket, key, info, header, versionId);
      } catch (e) {
        // The object may have been overwritten between our HEAD and the header read: look again once (a version
        // named by id does not change).
        if (attempt === 0 && versionId === undefined && isS3Error(e, 'IntegrityError')) continue;
        throw e;
      }
    }
  }

  /**
   * Whole-object read in one backend round trip (no HEAD first): GET the data object, find its header by the
   * `lc-oid` the GET returned, and hand back the object and a plaintext stream factory. Falls back to `stat` +
   * `read` when the version changed under us.
   */
  async openWhole(bucket: string, key: string, versionId?: string): Promise<WholeRead> {
    let got: { body: Readable; info: ObjectInfo };
    try {
      got = await this.s.backend.getObject(bucket, key, undefined, versionId);
    } catch (e) {
      if ((isS3Error(e, 'NoSuchKey') || isS3Error(e, 'NoSuchVersion')) && !(await this.s.backend.bucketExists(bucket))) {
        throw new S3Error('NoSuchBucket', undefined, { BucketName: bucket });
      }
      if (isS3Error(e, 'NoSuchKey')) throw new S3Error('NoSuchKey', undefined, { Key: key });
      throw e;
    }
    const { body, info } = got;
    const oidHex = info.meta[META_OID];
    if (!oidHex || !/^[0-9a-f]{32}$/.test(oidHex)) {
      let obj: StoredObject;
      try {
        obj = { ...this.unmigrated(bucket, key, info), versionId };
      } catch (e) {
        body.destroy();
        throw e;
      }
      return { obj, open: () => Promise.resolve(body), discard: () => body.destroy() };
    }
    let header: HeaderFields;
    try {
      ({ header } = await this.s.readHeader(bucket, key, oidHex, { info }));
    } catch (e) {
      body.destroy();
      if (!isS3Error(e, 'IntegrityError') || versionId !== undefined) throw e;
      const obj = await this.stat(bucket, key);
      return { obj, open: () => this.read(obj, 0, obj.size - 1), discard: () => {} };
    }
    let obj: StoredObject;
    try {
      obj = await this.storedObject(bucket, key, info, header, versionId);
    } catch (e) {
      body.destroy();
      throw e;
    }
    const size = obj.size;
    return {
      obj,
      discard: () => body.destroy(),
      openNative: () => (this.s.dataPlane === 'auto' ? openNativeRead(this.s, obj, body) : Promise.resolve(null)),
      openSmall: size > 0 && size <= SMALL_READ_MAX ? () => this.readSmall(obj, body) : undefined,
      // Resolves once the keys are in hand (a revoked DEK fails here, before any response header is written).
      open: async () => {
        if (size === 0) {
          body.resume();
          return Readable.from([]);
        }
        return this.decryptBody(obj, body, 0, size - 1);
      },
    };
  }

  /**
   * The object a backend answer (HEAD or GET: `info`) and its opened header describe. A data object whose stored size
   * is not the header's layout was truncated or extended (a range read would otherwise serve the untouched chunks
   * and never notice): IntegrityError. The current version's layout is remembered for openRange.
   */
  private async storedObject(bucket: string, key: string, info: ObjectInfo, header: HeaderFields, versionId?: string): Promise<StoredObject> {
    if (info.size !== storedSizeOf(header)) {
      throw new S3Error('IntegrityError', 'The stored object does not have the size its header describes.');
    }
    const etag = await this.s.clientEtag(bucket, key, info, header);
    if (versionId === undefined) this.s.layouts.remember(bucket, key, header);
    return { bucket, key, header, info, size: totalPlaintextSize(header), etag, lastModified: info.lastModified, versionId };
  }

  /**
   * The keys of one read: an own copy of the header (DEKs included; the caller wipes it) and its live revocation
   * state, taken as of the key service's generation `since` (any clear after it makes the read recheck). On failure
   * `body` is destroyed and nothing is left to wipe.
   */
  async readKeys(obj: StoredObject, body: Readable): Promise<{ header: HeaderFields; live: LiveRevocation; since: number }> {
    // Any cache clear from here on (a revocation seen through the epoch) makes the stream recheck its keys.
    const since = this.s.keys.cacheGeneration;
    // Own copy of the DEKs before any await: a cache clear (revocation, rotation epoch) zeroes the cached ones.
    let header = cloneHeaderKeys(obj.header);
    if (dekWiped(header)) {
      // cleared between stat/openWhole and now: open the header again (synchronous clone right after)
      wipeHeaderKeys(header);
      try {
        const fresh = await this.s.readHeader(obj.bucket, obj.key, obj.header.oid.toString('hex'), { versionId: obj.versionId });
        header = cloneHeaderKeys(fresh.header);
      } catch (e) {
        body.destroy();
        throw e;
      }
    }
    // Not a predicate taken once: a read still streaming when a revocation lands stops within the same bound as
    // new requests (live-revocation.ts).
    try {
      return { header, live: await LiveRevocation.open(this.s.keys, this.s, header, since), since };
    } catch (e) {
      body.destroy();
      wipeHeaderKeys(header);
      throw e;
    }
  }

  /** See WholeRead.openSmall. */
  private async readSmall(obj: StoredObject, body: Readable): Promise<Buffer | null> {
    const stored = obj.info.size;
    if (!this.s.bodyBudget.take(stored)) return null;
    try {
      const { header, live } = await this.readKeys(obj, body);
      try {
        const cipher = await collect(body, stored);
        // what the stream checks once per input buffer, checked once here: nothing is released before it
        if (live.stale()) await live.recheck();
        return openWholeCipher({ header, start: 0, endInclusive: obj.size - 1, isRevoked: live.isRevoked }, cipher);
      } catch (e) {
        body.destroy();
        throw e;
      } finally {
        wipeHeaderKeys(header);
      }
    } finally {
      this.s.bodyBudget.give(stored);
    }
  }

  private async decryptBody(obj: StoredObject, body: Readable, start: number, endInclusive: number): Promise<Readable> {
    const { header, live } = await this.readKeys(obj, body);
    let decrypt: Transform;
    try {
      decrypt = createDecryptStream({ header, start, endInclusive, isRevoked: live.isRevoked, live });
    } catch (e) {
      body.destroy();
      wipeHeaderKeys(header);
      throw e;
    }
    body.on('error', (e) => decrypt.destroy(e));
    decrypt.once('close', () => {
      wipeHeaderKeys(header);
      // A failed or abandoned decrypt leaves the backend body paused mid-way: release its file or socket now
      // (pipe() only unpipes), not when the garbage collector finds it.
      if (!body.readableEnded) body.destroy();
    });
    return body.pipe(decrypt);
  }

  /**
   * Plaintext stream of [start, end] of an object opened by `stat`. Verifies the data object is still the
   * same version (oid) as the header; the returned stream errors on any integrity failure.
   */
  async read(obj: StoredObject, start: number, endInclusive: number): Promise<Readable> {
    const r = await this.readRange(obj, start, endInclusive, false);
    return r.stream!;
  }

  /**
   * read(), through the native data plane when `native` is asked and it applies (native-read.ts): then `native` is
   * set (the backend body handed to a pump when sent), else `stream` is the plaintext stream of the same backend GET.
   */
  async readRange(obj: StoredObject, start: number, endInclusive: number, native: boolean): Promise<{ stream?: Readable; native?: NativeRead }> {
    if (obj.size === 0 || endInclusive < start) return { stream: Readable.from([]) };
    if (obj.plaintext) return { stream: (await this.s.backend.getObject(obj.bucket, obj.key, { start, end: endInclusive }, obj.versionId)).body };
    const { cipherStart, cipherEnd } = planRange(obj.header, start, endInclusive);
    const { body, info } = await this.s.backend.getObject(obj.bucket, obj.key, { start: cipherStart, end: cipherEnd }, obj.versionId);
    if (info.meta[META_OID] !== undefined && info.meta[META_OID] !== obj.header.oid.toString('hex')) {
      body.destroy();
      throw new S3Error('PreconditionFailed', 'The object changed while it was being read.');
    }
    return this.openRangeBody(obj, body, start, endInclusive, native);
  }

  /** The plaintext of `body`, the sealed bytes planRange names for [start, endInclusive] of `obj`: see readRange. */
  async openRangeBody(obj: StoredObject, body: Readable, start: number, endInclusive: number, native: boolean): Promise<{ stream?: Readable; native?: NativeRead }> {
    const pumped = native && this.s.dataPlane === 'auto' ? await openNativeRead(this.s, obj, body, start, endInclusive) : null;
    if (pumped) return { native: pumped };
    return { stream: await this.decryptBody(obj, body, start, endInclusive) };
  }

  /**
   * A Range or partNumber GET of the current version in one backend round trip (layout-memory.ts): `pick` chooses
   * the plaintext range from the remembered plaintext size and part sizes, the ranged GET is planned from the
   * remembered layout, and its answer must be that version (its oid) with a header of that layout before anything
   * is opened. Null — nothing left open — when no layout is remembered, `pick` declines or throws, the backend
   * refused, or the answer is another version: the caller then takes stat + readRange, which settles every such
   * case itself (its own errors, a 416 against the current size), so nothing here is reported.
   */
  async openRange(
    bucket: string,
    key: string,
    pick: (size: number, partSizes: number[]) => { start: number; end: number } | null,
  ): Promise<{ obj: StoredObject; start: number; end: number; body: Readable } | null> {
    const l = this.s.layouts.get(bucket, key);
    if (!l || l.size === 0) return null;
    let range: { start: number; end: number } | null;
    try {
      range = pick(l.size, l.sizes);
    } catch {
      return null; // judged against a remembered size that may be stale: the long way judges against the current one
    }
    if (!range) return null;
    const { cipherStart, cipherEnd } = planRange(layoutHeader(l) as HeaderFields, range.start, range.end);
    let got: { body: Readable; info: ObjectInfo };
    try {
      got = await this.s.backend.getObject(bucket, key, { start: cipherStart, end: cipherEnd });
    } catch {
      this.s.layouts.forget(bucket, key);
      return null; // gone, shrunk, or the backend failed: the long way asks again and answers with its own error
    }
    const { body, info } = got;
    const another = (): null => {
      body.destroy();
      this.s.layouts.forget(bucket, key);
      return null;
    };
    if (info.meta[META_OID] !== l.oid) return another();
    try {
      const { header } = await this.s.readHeader(bucket, key, l.oid, { info });
      if (!sameLayout(header, l)) return another();
      return { obj: await this.storedObject(bucket, key, info, header), start: range.start, end: range.end, body };
    } catch {
      return another(); // the long way reads the header again and reports what fails there
    }
  }
}
