import { S3Error } from '../errors.ts';
import { backendVersionId, checkVersionIdMarker, deleteEntryVersion, NULL_VERSION } from '../s3/version-id.ts';
import { keepsVersions } from '../store/versions.ts';
import * as xml from '../s3/xml.ts';
import type { Gateway } from './gateway.ts';
import { continuationToken, encodingTypeOf, listPage, listVersionsPage, maxKeysOf, startOfToken } from './listing.ts';
import type { S3Request } from './request.ts';
import { checkBucketName } from './request.ts';
import { sendXml } from './respond.ts';
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

export async function listObjects(g: Gateway, r: S3Request, v2: boolean): Promise<void> {
  await headBucketExists(g, r.bucket);
  const encodingType = encodingTypeOf(r);
  const prefix = r.query.get('prefix') ?? '';
  const delimiter = r.query.get('delimiter') ?? '';
  const maxKeys = maxKeysOf(r);
  const token = v2 ? (r.query.get('continuation-token') ?? undefined) : undefined;
  // a continuation token, when there is one, says where the page starts; start-after only starts the first page
  const startAfter = token !== undefined ? startOfToken(token) : ((v2 ? r.query.get('start-after') : r.query.get('marker')) ?? '');
  const page = await listPage(g, r.bucket, { prefix, delimiter, maxKeys, startAfter });
  const owner = ownerOf(r);
  const fetchOwner = !v2 || r.query.get('fetch-owner') === 'true';
  const contents = page.objects.map((o) => ({ ...o, owner: fetchOwner ? owner : undefined }));
  const common = page.commonPrefixes;
  const base = {
    bucket: r.bucket,
    prefix,
    delimiter: delimiter || undefined,
    maxKeys,
    isTruncated: page.isTruncated,
    encodingType,
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
        nextContinuationToken: page.isTruncated && page.last !== undefined ? continuationToken(page.last) : undefined,
        startAfter: r.query.get('start-after') ?? undefined,
        fetchOwner,
      }),
    );
  } else {
    // V1 NextMarker: only with a delimiter (S3 semantics); clients use the last key otherwise.
    sendXml(
      r.res,
      200,
      xml.listBucketResultV1({
        ...base,
        marker: r.query.get('marker') ?? '',
        nextMarker: page.isTruncated && delimiter ? page.last : undefined,
      }),
    );
  }
}

/**
 * ListObjectVersions on a bucket without versioning: each object is its one version, `null`, the latest; pages
 * end at NextKeyMarker (+ NextVersionIdMarker `null` when that is an object), which the next request sends back.
 * Parameters are checked in S3's order, before the bucket is looked up.
 */
export async function listObjectVersions(g: Gateway, r: S3Request): Promise<void> {
  checkBucketName(r.bucket);
  const maxKeys = maxKeysOf(r);
  const keyMarker = r.query.get('key-marker');
  const versionIdMarker = r.query.get('version-id-marker');
  checkVersionIdMarker(keyMarker, versionIdMarker);
  const encodingType = encodingTypeOf(r);
  await headBucketExists(g, r.bucket);
  const prefix = r.query.get('prefix') ?? '';
  const delimiter = r.query.get('delimiter') ?? '';
  const owner = ownerOf(r);
  if (keepsVersions(g.backend) && (await g.backend.getBucketVersioning!(r.bucket)) !== undefined) {
    // A bucket whose versioning is (or was) enabled: the backend's own version listing, mapped to what clients see.
    const v = await listVersionsPage(g, r.bucket, { prefix, delimiter, maxKeys, keyMarker: keyMarker ?? '', versionIdMarker: versionIdMarker ?? '' });
    sendXml(
      r.res,
      200,
      xml.listVersionsResult({
        bucket: r.bucket,
        prefix,
        keyMarker: keyMarker ?? '',
        versionIdMarker: versionIdMarker ?? '',
        nextKeyMarker: v.nextKeyMarker,
        nextVersionIdMarker: v.nextVersionIdMarker,
        maxKeys,
        delimiter: delimiter || undefined,
        isTruncated: v.isTruncated,
        encodingType,
        versions: v.entries.map((e) => ({ ...e, owner })),
        commonPrefixes: v.commonPrefixes,
      }),
    );
    return;
  }
  const page = await listPage(g, r.bucket, { prefix, delimiter, maxKeys, startAfter: keyMarker ?? '' });
  const endsOnObject = page.last !== undefined && page.last === page.objects.at(-1)?.key;
  sendXml(
    r.res,
    200,
    xml.listVersionsResult({
      bucket: r.bucket,
      prefix,
      keyMarker: keyMarker ?? '',
      versionIdMarker: versionIdMarker ?? '',
      nextKeyMarker: page.isTruncated ? page.last : undefined,
      nextVersionIdMarker: page.isTruncated && endsOnObject ? NULL_VERSION : undefined,
      maxKeys,
      delimiter: delimiter || undefined,
      isTruncated: page.isTruncated,
      encodingType,
      versions: page.objects.map((o) => ({ ...o, versionId: NULL_VERSION, isLatest: true, owner })),
      commonPrefixes: page.commonPrefixes,
    }),
  );
}

const ownerOf = (r: S3Request): xml.Owner => ({ id: r.user.accessKey, displayName: r.user.accessKey });

export async function deleteObjects(g: Gateway, r: S3Request): Promise<void> {
  await headBucketExists(g, r.bucket);
  const body = await g.readSmallBody(r, 2 * 1024 * 1024);
  const req = xml.parseDelete(body.toString('utf8'));
  // Answered in the order asked (as S3 and MinIO do), though deleted 8 at a time.
  const outcome = new Array<{ deleted: xml.DeletedEntry } | { error: xml.DeleteErrorEntry }>(req.objects.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < req.objects.length; i = next++) {
      const o = req.objects[i];
      // An entry naming a version is answered with it (Terraform, conformance suites delete by Key + VersionId).
      const version = deleteEntryVersion(o.versionId);
      try {
        if ('error' in version) throw version.error;
        if (keepsVersions(g.backend)) {
          // The named version for good, or (none named, versioned bucket) a delete marker: versions.ts.
          const done = await g.store.delete(r.bucket, o.key, backendVersionId(o.versionId));
          const marker = done.deleteMarker ? { deleteMarkerVersionId: done.versionId ?? NULL_VERSION } : {};
          outcome[i] = { deleted: { key: o.key, versionId: o.versionId, ...marker } };
          continue;
        }
        if (version.deletes) await g.store.delete(r.bucket, o.key);
        outcome[i] = { deleted: { key: o.key, versionId: o.versionId } };
      } catch (e) {
        const err = e instanceof S3Error ? e : new S3Error('InternalError');
        outcome[i] = { error: { key: o.key, versionId: o.versionId, code: err.code, message: err.message } };
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  const deleted = outcome.flatMap((x) => ('deleted' in x ? [x.deleted] : []));
  const errors = outcome.flatMap((x) => ('error' in x ? [x.error] : []));
  sendXml(r.res, 200, xml.deleteResult(deleted, errors, req.quiet));
}

export async function getBucketVersioning(g: Gateway, r: S3Request): Promise<void> {
  await headBucketExists(g, r.bucket);
  // The backend keeps the versions (an S3 bucket's own versioning, or the fs backend's layout): its state is the
  // answer. A backend without versioning never had it enabled.
  const status = keepsVersions(g.backend) ? await g.backend.getBucketVersioning!(r.bucket) : undefined;
  if (status !== undefined) {
    sendXml(r.res, 200, xml.versioningConfiguration(status));
    return;
  }
  sendXml(r.res, 200, '<?xml version="1.0" encoding="UTF-8"?>\n<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>');
}

/**
 * PutBucketVersioning: Enabled or Suspended on the backend's own bucket, which then keeps the ciphertext versions
 * (each version's data object names its own header: docs/DESIGN.md "Versions"); the fs backend keeps them in its
 * own layout. A backend without versioning support answers NotImplemented.
 */
export async function putBucketVersioning(g: Gateway, r: S3Request): Promise<void> {
  await headBucketExists(g, r.bucket);
  const body = await g.readSmallBody(r, 64 * 1024);
  const { status } = xml.parseVersioningConfiguration(body.toString('utf8'));
  if (!keepsVersions(g.backend)) {
    throw new S3Error(
      'NotImplemented',
      'Bucket versioning needs a backend that keeps object versions; this backend keeps one version per key.',
    );
  }
  await g.backend.putBucketVersioning!(r.bucket, status);
  // new small objects of a versioned bucket keep their header in the meta bucket (inline-header.ts)
  g.store.inline.forget(r.bucket);
  r.res.statusCode = 200;
  r.res.setHeader('Content-Length', 0);
  r.res.end();
}
