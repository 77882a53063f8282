import type { ListResult } from '../backend/types.ts';
import { S3Error } from '../errors.ts';
import { plaintextSize } from '../engine/index.ts';
import * as xml from '../s3/xml.ts';
import type { Gateway } from './gateway.ts';
import type { S3Request } from './request.ts';
import { checkBucketName } from './request.ts';
import { sendXml } from './respond.ts';
import { quoteEtag } from '../s3/etags.ts';
import { userActor } from '../auth/tenants.ts';

export async function listBuckets(g: Gateway, r: S3Request): Promise<void> {
  const all = await g.backend.listBuckets();
  const buckets = all.filter((b) => b.name !== g.metaBucket && g.users.canAccess(r.user, b.name));
  sendXml(r.res, 200, xml.listAllMyBucketsResult(buckets, { id: r.user.accessKey, displayName: r.user.accessKey }));
}

export async function createBucket(g: Gateway, r: S3Request): Promise<void> {
  checkBucketName(r.bucket);
  if (r.bucket === g.metaBucket) throw new S3Error('BucketAlreadyExists', undefined, { BucketName: r.bucket });
  const body = await g.readSmallBody(r, 64 * 1024);
  if (body.length > 0) {
    const cfg = xml.parseCreateBucketConfiguration(body.toString('utf8'));
    if (cfg.locationConstraint && cfg.locationConstraint !== g.region) {
      throw new S3Error('InvalidLocationConstraint');
    }
  }
  // A bucket no tenant owns yet, created by a tenant's user: refused before anything is made if it is another's
  const tenant = r.user.tenant !== undefined ? g.users.tenants.get(r.user.tenant) : undefined;
  if (tenant) {
    const owner = g.users.tenants.ownerOf(r.bucket);
    if (owner !== undefined && owner !== tenant.name) throw new S3Error('AccessDenied');
  }
  await g.backend.createBucket(r.bucket);
  if (tenant) {
    // It belongs to the tenant on every gateway (the registry records it) and its dataset is rooted in the
    // tenant's CMK from the first byte: the record is made now, not on the first write.
    await g.keys.createDataset(r.bucket, { cmk: tenant.cmk, actor: userActor(r.user), tenant: tenant.name });
  }
  r.res.statusCode = 200;
  r.res.setHeader('Location', `/${r.bucket}`);
  r.res.setHeader('Content-Length', 0);
  r.res.end();
}

export async function headBucket(g: Gateway, r: S3Request): Promise<void> {
  checkBucketName(r.bucket);
  if (!(await g.backend.bucketExists(r.bucket))) throw new S3Error('NoSuchBucket', undefined, { BucketName: r.bucket });
  r.res.statusCode = 200;
  r.res.setHeader('x-amz-bucket-region', g.region);
  r.res.end();
}

export async function deleteBucket(g: Gateway, r: S3Request): Promise<void> {
  checkBucketName(r.bucket);
  await g.backend.deleteBucket(r.bucket);
  r.res.statusCode = 204;
  r.res.end();
}

export async function getBucketLocation(g: Gateway, r: S3Request): Promise<void> {
  await headBucketExists(g, r.bucket);
  sendXml(r.res, 200, xml.locationConstraint(g.region === 'us-east-1' ? '' : g.region));
}

async function headBucketExists(g: Gateway, bucket: string) {
  checkBucketName(bucket);
  if (!(await g.backend.bucketExists(bucket))) throw new S3Error('NoSuchBucket', undefined, { BucketName: bucket });
}

function maxKeysOf(r: S3Request): number {
  const v = r.query.get('max-keys');
  if (v === null) return 1000;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw new S3Error('InvalidArgument', 'Provided max-keys not an integer or within integer range');
  return Math.min(n, 1000);
}

/** Stored size -> plaintext size; objects that did not come through lakecrypt keep their stored size. */
function sizeOf(stored: number): number {
  try {
    return plaintextSize(stored);
  } catch {
    return stored;
  }
}

/**
 * The ETags a listing shows, the same as HEAD and GET show (ObjectStore.clientEtag). Backends that list user
 * metadata (fs, MinIO) answer in the listing itself; otherwise one HEAD per object.
 */
async function listedEtags(g: Gateway, bucket: string, objects: ListResult['objects']): Promise<string[]> {
  const out = new Array<string>(objects.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < objects.length; i = next++) {
      const o = objects[i];
      let meta = o.meta;
      if (meta === undefined) meta = (await g.backend.headObject(bucket, o.key))?.meta ?? {};
      out[i] = await g.store.clientEtag(bucket, o.key, { etag: o.etag, meta });
    }
  };
  await Promise.all(Array.from({ length: Math.min(16, objects.length) }, worker));
  return out;
}

export async function listObjects(g: Gateway, r: S3Request, v2: boolean): Promise<void> {
  await headBucketExists(g, r.bucket);
  const encodingType = r.query.get('encoding-type');
  if (encodingType !== null && encodingType !== 'url') throw new S3Error('InvalidArgument', 'Invalid Encoding Method specified in Request');
  const prefix = r.query.get('prefix') ?? '';
  const delimiter = r.query.get('delimiter') ?? '';
  const maxKeys = maxKeysOf(r);
  const startAfter = v2 ? (r.query.get('start-after') ?? '') : (r.query.get('marker') ?? '');
  const token = v2 ? (r.query.get('continuation-token') ?? undefined) : undefined;
  if (v2 && token !== undefined && token === '') throw new S3Error('InvalidArgument', 'The continuation token provided is incorrect');
  const page =
    maxKeys === 0
      ? { objects: [], commonPrefixes: [], isTruncated: false, nextContinuationToken: undefined }
      : await g.backend.listObjects(r.bucket, {
          prefix: prefix || undefined,
          delimiter: delimiter || undefined,
          startAfter: startAfter || undefined,
          continuationToken: token,
          maxKeys,
          withMeta: true,
        });
  const owner = { id: r.user.accessKey, displayName: r.user.accessKey };
  const fetchOwner = !v2 || r.query.get('fetch-owner') === 'true';
  const etags = await listedEtags(g, r.bucket, page.objects);
  const contents = page.objects.map((o, i) => ({
    key: o.key,
    size: sizeOf(o.size),
    etag: quoteEtag(etags[i]),
    lastModified: o.lastModified,
    owner: fetchOwner ? owner : undefined,
  }));
  const common = page.commonPrefixes;
  const base = {
    bucket: r.bucket,
    prefix,
    delimiter: delimiter || undefined,
    maxKeys,
    isTruncated: page.isTruncated,
    encodingType: encodingType === 'url' ? ('url' as const) : undefined,
    contents,
    commonPrefixes: common,
  };
  if (v2) {
    sendXml(
      r.res,
      200,
      xml.listBucketResultV2({
        ...base,
        keyCount: contents.length + common.length,
        continuationToken: token,
        nextContinuationToken: page.isTruncated ? page.nextContinuationToken : undefined,
        startAfter: r.query.get('start-after') ?? undefined,
        fetchOwner,
      }),
    );
  } else {
    // V1 NextMarker: only with a delimiter (S3 semantics); clients use the last key otherwise.
    const last = [...contents.map((c) => c.key), ...common].sort().pop();
    sendXml(
      r.res,
      200,
      xml.listBucketResultV1({
        ...base,
        marker: r.query.get('marker') ?? '',
        nextMarker: page.isTruncated && delimiter ? last : undefined,
      }),
    );
  }
}

export async function deleteObjects(g: Gateway, r: S3Request): Promise<void> {
  await headBucketExists(g, r.bucket);
  const body = await g.readSmallBody(r, 2 * 1024 * 1024);
  const req = xml.parseDelete(body.toString('utf8'));
  const deleted: { key: string }[] = [];
  const errors: { key: string; code: string; message: string }[] = [];
  const queue = [...req.objects];
  const worker = async () => {
    for (let o = queue.shift(); o; o = queue.shift()) {
      try {
        await g.store.delete(r.bucket, o.key);
        deleted.push({ key: o.key });
      } catch (e) {
        const err = e instanceof S3Error ? e : new S3Error('InternalError');
        errors.push({ key: o.key, code: err.code, message: err.message });
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  sendXml(r.res, 200, xml.deleteResult(deleted, errors, req.quiet));
}

export async function getBucketVersioning(g: Gateway, r: S3Request): Promise<void> {
  await headBucketExists(g, r.bucket);
  // lakecrypt keeps one version per key: versioning is never enabled.
  sendXml(r.res, 200, '<?xml version="1.0" encoding="UTF-8"?>\n<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>');
}
