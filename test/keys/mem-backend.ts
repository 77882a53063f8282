/** Tiny in-memory Backend for key tests: buckets, put (with ifMatch / ifNoneMatch), get, head, delete, list. */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Backend, ListOptions, ListResult, ObjectInfo, PutOptions } from '../../src/backend/types.ts';
import { S3Error } from '../../src/errors.ts';

interface Obj {
  data: Buffer;
  etag: string;
  lastModified: Date;
  meta: Record<string, string>;
}

export class MemBackend implements Backend {
  readonly kind = 'fs' as const;
  readonly buckets = new Map<string, { created: Date; objects: Map<string, Obj> }>();
  private counter = 0;
  /** Optional artificial latency (ms) per call, to widen race windows. */
  latencyMs = 0;

  private async tick(): Promise<void> {
    await new Promise((r) => setTimeout(r, this.latencyMs ? Math.random() * this.latencyMs : 0));
  }

  private b(bucket: string) {
    const b = this.buckets.get(bucket);
    if (!b) throw new S3Error('NoSuchBucket');
    return b;
  }

  async listBuckets() {
    return [...this.buckets].map(([name, b]) => ({ name, creationDate: b.created }));
  }
  async createBucket(bucket: string) {
    if (this.buckets.has(bucket)) throw new S3Error('BucketAlreadyOwnedByYou');
    this.buckets.set(bucket, { created: new Date(), objects: new Map() });
  }
  async bucketExists(bucket: string) {
    return this.buckets.has(bucket);
  }
  async deleteBucket(bucket: string) {
    if (this.b(bucket).objects.size) throw new S3Error('BucketNotEmpty');
    this.buckets.delete(bucket);
  }

  async putObject(bucket: string, key: string, body: Readable | Buffer, opts: PutOptions) {
    await this.tick();
    const data = Buffer.isBuffer(body) ? Buffer.from(body) : Buffer.concat(await (body as Readable).toArray());
    const objs = this.b(bucket).objects;
    const cur = objs.get(key);
    if (opts.ifNoneMatch === '*' && cur) throw new S3Error('PreconditionFailed');
    if (opts.ifMatch !== undefined && (!cur || cur.etag !== opts.ifMatch)) throw new S3Error('PreconditionFailed');
    const etag = createHash('md5').update(data).update(String(++this.counter)).digest('hex');
    objs.set(key, { data, etag, lastModified: new Date(), meta: { ...(opts.meta ?? {}) } });
    return { etag };
  }

  private info(key: string, o: Obj): ObjectInfo {
    return { key, size: o.data.length, etag: o.etag, lastModified: o.lastModified, meta: { ...o.meta } };
  }

  async getBuffer(bucket: string, key: string) {
    await this.tick();
    const o = this.b(bucket).objects.get(key);
    if (!o) throw new S3Error('NoSuchKey');
    return { data: Buffer.from(o.data), info: this.info(key, o) };
  }
  async getObject(bucket: string, key: string, range?: { start: number; end?: number }) {
    const { data, info } = await this.getBuffer(bucket, key);
    const slice = range ? data.subarray(range.start, range.end === undefined ? undefined : range.end + 1) : data;
    return { body: Readable.from([slice]), info };
  }
  async headObject(bucket: string, key: string) {
    await this.tick();
    const o = this.b(bucket).objects.get(key);
    return o ? this.info(key, o) : null;
  }
  async deleteObject(bucket: string, key: string) {
    await this.tick();
    this.b(bucket).objects.delete(key);
  }
  async listObjects(bucket: string, opts: ListOptions): Promise<ListResult> {
    await this.tick();
    const max = opts.maxKeys ?? 1000;
    const after = opts.continuationToken ?? opts.startAfter ?? '';
    const keys = [...this.b(bucket).objects.keys()].filter((k) => k.startsWith(opts.prefix ?? '') && k > after).sort();
    const page = keys.slice(0, max);
    const objs = this.b(bucket).objects;
    return {
      objects: page.map((k) => {
        const { meta: _m, ...rest } = this.info(k, objs.get(k)!);
        return rest;
      }),
      commonPrefixes: [],
      isTruncated: keys.length > max,
      nextContinuationToken: keys.length > max ? page[page.length - 1] : undefined,
    };
  }

  /** Test helpers: raw access to stored bytes. */
  raw(bucket: string, key: string): Buffer | undefined {
    return this.buckets.get(bucket)?.objects.get(key)?.data;
  }
  setRaw(bucket: string, key: string, data: Buffer): void {
    this.b(bucket).objects.set(key, { data, etag: createHash('md5').update(data).update(String(++this.counter)).digest('hex'), lastModified: new Date(), meta: {} });
  }

  async copyObject(): Promise<{ etag: string }> {
    throw new S3Error('NotImplemented');
  }
  async createMultipart(): Promise<string> {
    throw new S3Error('NotImplemented');
  }
  async uploadPart(): Promise<{ etag: string }> {
    throw new S3Error('NotImplemented');
  }
  async completeMultipart(): Promise<{ etag: string }> {
    throw new S3Error('NotImplemented');
  }
  async abortMultipart(): Promise<void> {
    throw new S3Error('NotImplemented');
  }
  async listMultipartUploads() {
    return [];
  }
  async close() {}
}
