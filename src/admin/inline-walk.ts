/**
 * The inline headers (data format 2, src/store/inline-header.ts) under one bucket and prefix, for the jobs that
 * must see every header of a dataset: a re-key reseals them, and the scan that decides which KEK versions and
 * header keys are still referenced (destroy, retire) counts them. They live in the data objects' metadata, not
 * under `h/` in the meta bucket, so they are found by listing the data bucket: with the metadata in the listing
 * where the backend gives it (fs; MinIO's listing extension), else one HEAD per object (16 at a time). On a bucket
 * that keeps versions the non-current versions are HEADed too: they cannot be rewritten, but what they name stays
 * referenced.
 */
import type { Backend } from '../backend/types.ts';
import { isS3Error } from '../errors.ts';
import { isInline, type HeaderSite } from '../store/index.ts';
import { inlineHeaderBytes } from '../store/index.ts';
import { allVersions, headVersion } from '../store/versions.ts';
import { forEachLimit } from './util.ts';

export interface InlineFound {
  key: string;
  bytes: Buffer;
  site: HeaderSite & { inline: true };
  /** False for a non-current version (not rewritable in place). */
  current: boolean;
}

/** Calls `visit` for every inline header under bucket/prefix (a malformed `lc-h` is skipped: a read refuses it). */
export async function forEachInlineHeader(backend: Backend, bucket: string, prefix: string, visit: (f: InlineFound) => Promise<void>, concurrency = 16): Promise<void> {
  const found = (key: string, meta: Record<string, string>, etag: string, versionId: string | undefined, current: boolean): InlineFound | null => {
    if (!isInline(meta)) return null;
    try {
      return { key, bytes: inlineHeaderBytes(meta), site: { inline: true, etag, versionId, meta }, current };
    } catch {
      return null;
    }
  };
  let token: string | undefined;
  do {
    let page;
    try {
      page = await backend.listObjects(bucket, { prefix, continuationToken: token, maxKeys: 1000, withMeta: true });
    } catch (e) {
      // a dataset whose bucket does not exist (or never could: a record from before names were checked) has none
      if (isS3Error(e, 'NoSuchBucket') || isS3Error(e, 'InvalidBucketName')) return;
      throw e;
    }
    await forEachLimit(page.objects, concurrency, async (o) => {
      let meta = o.meta;
      let etag = o.etag;
      if (meta === undefined) {
        const info = await backend.headObject(bucket, o.key);
        if (!info) return;
        meta = info.meta;
        etag = info.etag;
      }
      const f = found(o.key, meta, etag, undefined, true);
      if (f) await visit(f);
    });
    token = page.isTruncated ? page.nextContinuationToken : undefined;
  } while (token);
  const older: { key: string; versionId: string }[] = [];
  for await (const v of allVersions(backend, bucket, prefix || undefined)) if (!v.isLatest) older.push(v);
  await forEachLimit(older, concurrency, async (v) => {
    const info = await headVersion(backend, bucket, v.key, v.versionId);
    const f = info && found(v.key, info.meta, info.etag, v.versionId, false);
    if (f) await visit(f);
  });
}
