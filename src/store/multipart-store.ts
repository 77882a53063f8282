/**
 * Multipart uploads in the object layer: each part is sealed on its own (its own DEKs, its part number in every
 * chunk's AAD) and recorded as a sealed part record in the meta bucket; Complete writes the object header with
 * every part's DEKs before the backend's complete, which is the commit point.
 *
 * Part records are keyed by the backend's ETag of the attempt (`mpu/<id>/<n>/<etag>`), so a part sent again (a
 * client's retry, or two attempts in flight at once) leaves one record per attempt and never pairs one attempt's
 * DEKs with another's ciphertext. Which attempt is the part is the backend's to say, as on S3: the one whose upload
 * finished last; Complete names it by its ETag, and the backend's complete refuses any other (InvalidPart).
 *
 * Every refusal (InvalidPart, NoSuchUpload, a record that does not open here) carries a diagnosis — which lookup
 * failed and what the backend answered — for the handler's warn line (`diagnosisOf`); the client sees S3's answer.
 */
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { S3Error, isS3Error } from '../errors.ts';
import { CHUNK_SIZE, blockCount, createEncryptStream, newDeks, zero, type HeaderChecksums, type HeaderFields, type HeaderMeta } from '../engine/index.ts';
import { wipeHeaderKeys } from './header-cache.ts';
import { META_FMT, META_OID } from './header-door.ts';
import type { ObjectStore, PutCondition } from './object-store.ts';
import { holdLastBytes } from './streams.ts';
import { PREFIX_SIZE, sealedPartSize } from '../format/layout.ts';
import { sealPart, type NativeUploadSource } from './native-write.ts';
import { NATIVE_MIN_BYTES, nativeDataplane } from '../engine/dataplane.ts';
import { unquoteEtag } from '../s3/etags.ts';

/** The backend bytes of a part of `size` plaintext bytes: its chunks, and the object's prefix in part 1 (as encrypt.ts sizes its output). */
const partCipherSize = (size: number, partNumber: number) => sealedPartSize(size) + (partNumber === 1 ? PREFIX_SIZE : 0);

/** Part size of a rewrite (ObjectStore.reseal): whole chunks, S3's 5 MiB minimum and then some. */
const REWRITE_PART = 64 * 1024 * 1024;

/**
 * Successive pieces of one stream, each a Readable of exactly the bytes asked for (the next piece starts where the
 * last ended); a stream that ends early fails the piece.
 */
function takeBytes(src: Readable): (n: number) => Readable {
  const it = src[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let left: Buffer | null = null;
  return (n) =>
    Readable.from(
      (async function* () {
        while (n > 0) {
          let b = left;
          left = null;
          if (!b) {
            const r = await it.next();
            if (r.done) throw new S3Error('InternalError', 'the object ended before its size');
            b = r.value;
          }
          if (b.length > n) {
            left = b.subarray(n);
            b = b.subarray(0, n);
          }
          n -= b.length;
          yield b;
        }
      })(),
    );
}

/** S3's minimum size of a non-final multipart part. */
export const MIN_PART_SIZE = 5 * 1024 * 1024;

export interface PartRecord {
  partNumber: number;
  etag: string;
  plaintextSize: number;
  checksums: HeaderChecksums;
  lastModified: Date;
}

/** Why a multipart request was refused: for the log, never for the client. Nothing secret (ETags are the backend's). */
export interface MultipartDiagnosis {
  /** Which lookup failed, in words. */
  reason: string;
  uploadId: string;
  partNumber?: number;
  /** The part ETag the request named. */
  etag?: string;
  /** What the backend answered the request that failed (the meta-bucket read of a record, or the upload's own call). */
  backend?: { op: string; status?: number; code?: string };
  /** For a missing part record: the ETags of the attempts the gateway did record under that part number. */
  recordedEtags?: string[];
  /** When the backend refused a complete without saying which part (MinIO): the parts the request named (first 20). */
  named?: { partNumber: number; etag: string }[];
}

const diagnoses = new WeakMap<object, MultipartDiagnosis>();

function diagnosed<E extends object>(e: E, d: MultipartDiagnosis): E {
  diagnoses.set(e, d);
  return e;
}

/** The backend's refusal of an UploadPart, diagnosed when it is NoSuchUpload (the gateway has the upload's record). */
function backendRefusal(uploadId: string, partNumber: number): (e: unknown) => never {
  return (e) => {
    if (isS3Error(e, 'NoSuchUpload')) {
      diagnosed(e, { reason: 'the backend has no such upload (the gateway has its record: aborted or completed at the backend)', uploadId, partNumber, backend: backendAnswer('UploadPart', e) });
    }
    throw e;
  };
}

/** The backend's own answer behind a mapped error: its HTTP status and code where the backend client kept them. */
function backendAnswer(op: string, e: unknown): { op: string; status?: number; code?: string } {
  if (!isS3Error(e)) return { op, code: (e as { code?: string })?.code };
  const cause = e.cause as { $metadata?: { httpStatusCode?: number }; Code?: string; name?: string } | undefined;
  const causeCode = cause?.Code ?? (cause?.name && cause.name !== 'Error' ? cause.name : undefined);
  return { op, status: cause?.$metadata?.httpStatusCode ?? e.status, code: causeCode ?? e.code };
}

/** Refusals the handlers log with their diagnosis: the ones that say a lookup failed (not a client's plain mistake). */
const DIAGNOSED = new Set(['InvalidPart', 'NoSuchUpload', 'IntegrityError']);

export class MultipartStore {
  constructor(private readonly store: ObjectStore) {}

  private get backend() {
    return this.store.backend;
  }
  private get keys() {
    return this.store.keys;
  }
  private initPath(uploadId: string) {
    return `mpu/${encodeURIComponent(uploadId)}/init`;
  }
  private partPath(uploadId: string, partNumber: number, etag: string) {
    return `mpu/${encodeURIComponent(uploadId)}/${String(partNumber).padStart(5, '0')}/${etag}`;
  }

  private async putSealed(path: string, fields: HeaderFields): Promise<void> {
    const bytes = await this.store.door.seal(fields);
    await this.backend.putObject(this.store.metaBucket, path, bytes, { size: bytes.length });
  }

  /** The diagnosis attached to a refusal this store threw (or `diagnose` attached), if any. */
  diagnosisOf(e: unknown): MultipartDiagnosis | undefined {
    return typeof e === 'object' && e !== null ? diagnoses.get(e) : undefined;
  }

  /** Attach a diagnosis to a refusal found outside the store (a handler's own check). */
  diagnose<E extends object>(e: E, d: MultipartDiagnosis): E {
    return diagnosed(e, d);
  }

  /** Whether a refusal is one the handlers log at warn with its diagnosis. */
  isDiagnosed(e: unknown): e is S3Error {
    return isS3Error(e) && DIAGNOSED.has(e.code);
  }

  private async getSealed(
    path: string,
    bucket: string,
    key: string,
    missing: 'NoSuchUpload' | 'InvalidPart',
    at: { uploadId: string; partNumber?: number; etag?: string },
  ): Promise<HeaderFields> {
    const what = missing === 'NoSuchUpload' ? 'upload record' : 'part record';
    let data: Buffer;
    try {
      ({ data } = await this.backend.getBuffer(this.store.metaBucket, path));
    } catch (e) {
      if (!isS3Error(e, 'NoSuchKey')) throw e;
      const recordedEtags = missing === 'InvalidPart' && at.partNumber !== undefined ? await this.recordedEtags(at.uploadId, at.partNumber) : undefined;
      const reason =
        missing === 'NoSuchUpload'
          ? "the gateway's upload record is missing (no such upload, or it was completed or aborted)"
          : recordedEtags?.length
            ? "the gateway's part record for this ETag is missing: it holds records of other attempts of this part number (recordedEtags)"
            : "the gateway's part record is missing: no attempt of this part number was recorded";
      throw diagnosed(new S3Error(missing), { reason, ...at, backend: backendAnswer('meta GetObject', e), recordedEtags });
    }
    // An upload id presented for another bucket/key does not authenticate: to the client it does not exist.
    const missingErr = (why = 'it does not open for this bucket and key') =>
      diagnosed(new S3Error(missing), { reason: `the gateway's ${what} was found but refused: ${why}`, ...at });
    try {
      return await this.store.door.open(data, { bucket, key }, (why) => missingErr(why));
    } catch (e) {
      if (isS3Error(e, 'IntegrityError')) throw missingErr(`${e.message} (another bucket or key's upload id, or a damaged record)`);
      throw e;
    }
  }

  /** ETags of the part records of one part number (failure path only: one listing page, a few names). */
  private async recordedEtags(uploadId: string, partNumber: number): Promise<string[] | undefined> {
    const prefix = `mpu/${encodeURIComponent(uploadId)}/${String(partNumber).padStart(5, '0')}/`;
    try {
      const page = await this.backend.listObjects(this.store.metaBucket, { prefix, maxKeys: 10 });
      return page.objects.map((o) => o.key.slice(prefix.length));
    } catch {
      return undefined; // a diagnosis only: the refusal stands without it
    }
  }

  async create(bucket: string, key: string, meta: HeaderMeta, checksums: HeaderChecksums): Promise<string> {
    // The format needs at least one part; the upload record carries an empty placeholder.
    const init = await this.store.newHeader(bucket, key, meta, [{ partNumber: 1, plaintextSize: 0, deks: [] }], checksums);
    const uploadId = await this.backend.createMultipart(bucket, key, { [META_OID]: init.oid.toString('hex'), [META_FMT]: '1' });
    await this.putSealed(this.initPath(uploadId), init);
    return uploadId;
  }

  async init(bucket: string, key: string, uploadId: string): Promise<HeaderFields> {
    return this.getSealed(this.initPath(uploadId), bucket, key, 'NoSuchUpload', { uploadId });
  }

  async uploadPart(
    bucket: string,
    key: string,
    uploadId: string,
    partNumber: number,
    body: Readable,
    size: number,
    finish: () => Promise<HeaderChecksums> | HeaderChecksums,
  ): Promise<{ etag: string; checksums: HeaderChecksums }> {
    const init = await this.init(bucket, key, uploadId);
    const deks = newDeks(blockCount(size, init.blockSize));
    try {
      let checksums: HeaderChecksums = {};
      const gate = holdLastBytes(async () => {
        checksums = await finish();
      });
      const withPrefix = partNumber === 1;
      const encrypt = createEncryptStream({
        dataset: init.dataset,
        oid: init.oid,
        partNumber,
        plaintextSize: size,
        blockSize: init.blockSize,
        deks,
        withPrefix,
      });
      // one socket read queued, no more: longer queues are freed by major GCs (INLINE_HWM in chunk-stream.ts)
      const cipher = new PassThrough({ highWaterMark: 64 * 1024 });
      const cipherLen = partCipherSize(size, partNumber);
      const [, { etag }] = await Promise.all([
        pipeline(body, encrypt, gate, cipher),
        this.backend.uploadPart(bucket, key, uploadId, partNumber, cipher, cipherLen).catch(backendRefusal(uploadId, partNumber)),
      ]);
      await this.recordPart(init, uploadId, partNumber, etag, size, deks, checksums);
      return { etag, checksums };
    } finally {
      for (const d of deks) zero(d);
    }
  }

  /**
   * Whether an UploadPart of `size` bytes with nothing to verify may be sealed by the native data plane
   * (uploadPartNative): dataPlane 'auto', the addon loaded, a backend that takes a raw request now (as
   * ObjectStore.nativePutApplies), and at least NATIVE_MIN_BYTES (a part has no whole-body path: below that the
   * handoff costs more than it saves).
   */
  nativePartApplies(size: number): boolean {
    const s = this.store;
    return s.dataPlane === 'auto' && size >= NATIVE_MIN_BYTES && !!this.backend.rawUploadPart && !!this.backend.canRawPut?.() && nativeDataplane() !== null;
  }

  /**
   * uploadPart for a body sealed by the native data plane (native-write.ts sealPart) from the client's socket to the
   * backend's UploadPart: the same part, the same record, with the declared `checksums` the pump verified (src.verify). `init` is the
   * upload's record (init()), read before the client's socket was taken.
   */
  async uploadPartNative(
    bucket: string,
    key: string,
    uploadId: string,
    partNumber: number,
    init: HeaderFields,
    size: number,
    src: NativeUploadSource,
    /** The part's checksums to record, from the CRC-32 the pump computed (declared ones, verified, or a trailer's). */
    settle: (crc32: number | undefined) => HeaderChecksums = () => ({}),
  ): Promise<{ etag: string; checksums: HeaderChecksums }> {
    const deks = newDeks(blockCount(size, init.blockSize));
    try {
      const cipherLen = partCipherSize(size, partNumber);
      const { etag, crc32 } = await sealPart((first) => this.backend.rawUploadPart!(bucket, key, uploadId, partNumber, cipherLen, first), init, partNumber, deks, size, src).catch(backendRefusal(uploadId, partNumber));
      const checksums = settle(crc32);
      await this.recordPart(init, uploadId, partNumber, etag, size, deks, checksums);
      return { etag, checksums };
    } finally {
      for (const d of deks) zero(d);
    }
  }

  /**
   * Write `size` bytes of `plain` to bucket/key as a new multipart upload of whole-chunk parts (part 1 first, so the
   * object's sizes are a single stream's and Complete does not re-seal it), committed by a complete under `cond`;
   * the object's checksums are `checksums`. ObjectStore.reseal's way for a large object: see there why not one PUT.
   * A failure aborts the upload (best effort: `lakecrypt gc` finds what is left).
   */
  async rewrite(bucket: string, key: string, plain: Readable, size: number, meta: HeaderMeta, checksums: HeaderChecksums, cond: PutCondition): Promise<{ etag: string; oid: Buffer; versionId?: string }> {
    // S3 allows 10,000 parts: 64 MiB each up to 640 GiB, larger (still whole chunks) beyond
    const partSize = Math.max(REWRITE_PART, Math.ceil(size / 10_000 / CHUNK_SIZE) * CHUNK_SIZE);
    const uploadId = await this.create(bucket, key, meta, checksums.algorithm ? { algorithm: checksums.algorithm, type: checksums.type } : {});
    try {
      const next = takeBytes(plain);
      const parts: { partNumber: number; etag: string }[] = [];
      for (let n = 1, at = 0; n === 1 || at < size; n++) {
        const len = Math.min(partSize, size - at);
        const { etag } = await this.uploadPart(bucket, key, uploadId, n, next(len), len, () => ({}));
        parts.push({ partNumber: n, etag });
        at += len;
      }
      const done = await this.complete(bucket, key, uploadId, parts, () => Promise.resolve(checksums), cond);
      if (done.needsReseal) throw new S3Error('InternalError', 'a rewrite came out in a layout that needs re-sealing');
      return { etag: done.etag, oid: done.header.oid, versionId: done.versionId };
    } catch (e) {
      await this.store.bestEffort('rewrite-abort', this.abort(bucket, key, uploadId), undefined);
      throw e;
    }
  }

  /** The part's sealed record, under the header key current now, not the upload's (a re-key may have retired that one since). */
  private async recordPart(init: HeaderFields, uploadId: string, partNumber: number, etag: string, size: number, deks: Buffer[], checksums: HeaderChecksums): Promise<void> {
    await this.putSealed(this.partPath(uploadId, partNumber, etag), {
      ...init,
      version: 2,
      keyNumber: await this.keys.activeHeaderKeyNumber(init.dataset),
      state: 'pending',
      createdAt: Date.now(),
      parts: [{ partNumber, plaintextSize: size, deks }],
      checksums,
    });
  }

  async part(bucket: string, key: string, uploadId: string, partNumber: number, etag: string): Promise<HeaderFields> {
    const bare = unquoteEtag(etag);
    return this.getSealed(this.partPath(uploadId, partNumber, bare), bucket, key, 'InvalidPart', { uploadId, partNumber, etag: bare });
  }

  async listParts(bucket: string, key: string, uploadId: string): Promise<PartRecord[]> {
    await this.init(bucket, key, uploadId);
    const prefix = `mpu/${encodeURIComponent(uploadId)}/`;
    // One record per attempt of a part. Which attempt is the part: the backend's own ListParts where it has one
    // (record times are whole seconds on versitygw and S3, so two attempts within a second tie), else the newest.
    const attempts = new Map<number, { path: string; etag: string; lastModified: Date }[]>();
    let token: string | undefined;
    do {
      const page = await this.backend.listObjects(this.store.metaBucket, { prefix, continuationToken: token });
      for (const o of page.objects) {
        const m = /^(\d{5})\/(.+)$/.exec(o.key.slice(prefix.length));
        if (!m) continue;
        const partNumber = Number(m[1]);
        attempts.set(partNumber, [...(attempts.get(partNumber) ?? []), { path: o.key, etag: m[2], lastModified: o.lastModified }]);
      }
      token = page.isTruncated ? page.nextContinuationToken : undefined;
    } while (token);
    const kept = this.backend.listParts && attempts.size > 0 ? new Map((await this.backend.listParts(bucket, key, uploadId)).map((p) => [p.partNumber, p.etag])) : undefined;
    const out: PartRecord[] = [];
    for (const [partNumber, list] of attempts) {
      const chosen = list.find((a) => a.etag === kept?.get(partNumber)) ?? list.reduce((a, b) => (b.lastModified >= a.lastModified ? b : a));
      const h = await this.getSealed(chosen.path, bucket, key, 'InvalidPart', { uploadId, partNumber, etag: chosen.etag });
      out.push({ partNumber, etag: chosen.etag, plaintextSize: h.parts[0]?.plaintextSize ?? 0, checksums: h.checksums, lastModified: chosen.lastModified });
      wipeHeaderKeys(h);
    }
    return out.sort((a, b) => a.partNumber - b.partNumber);
  }

  private async cleanup(uploadId: string): Promise<void> {
    const prefix = `mpu/${encodeURIComponent(uploadId)}/`;
    let token: string | undefined;
    do {
      const page = await this.backend.listObjects(this.store.metaBucket, { prefix, continuationToken: token });
      await Promise.all(page.objects.map((o) => this.store.bestEffort('upload-record-delete', this.backend.deleteObject(this.store.metaBucket, o.key), undefined)));
      token = page.isTruncated ? page.nextContinuationToken : undefined;
    } while (token);
  }

  async abort(bucket: string, key: string, uploadId: string): Promise<void> {
    await this.init(bucket, key, uploadId);
    await this.backend.abortMultipart(bucket, key, uploadId).catch((e) => {
      if (!isS3Error(e, 'NoSuchUpload')) throw e;
    });
    await this.cleanup(uploadId);
  }

  /**
   * Complete: the object header (every part's DEKs) is stored before the backend completes, which is the
   * commit point. `combine` turns the parts' checksums into the object's.
   */
  async complete(
    bucket: string,
    key: string,
    uploadId: string,
    parts: { partNumber: number; etag: string }[],
    combine: (init: HeaderFields, parts: HeaderFields[]) => Promise<HeaderChecksums>,
    cond: PutCondition = {},
  ): Promise<{ etag: string; header: HeaderFields; needsReseal: boolean; versionId?: string }> {
    const init = await this.init(bucket, key, uploadId);
    const sealed: HeaderFields[] = [];
    try {
      for (const p of parts) sealed.push(await this.part(bucket, key, uploadId, p.partNumber, p.etag));
      sealed.forEach((h, i) => {
        if (i < sealed.length - 1 && h.parts[0].plaintextSize < MIN_PART_SIZE) {
          throw new S3Error('EntityTooSmall', undefined, { ProposedSize: String(h.parts[0].plaintextSize), MinSizeAllowed: String(MIN_PART_SIZE) });
        }
      });
      const header: HeaderFields = {
        ...init,
        version: 2,
        keyNumber: await this.keys.activeHeaderKeyNumber(init.dataset),
        state: 'final',
        createdAt: Date.now(),
        parts: sealed.map((h) => h.parts[0]),
        checksums: await combine(init, sealed),
      };
      const previous = await this.store.bestEffort('previous-version-head', this.backend.headObject(bucket, key), null);
      await this.store.writeHeader(header);
      const backendParts = parts.map((p) => ({ partNumber: p.partNumber, etag: unquoteEtag(p.etag) }));
      // A failed complete, refused condition included, leaves the header where it is: the same upload may still
      // commit (a retried or concurrent complete of it), and its next complete rewrites the header anyway. If the
      // upload is aborted instead, `lakecrypt gc` finds the header unreferenced.
      const { etag, versionId } = await this.backend.completeMultipart(bucket, key, uploadId, backendParts, cond).catch((e: unknown) => {
        if (isS3Error(e)) {
          // fs names the part in the error; S3 in its error body (the SDK's field); MinIO does not
          const said = Number(e.detail.PartNumber ?? (e.cause as { PartNumber?: unknown } | undefined)?.PartNumber);
          const partNumber = Number.isInteger(said) && said > 0 ? said : undefined;
          const why =
            e.code === 'InvalidPart'
              ? "the backend's CompleteMultipartUpload refused the part list (the gateway had every part's record: the ETag named is not the backend's current attempt of the part)"
              : e.code === 'NoSuchUpload'
                ? "the backend's CompleteMultipartUpload found no such upload (the gateway has its record: completed or aborted at the backend)"
                : `the backend's CompleteMultipartUpload refused: ${e.code}`;
          diagnosed(e, {
            reason: why,
            uploadId,
            partNumber,
            etag: partNumber !== undefined ? backendParts.find((p) => p.partNumber === partNumber)?.etag : undefined,
            named: partNumber === undefined ? backendParts.slice(0, 20) : undefined,
            backend: backendAnswer('CompleteMultipartUpload', e),
          });
        }
        throw e;
      });
      await this.store.dropPreviousHeader(bucket, key, previous, init.oid, versionId);
      await this.cleanup(uploadId);
      // A layout whose size function differs from a single stream (a non-final part that is not a whole number
      // of chunks, or no part 1 to carry the prefix) is re-sealed so listings stay exact.
      const needsReseal =
        sealed[0].parts[0].partNumber !== 1 || sealed.slice(0, -1).some((h) => h.parts[0].plaintextSize % CHUNK_SIZE !== 0);
      return { etag, header, needsReseal, versionId };
    } finally {
      for (const h of sealed) wipeHeaderKeys(h);
    }
  }
}
