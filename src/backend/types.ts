import type net from 'node:net';
import type { Readable } from 'node:stream';

/**
 * The storage backend: where ciphertext, headers, the keystore and the audit log live. Everything a backend
 * stores is already encrypted or non-secret; a backend is untrusted (see docs/THREAT-MODEL.md).
 *
 * Errors: implementations throw S3Error (src/errors.ts) with codes NoSuchBucket, NoSuchKey, NoSuchUpload,
 * BucketNotEmpty, BucketAlreadyOwnedByYou, PreconditionFailed, InvalidRange, InvalidPart; anything else
 * (network, 5xx after retries) surfaces as S3Error('ServiceUnavailable') with the cause attached.
 */
export interface ObjectInfo {
  key: string;
  /** Stored (ciphertext) size in bytes. */
  size: number;
  /** Backend ETag without quotes. */
  etag: string;
  lastModified: Date;
  /** Backend user metadata, lower-case names without the x-amz-meta- prefix. On head/get (and listings withMeta). */
  meta: Record<string, string>;
  /**
   * The version this answer is of (x-amz-version-id), on head/get of a backend that keeps versions and said one
   * (a bucket whose versioning is, or was, enabled; `null` names the null version). Undefined otherwise.
   */
  versionId?: string;
}

/** A bucket's versioning state as S3 names it; undefined = never enabled. */
export type VersioningStatus = 'Enabled' | 'Suspended';

/** What a delete did, on a backend that keeps versions (undefined fields: an unversioned bucket). */
export interface DeleteResult {
  /** The version deleted, or the delete marker made. */
  versionId?: string;
  /** True when the delete made (or removed) a delete marker. */
  deleteMarker?: boolean;
}

/** One entry of a version listing: an object version or a delete marker. */
export interface VersionEntry {
  key: string;
  versionId: string;
  isLatest: boolean;
  lastModified: Date;
  deleteMarker: boolean;
  /** Stored (ciphertext) size and backend ETag; 0 and '' for a delete marker. */
  size: number;
  etag: string;
}

export interface ListVersionsOptions {
  prefix?: string;
  delimiter?: string;
  keyMarker?: string;
  versionIdMarker?: string;
  /** 1..1000, default 1000. */
  maxKeys?: number;
}

export interface ListVersionsResult {
  /** In S3's order: by key, then newest version first. */
  entries: VersionEntry[];
  commonPrefixes: string[];
  isTruncated: boolean;
  nextKeyMarker?: string;
  nextVersionIdMarker?: string;
}

export interface ListOptions {
  prefix?: string;
  delimiter?: string;
  /** Exclusive: list keys strictly after this one. */
  startAfter?: string;
  /** Opaque token from a previous ListResult. */
  continuationToken?: string;
  /** 1..1000, default 1000. */
  maxKeys?: number;
  /**
   * Also return each object's backend user metadata (`meta`), where the backend can do so in the listing itself
   * (fs: always; s3: MinIO's listing extension). `meta` undefined on an object = not known, HEAD it.
   */
  withMeta?: boolean;
}

export interface ListResult {
  /**
   * `meta` only with ListOptions.withMeta: the user metadata as in ObjectInfo.meta (`{}` when the object has
   * none), or undefined when this backend could not say.
   */
  objects: (Omit<ObjectInfo, 'meta'> & { meta?: Record<string, string> })[];
  commonPrefixes: string[];
  isTruncated: boolean;
  nextContinuationToken?: string;
}

export interface PutOptions {
  /** Exact number of bytes the body will yield. */
  size: number;
  meta?: Record<string, string>;
  /** Conditional write: succeed only if the current object's ETag equals this. */
  ifMatch?: string;
  /** Conditional write: '*' = succeed only if no object exists at the key. */
  ifNoneMatch?: '*';
}

/**
 * A PUT whose body another writer (the native data plane) writes to `fd`: exactly the size it was opened with, else
 * `close()` before the last byte, and the store commits nothing. The socket is the caller's to hold while fd is used.
 */
export interface RawPut {
  readonly fd: number;
  readonly socket: net.Socket;
  /** True once the store answered (a refusal can come while the body is still being written). */
  answered(): boolean;
  /** The store's answer as putObject's result; throws putObject's errors (PreconditionFailed, ...). */
  result(): Promise<{ etag: string; versionId?: string }>;
  close(): void;
}

export interface Backend {
  readonly kind: 'fs' | 's3';
  listBuckets(): Promise<{ name: string; creationDate: Date }[]>;
  createBucket(bucket: string): Promise<void>;
  /** Resolves true/false; never throws NoSuchBucket. */
  bucketExists(bucket: string): Promise<boolean>;
  deleteBucket(bucket: string): Promise<void>;

  /** `versionId`: the version the write made, on a backend that keeps versions (see ObjectInfo.versionId). */
  putObject(bucket: string, key: string, body: Readable | Buffer, opts: PutOptions): Promise<{ etag: string; versionId?: string }>;
  /**
   * Range is inclusive [start, end]; end may exceed the size (clamped). `versionId` reads that version (backends
   * that keep versions: NoSuchVersion when absent, MethodNotAllowed for a delete marker).
   */
  getObject(bucket: string, key: string, range?: { start: number; end?: number }, versionId?: string): Promise<{ body: Readable; info: ObjectInfo }>;
  /** Convenience: whole small object as a Buffer. */
  getBuffer(bucket: string, key: string): Promise<{ data: Buffer; info: ObjectInfo }>;
  /** null when absent (never throws NoSuchKey). `versionId` as getObject's (a delete marker: MethodNotAllowed). */
  headObject(bucket: string, key: string, versionId?: string): Promise<ObjectInfo | null>;
  /**
   * Idempotent: deleting an absent key succeeds. On a versioned bucket without `versionId` the backend makes a
   * delete marker; with it, that version goes for good.
   */
  deleteObject(bucket: string, key: string, versionId?: string): Promise<DeleteResult | void>;
  /**
   * Server-side copy, bytes never pass through the gateway. Metadata replaced by `meta`.
   * `ifMatch` is a condition on the SOURCE (x-amz-copy-source-if-match): PreconditionFailed if its ETag differs.
   */
  copyObject(
    srcBucket: string,
    srcKey: string,
    dstBucket: string,
    dstKey: string,
    opts: { meta: Record<string, string>; ifMatch?: string; srcVersionId?: string },
  ): Promise<{ etag: string; versionId?: string }>;
  listObjects(bucket: string, opts: ListOptions): Promise<ListResult>;

  createMultipart(bucket: string, key: string, meta: Record<string, string>): Promise<string>;
  uploadPart(bucket: string, key: string, uploadId: string, partNumber: number, body: Readable | Buffer, size: number): Promise<{ etag: string }>;
  /**
   * `cond` makes the commit conditional on the object at the key, as PutOptions' ifMatch/ifNoneMatch; a failed
   * condition is PreconditionFailed and leaves the upload open.
   */
  completeMultipart(
    bucket: string,
    key: string,
    uploadId: string,
    parts: { partNumber: number; etag: string }[],
    cond?: { ifMatch?: string; ifNoneMatch?: '*' },
  ): Promise<{ etag: string; versionId?: string }>;
  abortMultipart(bucket: string, key: string, uploadId: string): Promise<void>;
  /** Uploads still open in the backend (for gc). */
  listMultipartUploads(bucket: string): Promise<{ key: string; uploadId: string; initiated: Date }[]>;
  /**
   * The backend's ListParts: which attempt of each part number is the part now (its ETag). The gateway keeps a
   * record per attempt and cannot tell from their times which one the backend kept where the backend's times are
   * whole seconds (versitygw, S3). Optional: without it (fs, whose times are finer) the newest record is taken.
   */
  listParts?(bucket: string, key: string, uploadId: string): Promise<{ partNumber: number; etag: string }[]>;

  /*
   * Bucket versioning: backends that keep object versions have these (s3: the backend's own versioning; fs: the
   * gateway's layout, src/backend/fs-versions.ts). A backend without them makes the gateway answer
   * PutBucketVersioning NotImplemented, every object its one `null` version.
   */
  /** The bucket's versioning state; undefined when never enabled. */
  getBucketVersioning?(bucket: string): Promise<VersioningStatus | undefined>;
  putBucketVersioning?(bucket: string, status: VersioningStatus): Promise<void>;
  /** ListObjectVersions as S3 answers it (keys decoded). */
  listObjectVersions?(bucket: string, opts: ListVersionsOptions): Promise<ListVersionsResult>;

  /**
   * Optional (s3 on plain http, a store known to drop a body cut short): a PUT whose body the caller writes to a
   * socket itself. `canRawPut()` says whether `rawPut` would open one now; `first` goes right after the head.
   */
  canRawPut?(): boolean;
  rawPut?(bucket: string, key: string, opts: PutOptions, first: Buffer): Promise<RawPut | null>;
  /**
   * UploadPart on a socket of its own, as rawPut (same `canRawPut()`): exactly `size` body bytes, `first` right
   * after the head; `result()` gives the part's ETag or uploadPart's errors (NoSuchUpload, ...).
   */
  rawUploadPart?(bucket: string, key: string, uploadId: string, partNumber: number, size: number, first: Buffer): Promise<RawPut | null>;

  close(): Promise<void>;
}
