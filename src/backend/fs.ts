/**
 * Embedded filesystem backend.
 *
 * Layout under `dataDir`:
 *   objects/<bucket>/.bucket.json         bucket marker (creation date); the bucket exists iff its directory does
 *   objects/<bucket>/<hex>.o              an object whose key's UTF-8 bytes, hex-encoded, are <hex>
 *   objects/<bucket>/<seg>.d/.../<hex>.o  long keys: the hex string is cut into 200-char segments, all but the
 *                                         last become directories (`.d`), the last is the file (`.o`)
 *   uploads/<uploadId>/init.json          open multipart upload; parts are `p<00001>` files in the same dir
 *   locks/<sha256>                        per-key cross-process lock files (open 'wx'), held only around commit
 *   tmp/                                  temp files (same filesystem, renamed into place)
 *   versions/<bucket>/...                 non-current versions and delete markers (fs-versions.ts)
 *
 * Hex of UTF-8 bytes sorts exactly like the bytes, so a sorted depth-first walk yields keys in S3 order and
 * prefix / startAfter bounds prune whole directories. No key can escape the data dir: every path component is
 * `[0-9a-f]{1,200}\.[od]`. `a` and `a/b` are two different files (`61.o`, `612f62.o`).
 *
 * Object file format: 'LCO1' | u32be headerLen | header JSON | data. One rename commits data + metadata.
 */
import { checkBucketName as validateBucketName } from '../s3/names.ts';
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { S3Error } from '../errors.ts';
import type { Backend, DeleteResult, ListOptions, ListResult, ListVersionsOptions, ListVersionsResult, ObjectInfo, PutOptions, VersioningStatus } from './types.ts';
import { FsVersions, NULL_VID, type Stamp } from './fs-versions.ts';
import { cleanupFailed, encodeHeader, ETAG_OFFSET, ETAG_PLACEHOLDER, hexToRel, isErrno, keyHex, readHeader, walk, wrap, type StoredHeader } from './fs-format.ts';

const MIN_PART_SIZE = 5 * 1024 * 1024;
const LOCK_STALE_MS = 15_000;
const LOCK_TIMEOUT_MS = 60_000;
const UPLOAD_ID_RE = /^[0-9a-f]{32}$/;

export interface FsBackendOptions {
  dataDir: string;
  /** Enforce S3's 5 MiB minimum for non-final parts (default true, like S3/MinIO). */
  enforceMinPartSize?: boolean;
}

// ---------------------------------------------------------------------------------------------- helpers

export { validateBucketName };

const stripQuotes = (e: string) => e.replace(/^W\//, '').replace(/^"+|"+$/g, '').toLowerCase();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `versionId`: the file's own, or `null` for a file older than the bucket's versioning (`versioned`). */
function toInfo(h: StoredHeader, versioned = false): ObjectInfo {
  const info: ObjectInfo = { key: h.key, size: h.size, etag: h.etag, lastModified: new Date(h.lastModified), meta: { ...h.meta } };
  const versionId = h.vid ?? (versioned ? NULL_VID : undefined);
  if (versionId !== undefined) info.versionId = versionId;
  return info;
}

function normMeta(meta: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta ?? {})) out[k.toLowerCase()] = String(v);
  return out;
}

// ---------------------------------------------------------------------------------------------- backend

export class FsBackend implements Backend {
  readonly kind = 'fs' as const;
  readonly dataDir: string;
  private readonly objectsDir: string;
  private readonly uploadsDir: string;
  private readonly locksDir: string;
  private readonly tmpDir: string;
  private readonly enforceMinPartSize: boolean;
  private readonly localLocks = new Map<string, Promise<void>>();
  private ready: Promise<void> | null = null;
  private readonly versions: FsVersions;

  constructor(opts: FsBackendOptions) {
    this.dataDir = path.resolve(opts.dataDir);
    this.objectsDir = path.join(this.dataDir, 'objects');
    this.uploadsDir = path.join(this.dataDir, 'uploads');
    this.locksDir = path.join(this.dataDir, 'locks');
    this.tmpDir = path.join(this.dataDir, 'tmp');
    this.enforceMinPartSize = opts.enforceMinPartSize ?? true;
    this.versions = new FsVersions({
      objectsDir: this.objectsDir,
      versionsDir: path.join(this.dataDir, 'versions'),
      tmpDir: this.tmpDir,
      statObject: (p) => this.statObject(p),
    });
  }

  private init(): Promise<void> {
    this.ready ??= (async () => {
      for (const d of [this.objectsDir, this.uploadsDir, this.locksDir, this.tmpDir]) await fsp.mkdir(d, { recursive: true });
      void this.sweepTmp();
    })();
    return this.ready;
  }

  /** Best-effort removal of temp files left by a crashed process (older than one hour). */
  private async sweepTmp(): Promise<void> {
    try {
      const cutoff = Date.now() - 3600_000;
      for (const name of await fsp.readdir(this.tmpDir)) {
        const p = path.join(this.tmpDir, name);
        const st = await fsp.lstat(p).catch(() => null);
        if (st && st.mtimeMs < cutoff) await fsp.rm(p, { recursive: true, force: true }).catch(cleanupFailed);
      }
    } catch {
      /* ignore */
    }
  }

  private bucketDir(bucket: string): string {
    validateBucketName(bucket);
    return path.join(this.objectsDir, bucket);
  }

  private objectPath(bucket: string, key: string): string {
    return path.join(this.bucketDir(bucket), hexToRel(keyHex(key)));
  }

  private tmpPath(): string {
    return path.join(this.tmpDir, `${Date.now()}-${randomBytes(8).toString('hex')}.tmp`);
  }

  private async requireBucket(bucket: string): Promise<string> {
    await this.init();
    const dir = this.bucketDir(bucket);
    try {
      const st = await fsp.stat(dir);
      if (!st.isDirectory()) throw new S3Error('NoSuchBucket', undefined, { BucketName: bucket });
    } catch (e) {
      if (isErrno(e, 'ENOENT', 'ENOTDIR')) throw new S3Error('NoSuchBucket', undefined, { BucketName: bucket });
      wrap(e);
    }
    return dir;
  }

  // ------------------------------------------------------------------------------------------ locking

  /** Exclusive per-(bucket,key) lock, in-process (promise chain) and cross-process (lock file 'wx'). */
  private async withLock<T>(bucket: string, key: string, fn: () => Promise<T>): Promise<T> {
    const name = createHash('sha256').update(bucket).update('\0').update(key).digest('hex');
    const prev = this.localLocks.get(name) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const chain = prev.then(() => mine);
    this.localLocks.set(name, chain);
    await prev;
    try {
      const lockPath = path.join(this.locksDir, name);
      await this.acquireFileLock(lockPath);
      try {
        return await fn();
      } finally {
        await fsp.unlink(lockPath).catch(cleanupFailed);
      }
    } finally {
      release();
      if (this.localLocks.get(name) === chain) this.localLocks.delete(name);
    }
  }

  private async acquireFileLock(lockPath: string): Promise<void> {
    const deadline = Date.now() + LOCK_TIMEOUT_MS;
    let delay = 1;
    for (;;) {
      try {
        const fh = await fsp.open(lockPath, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, 0o600);
        await fh.writeFile(`${process.pid}\n`).finally(() => fh.close());
        return;
      } catch (e) {
        if (!isErrno(e, 'EEXIST')) wrap(e);
      }
      try {
        const st = await fsp.stat(lockPath);
        if (Date.now() - st.mtimeMs > LOCK_STALE_MS) {
          // Break a stale lock: move it aside first so two breakers cannot remove a fresh lock.
          const aside = `${lockPath}.stale-${randomBytes(6).toString('hex')}`;
          await fsp.rename(lockPath, aside).then(() => fsp.unlink(aside)).catch(cleanupFailed);
          continue;
        }
      } catch (e) {
        if (isErrno(e, 'ENOENT')) continue;
        wrap(e);
      }
      if (Date.now() > deadline) throw new S3Error('SlowDown', 'timed out waiting for an object lock');
      await sleep(delay + Math.random() * delay);
      delay = Math.min(delay * 2, 50);
    }
  }

  // ------------------------------------------------------------------------------------------ file I/O

  /**
   * Stream `body` into a new temp file in the object file format. Returns the temp path, etag, size.
   * The etag (md5 hex of the data) is patched into the header after streaming unless `etag` is given.
   */
  private async writeObjectFile(
    tmp: string,
    header: Omit<StoredHeader, 'etag'> & { etag?: string },
    body: AsyncIterable<Buffer> | Buffer,
    expectedSize: number | null,
  ): Promise<{ etag: string; size: number }> {
    const fh = await fsp.open(tmp, 'wx', 0o600);
    let ok = false;
    try {
      const hdr = encodeHeader({ ...header, etag: header.etag ?? ETAG_PLACEHOLDER });
      let pos = 0;
      await fh.write(hdr, 0, hdr.length, pos);
      pos += hdr.length;
      const md5 = createHash('md5');
      let size = 0;
      const writeChunk = async (chunk: Buffer) => {
        if (expectedSize !== null && size + chunk.length > expectedSize)
          throw new S3Error('InvalidRequest', 'Body is longer than the declared size.');
        md5.update(chunk);
        size += chunk.length;
        let off = 0;
        while (off < chunk.length) {
          const { bytesWritten } = await fh.write(chunk, off, chunk.length - off, pos);
          off += bytesWritten;
          pos += bytesWritten;
        }
      };
      if (Buffer.isBuffer(body)) await writeChunk(body);
      else for await (const c of body) await writeChunk(Buffer.isBuffer(c) ? c : Buffer.from(c));
      if (expectedSize !== null && size !== expectedSize) throw new S3Error('IncompleteBody');
      const etag = header.etag ?? md5.digest('hex');
      if (!header.etag) await fh.write(Buffer.from(etag, 'ascii'), 0, 32, ETAG_OFFSET);
      await fh.sync();
      ok = true;
      return { etag, size };
    } finally {
      await fh.close();
      if (!ok) await fsp.unlink(tmp).catch(cleanupFailed);
    }
  }

  /** Rename a temp file to `dest`, creating parent directories (retrying if a concurrent delete prunes them). */
  private async commit(tmp: string, dest: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await fsp.mkdir(path.dirname(dest), { recursive: true });
        await fsp.rename(tmp, dest);
        return;
      } catch (e) {
        if (isErrno(e, 'ENOENT') && attempt < 10) continue;
        if (isErrno(e, 'ENOENT')) throw new S3Error('NoSuchBucket');
        throw e;
      }
    }
  }

  private async statObject(p: string): Promise<StoredHeader | null> {
    let fh: FileHandle;
    try {
      fh = await fsp.open(p, 'r');
    } catch (e) {
      if (isErrno(e, 'ENOENT', 'ENOTDIR', 'EISDIR')) return null;
      wrap(e);
    }
    try {
      return (await readHeader(fh)).h;
    } finally {
      await fh.close();
    }
  }

  private checkConditions(cur: StoredHeader | null, opts: { ifMatch?: string; ifNoneMatch?: '*' }) {
    if (opts.ifNoneMatch === '*' && cur) throw new S3Error('PreconditionFailed');
    if (opts.ifMatch !== undefined) {
      if (!cur) throw new S3Error(opts.ifMatch === '*' ? 'PreconditionFailed' : 'NoSuchKey');
      if (opts.ifMatch !== '*' && stripQuotes(opts.ifMatch) !== cur.etag) throw new S3Error('PreconditionFailed');
    }
  }

  private async pruneEmptyDirs(from: string, stopAt: string): Promise<void> {
    let d = from;
    while (d.startsWith(stopAt + path.sep) && d !== stopAt) {
      try {
        await fsp.rmdir(d);
      } catch {
        return;
      }
      d = path.dirname(d);
    }
  }

  // ------------------------------------------------------------------------------------------ buckets

  async listBuckets(): Promise<{ name: string; creationDate: Date }[]> {
    await this.init();
    const names = (await fsp.readdir(this.objectsDir)).sort();
    const out: { name: string; creationDate: Date }[] = [];
    for (const name of names) {
      try {
        const raw = await fsp.readFile(path.join(this.objectsDir, name, '.bucket.json'), 'utf8');
        out.push({ name, creationDate: new Date((JSON.parse(raw) as { creationDate: string }).creationDate) });
      } catch {
        /* being created / deleted */
      }
    }
    return out;
  }

  async createBucket(bucket: string): Promise<void> {
    await this.init();
    const dir = this.bucketDir(bucket);
    const staging = path.join(this.tmpDir, `bucket-${randomBytes(8).toString('hex')}`);
    await fsp.mkdir(staging);
    try {
      await fsp.writeFile(path.join(staging, '.bucket.json'), JSON.stringify({ creationDate: new Date().toISOString() }));
      try {
        await fsp.rename(staging, dir); // atomic; fails if the bucket dir exists and is non-empty
      } catch (e) {
        if (isErrno(e, 'EEXIST', 'ENOTEMPTY', 'EISDIR', 'ENOTDIR'))
          throw new S3Error('BucketAlreadyOwnedByYou', undefined, { BucketName: bucket });
        wrap(e);
      }
    } finally {
      await fsp.rm(staging, { recursive: true, force: true }).catch(cleanupFailed);
    }
  }

  async bucketExists(bucket: string): Promise<boolean> {
    await this.init();
    try {
      validateBucketName(bucket);
    } catch {
      return false;
    }
    try {
      return (await fsp.stat(path.join(this.objectsDir, bucket))).isDirectory();
    } catch {
      return false;
    }
  }

  async deleteBucket(bucket: string): Promise<void> {
    const dir = await this.requireBucket(bucket);
    const entries = await fsp.readdir(dir);
    if (entries.some((e) => e !== '.bucket.json') || (await this.versions.hasVersions(bucket)))
      throw new S3Error('BucketNotEmpty', undefined, { BucketName: bucket });
    const trash = path.join(this.tmpDir, `trash-${randomBytes(8).toString('hex')}`);
    try {
      await fsp.rename(dir, trash);
    } catch (e) {
      if (isErrno(e, 'ENOENT')) throw new S3Error('NoSuchBucket', undefined, { BucketName: bucket });
      wrap(e);
    }
    // A put that raced in between readdir and rename lands in the trash: move it back and refuse.
    const after = await fsp.readdir(trash);
    if (after.some((e) => e !== '.bucket.json')) {
      // Not best effort: the trash holds an acknowledged write; if it cannot go back, say so (500, logged).
      await fsp.rename(trash, dir).catch(wrap);
      throw new S3Error('BucketNotEmpty', undefined, { BucketName: bucket });
    }
    await fsp.rm(trash, { recursive: true, force: true });
    await this.versions.dropBucket(bucket);
    for (const u of await this.listMultipartUploadsRaw()) {
      if (u.bucket === bucket) await fsp.rm(path.join(this.uploadsDir, u.uploadId), { recursive: true, force: true });
    }
  }

  // ------------------------------------------------------------------------------------------ objects

  async putObject(bucket: string, key: string, body: Readable | Buffer, opts: PutOptions): Promise<{ etag: string; versionId?: string }> {
    const tmp = this.tmpPath();
    try {
      await this.requireBucket(bucket);
      const dest = this.objectPath(bucket, key);
      const stamp = await this.versions.stamp(bucket);
      const { etag } = await this.writeObjectFile(
        tmp,
        { key, size: opts.size, lastModified: Date.now(), meta: normMeta(opts.meta), ...stamp },
        body,
        opts.size,
      );
      await this.withLock(bucket, key, async () => {
        if (opts.ifMatch !== undefined || opts.ifNoneMatch !== undefined) this.checkConditions(await this.statObject(dest), opts);
        await this.versions.commit(bucket, key, dest, stamp, () => this.commit(tmp, dest));
      });
      return { etag, versionId: stamp.vid };
    } catch (e) {
      await fsp.unlink(tmp).catch(cleanupFailed);
      if (!Buffer.isBuffer(body) && !body.destroyed) body.resume(); // drain so the producer is not stuck
      wrap(e);
    }
  }

  async getObject(
    bucket: string,
    key: string,
    range?: { start: number; end?: number },
    versionId?: string,
  ): Promise<{ body: Readable; info: ObjectInfo }> {
    await this.requireBucket(bucket);
    const fh = await this.openVersion(bucket, key, versionId);
    try {
      const { h, dataOffset } = await readHeader(fh);
      let start = 0;
      let end = h.size - 1;
      if (range) {
        if (!Number.isInteger(range.start) || range.start < 0 || range.start >= h.size) throw new S3Error('InvalidRange');
        start = range.start;
        if (range.end !== undefined) {
          if (range.end < start) throw new S3Error('InvalidRange');
          end = Math.min(range.end, h.size - 1);
        }
      }
      let body: Readable;
      if (end < start) {
        await fh.close();
        body = Readable.from([]);
      } else {
        body = fh.createReadStream({ start: dataOffset + start, end: dataOffset + end, autoClose: true, highWaterMark: 1 << 20 });
      }
      return { body, info: toInfo(h, h.vid === undefined && (await this.versions.state(bucket)) !== undefined) };
    } catch (e) {
      await fh.close().catch(cleanupFailed);
      wrap(e);
    }
  }

  async getBuffer(bucket: string, key: string): Promise<{ data: Buffer; info: ObjectInfo }> {
    const { body, info } = await this.getObject(bucket, key);
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c as Buffer);
    return { data: Buffer.concat(chunks), info };
  }

  async headObject(bucket: string, key: string, versionId?: string): Promise<ObjectInfo | null> {
    if (!(await this.bucketExists(bucket))) return null;
    const dest = this.objectPath(bucket, key);
    const file = versionId === undefined ? dest : await this.versions.fileOf(bucket, key, dest, versionId);
    const h = file === null ? null : await this.statObject(file);
    if (!h || (versionId !== undefined && (h.vid ?? NULL_VID) !== versionId)) return null; // raced with a delete
    // state() throws only when the bucket was removed after the stat above: the record just read is then answered
    // as it is (no version id of its own means the null version, or none), not as an error for a read that succeeded
    return toInfo(h, h.vid === undefined && (await this.versions.state(bucket).catch(() => undefined)) !== undefined);
  }

  /** The file of the current object, or of one version (NoSuchKey / NoSuchVersion; a marker: MethodNotAllowed). */
  private async openVersion(bucket: string, key: string, versionId?: string): Promise<FileHandle> {
    const dest = this.objectPath(bucket, key);
    const file = versionId === undefined ? dest : await this.versions.fileOf(bucket, key, dest, versionId);
    const absent = () =>
      versionId === undefined ? new S3Error('NoSuchKey', undefined, { Key: key }) : new S3Error('NoSuchVersion', undefined, { Key: key, VersionId: versionId });
    if (file === null) throw absent();
    try {
      return await fsp.open(file, 'r');
    } catch (e) {
      if (isErrno(e, 'ENOENT', 'ENOTDIR', 'EISDIR')) throw absent();
      wrap(e);
    }
  }

  async deleteObject(bucket: string, key: string, versionId?: string): Promise<DeleteResult | void> {
    const bdir = await this.requireBucket(bucket);
    const p = this.objectPath(bucket, key);
    const status = await this.versions.state(bucket);
    // Versioning never enabled: the one version is `null`; another id names nothing (deleted: nothing to do).
    if (status === undefined && versionId !== undefined && versionId !== NULL_VID) return;
    if (status !== undefined) {
      return this.withLock(bucket, key, async () => {
        const done = await this.versions.delete(bucket, key, p, status, versionId);
        await this.versions.prune(bucket, key);
        await this.pruneEmptyDirs(path.dirname(p), bdir);
        return done;
      });
    }
    await this.withLock(bucket, key, async () => {
      try {
        await fsp.unlink(p);
      } catch (e) {
        if (isErrno(e, 'ENOENT', 'ENOTDIR')) return;
        wrap(e);
      }
      await this.pruneEmptyDirs(path.dirname(p), bdir);
    });
  }

  async copyObject(
    srcBucket: string,
    srcKey: string,
    dstBucket: string,
    dstKey: string,
    opts: { meta: Record<string, string>; ifMatch?: string; srcVersionId?: string },
  ): Promise<{ etag: string; versionId?: string }> {
    await this.requireBucket(srcBucket);
    await this.requireBucket(dstBucket);
    const dest = this.objectPath(dstBucket, dstKey);
    const stamp = await this.versions.stamp(dstBucket);
    const fh = await this.openVersion(srcBucket, srcKey, opts.srcVersionId);
    const tmp = this.tmpPath();
    try {
      const { h, dataOffset } = await readHeader(fh);
      if (opts.ifMatch !== undefined && opts.ifMatch !== '*' && stripQuotes(opts.ifMatch) !== h.etag)
        throw new S3Error('PreconditionFailed');
      const stream =
        h.size > 0
          ? fh.createReadStream({ start: dataOffset, end: dataOffset + h.size - 1, autoClose: false, highWaterMark: 1 << 20 })
          : Readable.from([]);
      const { etag } = await this.writeObjectFile(
        tmp,
        { key: dstKey, size: h.size, lastModified: Date.now(), meta: normMeta(opts.meta), ...stamp },
        stream,
        h.size,
      );
      await this.withLock(dstBucket, dstKey, () => this.versions.commit(dstBucket, dstKey, dest, stamp, () => this.commit(tmp, dest)));
      return { etag, versionId: stamp.vid };
    } catch (e) {
      await fsp.unlink(tmp).catch(cleanupFailed);
      wrap(e);
    } finally {
      await fh.close().catch(cleanupFailed);
    }
  }

  async listObjects(bucket: string, opts: ListOptions): Promise<ListResult> {
    const bdir = await this.requireBucket(bucket);
    const prefix = opts.prefix ?? '';
    const delimiter = opts.delimiter ?? '';
    const maxKeys = Math.max(0, Math.min(1000, opts.maxKeys ?? 1000));
    const prefixHex = Buffer.from(prefix, 'utf8').toString('hex');
    let afterHex: string | null = null;
    const skip = { hex: null as string | null };
    if (opts.continuationToken) {
      let tok: { a: string; c?: number };
      try {
        tok = JSON.parse(Buffer.from(opts.continuationToken, 'base64url').toString('utf8')) as typeof tok;
        if (typeof tok.a !== 'string') throw new Error('bad token');
      } catch {
        throw new S3Error('InvalidArgument', 'The continuation token provided is incorrect.');
      }
      afterHex = Buffer.from(tok.a, 'utf8').toString('hex');
      if (tok.c) skip.hex = afterHex;
    } else if (opts.startAfter) {
      afterHex = Buffer.from(opts.startAfter, 'utf8').toString('hex');
    }
    const result: ListResult = { objects: [], commonPrefixes: [], isTruncated: false };
    if (maxKeys === 0) return result;
    let count = 0;
    let last: { a: string; c?: number } | null = null;
    for await (const { hex, file } of walk(bdir, '', prefixHex, afterHex, skip)) {
      const key = Buffer.from(hex, 'hex').toString('utf8');
      if (delimiter) {
        const i = key.indexOf(delimiter, prefix.length);
        if (i >= 0) {
          if (count >= maxKeys) {
            result.isTruncated = true;
            break;
          }
          const cp = key.slice(0, i + delimiter.length);
          result.commonPrefixes.push(cp);
          count++;
          skip.hex = Buffer.from(cp, 'utf8').toString('hex');
          last = { a: cp, c: 1 };
          continue;
        }
      }
      const h = await this.statObject(file);
      if (!h) continue; // deleted meanwhile
      if (count >= maxKeys) {
        result.isTruncated = true;
        break;
      }
      const o: ListResult['objects'][number] = { key: h.key, size: h.size, etag: h.etag, lastModified: new Date(h.lastModified) };
      if (opts.withMeta) o.meta = { ...h.meta }; // the header is read for the listing anyway: free
      result.objects.push(o);
      count++;
      last = { a: key };
    }
    if (result.isTruncated && last) result.nextContinuationToken = Buffer.from(JSON.stringify(last)).toString('base64url');
    return result;
  }

  // ------------------------------------------------------------------------------------------ multipart

  private uploadDir(uploadId: string): string {
    if (typeof uploadId !== 'string' || !UPLOAD_ID_RE.test(uploadId)) throw new S3Error('NoSuchUpload');
    return path.join(this.uploadsDir, uploadId);
  }

  private async readUpload(bucket: string, key: string, uploadId: string) {
    const dir = this.uploadDir(uploadId);
    let init: { bucket: string; key: string; meta: Record<string, string>; initiated: number };
    try {
      init = JSON.parse(await fsp.readFile(path.join(dir, 'init.json'), 'utf8')) as typeof init;
    } catch (e) {
      if (isErrno(e, 'ENOENT', 'ENOTDIR')) throw new S3Error('NoSuchUpload', undefined, { UploadId: uploadId });
      wrap(e);
    }
    if (init.bucket !== bucket || init.key !== key) throw new S3Error('NoSuchUpload', undefined, { UploadId: uploadId });
    return { dir, init };
  }

  async createMultipart(bucket: string, key: string, meta: Record<string, string>): Promise<string> {
    await this.requireBucket(bucket);
    keyHex(key);
    const uploadId = randomBytes(16).toString('hex');
    const dir = path.join(this.uploadsDir, uploadId);
    await fsp.mkdir(dir);
    const tmp = path.join(dir, 'init.json.tmp');
    await fsp.writeFile(tmp, JSON.stringify({ bucket, key, meta: normMeta(meta), initiated: Date.now() }));
    await fsp.rename(tmp, path.join(dir, 'init.json'));
    return uploadId;
  }

  async uploadPart(
    bucket: string,
    key: string,
    uploadId: string,
    partNumber: number,
    body: Readable | Buffer,
    size: number,
  ): Promise<{ etag: string }> {
    const drain = () => {
      if (!Buffer.isBuffer(body) && !body.destroyed) body.resume();
    };
    try {
      if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10000)
        throw new S3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive.');
      const { dir } = await this.readUpload(bucket, key, uploadId);
      const tmp = path.join(dir, `tmp-${randomBytes(8).toString('hex')}`);
      const { etag } = await this.writeObjectFile(tmp, { key, size, lastModified: Date.now(), meta: {} }, body, size);
      try {
        await fsp.rename(tmp, path.join(dir, partName(partNumber)));
      } catch (e) {
        await fsp.unlink(tmp).catch(cleanupFailed);
        if (isErrno(e, 'ENOENT')) throw new S3Error('NoSuchUpload', undefined, { UploadId: uploadId });
        throw e;
      }
      return { etag };
    } catch (e) {
      drain();
      wrap(e);
    }
  }

  async completeMultipart(
    bucket: string,
    key: string,
    uploadId: string,
    parts: { partNumber: number; etag: string }[],
    cond: { ifMatch?: string; ifNoneMatch?: '*' } = {},
  ): Promise<{ etag: string; versionId?: string }> {
    await this.requireBucket(bucket);
    const { dir, init } = await this.readUpload(bucket, key, uploadId);
    if (!parts.length) throw new S3Error('MalformedXML', 'You must specify at least one part.');
    for (let i = 1; i < parts.length; i++)
      if (parts[i].partNumber <= parts[i - 1].partNumber) throw new S3Error('InvalidPartOrder');
    const opened: { fh: FileHandle; h: StoredHeader; dataOffset: number }[] = [];
    const tmp = this.tmpPath();
    try {
      for (const p of parts) {
        let fh: FileHandle;
        try {
          fh = await fsp.open(path.join(dir, partName(p.partNumber)), 'r');
        } catch (e) {
          if (isErrno(e, 'ENOENT')) throw new S3Error('InvalidPart', undefined, { PartNumber: String(p.partNumber) });
          throw e;
        }
        const { h, dataOffset } = await readHeader(fh).catch(async (e) => {
          await fh.close();
          throw e;
        });
        opened.push({ fh, h, dataOffset });
        if (stripQuotes(p.etag) !== h.etag) throw new S3Error('InvalidPart', undefined, { PartNumber: String(p.partNumber) });
      }
      if (this.enforceMinPartSize)
        for (let i = 0; i < opened.length - 1; i++)
          if (opened[i].h.size < MIN_PART_SIZE) throw new S3Error('EntityTooSmall', undefined, { PartNumber: String(parts[i].partNumber) });
      const etag =
        createHash('md5')
          .update(Buffer.concat(opened.map((o) => Buffer.from(o.h.etag, 'hex'))))
          .digest('hex') + `-${opened.length}`;
      const size = opened.reduce((s, o) => s + o.h.size, 0);
      async function* concat() {
        for (const o of opened) {
          if (o.h.size === 0) continue;
          const s = o.fh.createReadStream({ start: o.dataOffset, end: o.dataOffset + o.h.size - 1, autoClose: false, highWaterMark: 1 << 20 });
          for await (const c of s) yield c as Buffer;
        }
      }
      const stamp: Stamp = await this.versions.stamp(bucket);
      await this.writeObjectFile(tmp, { etag, key, size, lastModified: Date.now(), meta: init.meta, ...stamp }, concat(), size);
      const dest = this.objectPath(bucket, key);
      await this.withLock(bucket, key, async () => {
        // The condition first: a failed one leaves the upload open, as S3 does.
        if (cond.ifMatch !== undefined || cond.ifNoneMatch !== undefined) this.checkConditions(await this.statObject(dest), cond);
        // Claim the upload (a concurrent complete/abort now sees NoSuchUpload), then commit.
        try {
          await fsp.rename(path.join(dir, 'init.json'), path.join(dir, 'completing.json'));
        } catch (e) {
          if (isErrno(e, 'ENOENT')) throw new S3Error('NoSuchUpload', undefined, { UploadId: uploadId });
          throw e;
        }
        await this.versions.commit(bucket, key, dest, stamp, () => this.commit(tmp, dest));
      });
      await fsp.rm(dir, { recursive: true, force: true });
      return { etag, versionId: stamp.vid };
    } catch (e) {
      await fsp.unlink(tmp).catch(cleanupFailed);
      return wrap(e);
    } finally {
      for (const o of opened) await o.fh.close().catch(cleanupFailed);
    }
  }

  async abortMultipart(bucket: string, key: string, uploadId: string): Promise<void> {
    const { dir } = await this.readUpload(bucket, key, uploadId);
    const trash = path.join(this.tmpDir, `abort-${randomBytes(8).toString('hex')}`);
    try {
      await fsp.rename(dir, trash);
    } catch (e) {
      if (isErrno(e, 'ENOENT')) throw new S3Error('NoSuchUpload', undefined, { UploadId: uploadId });
      wrap(e);
    }
    await fsp.rm(trash, { recursive: true, force: true });
  }

  private async listMultipartUploadsRaw() {
    await this.init();
    const out: { bucket: string; key: string; uploadId: string; initiated: Date }[] = [];
    for (const id of await fsp.readdir(this.uploadsDir)) {
      if (!UPLOAD_ID_RE.test(id)) continue;
      try {
        const init = JSON.parse(await fsp.readFile(path.join(this.uploadsDir, id, 'init.json'), 'utf8')) as { bucket: string; key: string; initiated: number };
        out.push({ bucket: init.bucket, key: init.key, uploadId: id, initiated: new Date(init.initiated) });
      } catch {
        /* completing / aborted meanwhile */
      }
    }
    return out;
  }

  async listMultipartUploads(bucket: string): Promise<{ key: string; uploadId: string; initiated: Date }[]> {
    await this.requireBucket(bucket);
    return (await this.listMultipartUploadsRaw())
      .filter((u) => u.bucket === bucket)
      .sort((a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)) || a.initiated.getTime() - b.initiated.getTime())
      .map(({ key, uploadId, initiated }) => ({ key, uploadId, initiated }));
  }

  // ------------------------------------------------------------------------------------------ versioning (fs-versions.ts)

  async getBucketVersioning(bucket: string): Promise<VersioningStatus | undefined> {
    await this.requireBucket(bucket);
    return this.versions.state(bucket);
  }

  async putBucketVersioning(bucket: string, status: VersioningStatus): Promise<void> {
    await this.requireBucket(bucket);
    await this.versions.setState(bucket, status);
  }

  async listObjectVersions(bucket: string, opts: ListVersionsOptions): Promise<ListVersionsResult> {
    await this.requireBucket(bucket);
    return this.versions.list(bucket, opts);
  }

  async close(): Promise<void> {
    /* nothing held open between calls */
  }
}

const partName = (n: number) => `p${String(n).padStart(5, '0')}`;

