/**
 * Garbage collection of what crashes and lost races leave in the backend (docs/DESIGN.md, write order):
 *
 * - orphan headers: `h/<bucket>/<sha256(key)>/<oid>` whose data object is absent or carries another `lc-oid`
 *   (a PUT that died before its commit point; a previous version's header not dropped after an overwrite). On a
 *   backend that keeps versions every version of the key counts, current or not: a non-current version's header
 *   is live (docs/DESIGN.md "Versions");
 * - orphan data: a data object with `lc-oid` whose header is missing (unreadable: its DEKs are gone) — only in a
 *   dataset this deployment has a key record for. Another deployment (its own meta bucket) on the same backend
 *   writes objects with `lc-oid` too, whose headers live in *its* meta bucket: they are not ours to judge, and
 *   before this check a gc with a short cut-off deleted them;
 * - abandoned multipart uploads: backend uploads older than the cut-off (in a dataset of ours, as above), and
 *   `mpu/<id>/` records whose upload no longer exists (a Complete that died after the commit point, before the
 *   records were removed).
 *
 * Dry run by default: `apply: false` only reports. Nothing younger than `olderThanMs` (default 1 h) is ever
 * touched, so writes in flight are safe as long as no single upload takes longer than that. Before removing
 * anything the state is looked at again (the data object may have been written in the meantime).
 */
import { createHash } from 'node:crypto';
import type { Backend } from '../backend/types.ts';
import { isS3Error } from '../errors.ts';
import type { KeyService } from '../keys/service.ts';
import { META_OID, isInline, type ObjectStore } from '../store/index.ts';
import { allVersions, headVersion, keepsVersions, versionOids } from '../store/versions.ts';

export interface GcContext {
  backend: Backend;
  store: ObjectStore;
  keys: KeyService;
  metaBucket: string;
}

export interface GcOptions {
  apply: boolean;
  /** Only items last modified longer ago than this are considered (default 1 hour). */
  olderThanMs?: number;
}

export interface GcReport {
  /** Meta-bucket paths of orphan headers. */
  orphanHeaders: string[];
  /** `<bucket>/<key>` of data objects without a header. */
  orphanData: string[];
  /** Upload ids (backend uploads and/or their `mpu/<id>/` records). */
  abandonedUploads: string[];
  /** Objects and uploads removed (0 in a dry run). */
  removed: number;
}

const OID_RE = /^[0-9a-f]{32}$/;
const keyHash = (key: string) => createHash('sha256').update(key, 'utf8').digest('hex');

async function* listAll(backend: Backend, bucket: string, prefix?: string) {
  let token: string | undefined;
  do {
    let page;
    try {
      page = await backend.listObjects(bucket, { prefix, continuationToken: token });
    } catch (e) {
      if (isS3Error(e, 'NoSuchBucket')) return;
      throw e;
    }
    yield* page.objects;
    token = page.isTruncated ? page.nextContinuationToken : undefined;
  } while (token);
}

export async function runGc(ctx: GcContext, opts: GcOptions): Promise<GcReport> {
  const { backend, metaBucket } = ctx;
  // Whether a dataset bucket/key routes to (now, or before a route was added: its ancestry) has a key record in this
  // keystore: without one no lakecrypt object there is ours (another deployment's, whose headers are in its own meta
  // bucket), and a missing header proves nothing. A lookup that fails counts as not ours: nothing is removed on it.
  const known = new Map<string, Promise<boolean>>();
  const hasRecord = (dataset: string): Promise<boolean> => {
    let p = known.get(dataset);
    if (!p) known.set(dataset, (p = ctx.keys.datasetRecord(dataset, true).then((r) => r !== null, () => false)));
    return p;
  };
  const ours = async (bucket: string, key: string): Promise<boolean> => {
    for (const d of ctx.keys.datasetAncestry(bucket, key)) if (await hasRecord(d)) return true;
    return false;
  };
  const olderThanMs = opts.olderThanMs ?? 60 * 60 * 1000;
  const cutoff = Date.now() - olderThanMs;
  const old = (d: Date) => d.getTime() <= cutoff;
  const report: GcReport = { orphanHeaders: [], orphanData: [], abandonedUploads: [], removed: 0 };

  // 1. Headers first: a header listed now and a data object seen later can only be newer, never older.
  const headers = new Map<string, Date>(); // path -> lastModified
  for await (const o of listAll(backend, metaBucket, 'h/')) headers.set(o.key, o.lastModified);

  // 2. Data objects of every user bucket (HEAD for lc-oid: listings carry no metadata).
  const buckets = (await backend.listBuckets()).map((b) => b.name).filter((b) => b !== metaBucket);
  const live = new Set<string>(); // header paths referenced by a data object
  const keyOf = new Map<string, string>(); // `<bucket>/<keyhash>` -> key
  const versioned = keepsVersions(backend);
  for (const bucket of buckets) {
    if (versioned) {
      // Non-current versions name headers too (a key whose current version is a delete marker: only these).
      for await (const v of allVersions(backend, bucket)) {
        if (v.isLatest) continue; // the current one is seen below, as on any backend
        keyOf.set(`${bucket}/${keyHash(v.key)}`, v.key);
        // a version whose HEAD fails is not counted live here, so its header may be *reported*; apply looks again
        // (versionOids below) and keeps any header it cannot prove orphaned
        const oid = (await headVersion(backend, bucket, v.key, v.versionId).catch(() => null))?.meta[META_OID];
        if (oid && OID_RE.test(oid)) live.add(ctx.store.headerPath(bucket, v.key, oid));
      }
    }
    for await (const o of listAll(backend, bucket)) {
      keyOf.set(`${bucket}/${keyHash(o.key)}`, o.key);
      const info = await backend.headObject(bucket, o.key).catch(() => null);
      const oid = info?.meta[META_OID];
      if (!info || !oid || !OID_RE.test(oid)) continue; // not written by lakecrypt (or gone)
      if (isInline(info.meta)) continue; // its header is inline (format 2): no header object to miss
      const hp = ctx.store.headerPath(bucket, o.key, oid);
      live.add(hp);
      if (!headers.has(hp) && old(info.lastModified) && (await ours(bucket, o.key))) {
        // Listed before the data object was seen: confirm the header really is absent now.
        if (!(await backend.headObject(metaBucket, hp).catch(() => null))) report.orphanData.push(`${bucket}/${o.key}`);
      }
    }
  }

  for (const [hp, modified] of headers) {
    if (live.has(hp) || !old(modified)) continue;
    const m = /^h\/(.+)\/([0-9a-f]{64})\/([0-9a-f]{32})$/.exec(hp);
    if (!m) continue; // not a header path we write: leave it alone
    report.orphanHeaders.push(hp);
  }

  // 3. Multipart uploads: open backend uploads, then mpu/ records without an open upload.
  const open = new Set<string>();
  const staleUploads: { bucket: string; key: string; uploadId: string }[] = [];
  for (const bucket of buckets) {
    let ups: Awaited<ReturnType<Backend['listMultipartUploads']>> = [];
    try {
      ups = await backend.listMultipartUploads(bucket);
    } catch (e) {
      if (!isS3Error(e, 'NoSuchBucket')) throw e;
    }
    for (const u of ups) {
      open.add(u.uploadId);
      // another deployment's (or another client's) upload in a bucket of no dataset of ours is left alone
      if (old(u.initiated) && (await ours(bucket, u.key))) staleUploads.push({ bucket, ...u });
    }
  }
  const records = new Map<string, { paths: string[]; newest: number }>(); // encoded upload id -> record paths
  for await (const o of listAll(backend, metaBucket, 'mpu/')) {
    const id = o.key.slice(4, o.key.indexOf('/', 4) < 0 ? undefined : o.key.indexOf('/', 4));
    const r = records.get(id) ?? { paths: [], newest: 0 };
    r.paths.push(o.key);
    r.newest = Math.max(r.newest, o.lastModified.getTime());
    records.set(id, r);
  }
  const stale = new Set(staleUploads.map((u) => u.uploadId));
  for (const u of staleUploads) report.abandonedUploads.push(u.uploadId);
  const recordOnly: string[] = [];
  for (const [encId, r] of records) {
    let id: string;
    try {
      id = decodeURIComponent(encId);
    } catch {
      id = encId;
    }
    if (open.has(id) || stale.has(id) || r.newest > cutoff) continue;
    recordOnly.push(encId);
    report.abandonedUploads.push(id);
  }

  if (!opts.apply) return report;

  // ---- apply: look again right before each removal. A lookup that fails (the `.catch`es here and above)
  // never leads to a removal: the item is skipped, and the next run reports it again.
  for (const hp of report.orphanHeaders) {
    const [, bucket, hash, oid] = /^h\/(.+)\/([0-9a-f]{64})\/([0-9a-f]{32})$/.exec(hp)!;
    const key = keyOf.get(`${bucket}/${hash}`);
    if (key !== undefined) {
      const info = await backend.headObject(bucket, key).catch(() => undefined);
      if (info === undefined) continue; // backend error: skip, next run
      if (info && info.meta[META_OID] === oid) continue; // became live meanwhile
      if (versioned) {
        const oids = await versionOids(backend, bucket, key).catch(() => undefined);
        if (oids === undefined || oids.has(oid)) continue; // a version names it (or we could not tell): keep
      }
    }
    const now = await backend.headObject(metaBucket, hp).catch(() => null);
    if (!now || !old(now.lastModified)) continue;
    await backend.deleteObject(metaBucket, hp);
    ctx.store.headers.delete(bucket, key ?? '', oid);
    report.removed++;
  }
  for (const path of report.orphanData) {
    const i = path.indexOf('/');
    const bucket = path.slice(0, i);
    const key = path.slice(i + 1);
    const info = await backend.headObject(bucket, key).catch(() => null);
    const oid = info?.meta[META_OID];
    if (!info || !oid || !old(info.lastModified) || isInline(info.meta)) continue;
    if (await backend.headObject(metaBucket, ctx.store.headerPath(bucket, key, oid)).catch(() => 'error')) continue;
    await backend.deleteObject(bucket, key);
    report.removed++;
  }
  const removeRecords = async (encId: string) => {
    for await (const o of listAll(backend, metaBucket, `mpu/${encId}/`)) await backend.deleteObject(metaBucket, o.key);
  };
  for (const u of staleUploads) {
    await backend.abortMultipart(u.bucket, u.key, u.uploadId).catch((e) => {
      if (!isS3Error(e, 'NoSuchUpload')) throw e;
    });
    await removeRecords(encodeURIComponent(u.uploadId));
    report.removed++;
  }
  for (const encId of recordOnly) {
    await removeRecords(encId);
    report.removed++;
  }
  return report;
}
