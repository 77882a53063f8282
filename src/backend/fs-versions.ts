/**
 * Bucket versioning on the fs backend (docs/DESIGN.md "Versions", docs/FORMAT.md 3). fs.ts keeps its layout for
 * the CURRENT version of every key (objects/<bucket>/<hex>.o: what GET, HEAD, ListObjects and the conditions of a
 * conditional write see); this module keeps the rest:
 *   objects/<bucket>/.bucket.json              gains `versioning`: 'Enabled' | 'Suspended' (absent: never enabled)
 *   versions/<bucket>/<same path as the key>/  one directory per key (its name is the key's `<hex>.o`), holding
 *       <seq>.o     a non-current object version, the same LCO1 file (a hard link of the file it was: its data and
 *                   its metadata, where the gateway keeps the oid and sealed ETag, never copied)
 *       <seq>.n.o   the same, for the `null` version
 *       <seq>.m     a delete marker (an empty file: its id and time are in its name)
 *       <seq>.n.m   the null version as a delete marker (a delete under Suspended)
 * Version ids are 32 lower-case hex: 13 digits of (2^52 - 1 - (ms since epoch * 1024 + a per-process counter)),
 * then 19 random digits. They are opaque to clients; here they sort newest first (within one millisecond across
 * processes the random part decides). `seq` is that id; the null version has one too, for its place in the order,
 * and a file written before versioning was enabled (no `seq` in its header) is ordered by its lastModified.
 *
 * Crash safety: the current version is never removed before it is safe elsewhere. A write under Enabled first
 * hard-links the current file into the key's versions directory, then renames the new file over it; a delete marker
 * is made by link, then marker, then unlink. A crash in between leaves the same version twice (the link and the
 * current file: one version, listed once, the current file wins) or a current file under a newer marker, which
 * the next write or delete of that key puts right (`reconcile`). All of it runs under fs.ts's per-key lock.
 */
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import path from 'node:path';
import { S3Error } from '../errors.ts';
import { cleanupFailed, hexToRel, isErrno, keyHex, walk, wrap, type StoredHeader } from './fs-format.ts';
import type { DeleteResult, ListVersionsOptions, ListVersionsResult, VersionEntry, VersioningStatus } from './types.ts';

export const NULL_VID = 'null';
const TOP = 2 ** 52 - 1;
const ID_RE = /^[0-9a-f]{32}$/;
const NAME_RE = /^([0-9a-f]{32})(\.n)?\.([om])$/;

let lastTick = 0;
/** A new order key / version id: time-ordered (newest sorts first), unique by its random tail. */
export function newSeq(): string {
  lastTick = Math.max(Date.now() * 1024, lastTick + 1);
  return (TOP - lastTick).toString(16).padStart(13, '0') + randomBytes(10).toString('hex').slice(0, 19);
}
/** The order key of a file written without one: its time, after (older than) anything written in that millisecond. */
const seqOfTime = (ms: number) => (TOP - ms * 1024).toString(16).padStart(13, '0') + 'f'.repeat(19);
const timeOfSeq = (seq: string) => new Date(Math.floor((TOP - parseInt(seq.slice(0, 13), 16)) / 1024));

export const seqOf = (h: StoredHeader): string => h.seq ?? seqOfTime(h.lastModified);
export const vidOf = (h: StoredHeader): string => h.vid ?? NULL_VID;

/** What a write stamps into the new file's header: nothing on a bucket whose versioning was never enabled. */
export type Stamp = { vid?: undefined; seq?: undefined } | { vid: string; seq: string };

interface Entry {
  seq: string;
  vid: string;
  marker: boolean;
  file: string;
}

function parseEntries(dir: string, names: string[]): Entry[] {
  const out: Entry[] = [];
  for (const n of names) {
    const m = NAME_RE.exec(n);
    if (m) out.push({ seq: m[1], vid: m[2] ? NULL_VID : m[1], marker: m[3] === 'm', file: path.join(dir, n) });
  }
  return out.sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
}

const entryName = (seq: string, vid: string, marker: boolean) => `${seq}${vid === NULL_VID ? '.n' : ''}.${marker ? 'm' : 'o'}`;

export interface FsVersionsDeps {
  objectsDir: string;
  versionsDir: string;
  tmpDir: string;
  statObject(file: string): Promise<StoredHeader | null>;
}

export class FsVersions {
  constructor(private readonly d: FsVersionsDeps) {}

  private bucketFile(bucket: string) {
    return path.join(this.d.objectsDir, bucket, '.bucket.json');
  }

  private keyDir(bucket: string, key: string) {
    return path.join(this.d.versionsDir, bucket, hexToRel(keyHex(key)));
  }

  /** The bucket's versioning state (the bucket exists: the caller checked). */
  async state(bucket: string): Promise<VersioningStatus | undefined> {
    try {
      const j = JSON.parse(await fsp.readFile(this.bucketFile(bucket), 'utf8')) as { versioning?: VersioningStatus };
      return j.versioning;
    } catch (e) {
      if (isErrno(e, 'ENOENT', 'ENOTDIR')) throw new S3Error('NoSuchBucket', undefined, { BucketName: bucket });
      return wrap(e);
    }
  }

  /** Persisted by renaming a new .bucket.json into the bucket (a bucket deleted meanwhile: NoSuchBucket). */
  async setState(bucket: string, status: VersioningStatus): Promise<void> {
    const j = JSON.parse(await fsp.readFile(this.bucketFile(bucket), 'utf8').catch((e: unknown) => {
      if (isErrno(e, 'ENOENT', 'ENOTDIR')) throw new S3Error('NoSuchBucket', undefined, { BucketName: bucket });
      return wrap(e);
    })) as Record<string, unknown>;
    const tmp = path.join(this.d.tmpDir, `bucket-json-${randomBytes(8).toString('hex')}.tmp`);
    await fsp.writeFile(tmp, JSON.stringify({ ...j, versioning: status }));
    try {
      await fsp.rename(tmp, this.bucketFile(bucket));
    } catch (e) {
      await fsp.unlink(tmp).catch(cleanupFailed);
      if (isErrno(e, 'ENOENT', 'ENOTDIR')) throw new S3Error('NoSuchBucket', undefined, { BucketName: bucket });
      wrap(e);
    }
  }

  /** What a write to the bucket stamps into its new file (read before the file is written). */
  async stamp(bucket: string): Promise<Stamp> {
    const s = await this.state(bucket);
    if (s === undefined) return {};
    const seq = newSeq();
    return { vid: s === 'Enabled' ? seq : NULL_VID, seq };
  }

  private async entries(dir: string): Promise<Entry[]> {
    try {
      return parseEntries(dir, await fsp.readdir(dir));
    } catch (e) {
      if (isErrno(e, 'ENOENT', 'ENOTDIR')) return [];
      return wrap(e);
    }
  }

  /** Keep the current file as a non-current version: a hard link in the key's directory (already there: fine). */
  private async keep(dir: string, current: string, h: StoredHeader): Promise<void> {
    await fsp.mkdir(dir, { recursive: true });
    try {
      await fsp.link(current, path.join(dir, entryName(seqOf(h), vidOf(h), false)));
    } catch (e) {
      if (!isErrno(e, 'EEXIST')) wrap(e);
    }
  }

  private async dropNulls(list: Entry[], except?: string): Promise<void> {
    for (const e of list) if (e.vid === NULL_VID && e.seq !== except) await fsp.unlink(e.file).catch(cleanupFailed);
  }

  /**
   * After a crash between the steps of a delete marker, the current file may sit under a newer marker, or a
   * promotion may be missing: make the current file match the newest version again. Called under the key's lock.
   */
  private async reconcile(dir: string, dest: string): Promise<StoredHeader | null> {
    const cur = await this.d.statObject(dest);
    const list = await this.entries(dir);
    const newest = list[0];
    if (cur && newest?.marker && newest.seq < seqOf(cur) && list.some((e) => e.seq === seqOf(cur))) {
      await fsp.unlink(dest);
      return null;
    }
    return cur;
  }

  /**
   * A write's commit (under the key's lock, after its conditions were checked against the current file): under
   * Enabled the current version is kept (linked) first; under Suspended a current non-null version is kept and
   * every older null version goes, as the new null version replaces it.
   */
  async commit(bucket: string, key: string, dest: string, stamp: Stamp, commit: () => Promise<void>): Promise<void> {
    if (stamp.vid === undefined) return commit();
    const dir = this.keyDir(bucket, key);
    const cur = await this.reconcile(dir, dest);
    if (cur && !(stamp.vid === NULL_VID && vidOf(cur) === NULL_VID)) await this.keep(dir, dest, cur);
    await commit();
    if (stamp.vid === NULL_VID) await this.dropNulls(await this.entries(dir), stamp.seq);
  }

  /**
   * The file of one version for a read: the current file when it is that version, else its file in the key's
   * directory; null when there is none. A delete marker: MethodNotAllowed (as S3 answers GET/HEAD of one).
   */
  async fileOf(bucket: string, key: string, dest: string, versionId: string): Promise<string | null> {
    const cur = await this.d.statObject(dest);
    if (cur && vidOf(cur) === versionId) return dest;
    if (versionId !== NULL_VID && !ID_RE.test(versionId)) return null;
    const e = (await this.entries(this.keyDir(bucket, key))).find((x) => x.vid === versionId);
    if (!e) return null;
    if (e.marker) throw new S3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.', { Key: key, VersionId: versionId });
    return e.file;
  }

  /**
   * DeleteObject on a bucket whose versioning is (or was) enabled, under the key's lock. Without a version id: a
   * delete marker (Enabled: a new id; Suspended: the null version becomes the marker). With one: that version
   * goes for good, and when it was the latest the next newest becomes current again (an object version is renamed
   * over the current file: one step).
   */
  async delete(bucket: string, key: string, dest: string, status: VersioningStatus | undefined, versionId?: string): Promise<DeleteResult> {
    const dir = this.keyDir(bucket, key);
    const cur = await this.reconcile(dir, dest);
    if (versionId === undefined) {
      const seq = newSeq();
      const vid = status === 'Suspended' ? NULL_VID : seq;
      if (cur && !(vid === NULL_VID && vidOf(cur) === NULL_VID)) await this.keep(dir, dest, cur);
      if (vid === NULL_VID) await this.dropNulls(await this.entries(dir));
      await fsp.mkdir(dir, { recursive: true });
      await (await fsp.open(path.join(dir, entryName(seq, vid, true)), 'wx', 0o600)).close();
      if (cur) await fsp.unlink(dest).catch((e: unknown) => (isErrno(e, 'ENOENT') ? undefined : wrap(e)));
      return { versionId: vid, deleteMarker: true };
    }
    const list = await this.entries(dir);
    if (cur && vidOf(cur) === versionId) {
      const rest = list.filter((e) => e.seq !== seqOf(cur));
      if (rest[0] && !rest[0].marker) await fsp.rename(rest[0].file, dest);
      else await fsp.unlink(dest);
      for (const e of list) if (e.seq === seqOf(cur)) await fsp.unlink(e.file).catch(cleanupFailed);
      return { versionId };
    }
    const gone = list.find((e) => e.vid === versionId);
    if (!gone) return { versionId };
    await fsp.unlink(gone.file).catch((e: unknown) => (isErrno(e, 'ENOENT') ? undefined : wrap(e)));
    const rest = list.filter((e) => e !== gone);
    // The latest was a marker, now removed: the version under it is current again.
    if (!cur && gone === list[0] && rest[0] && !rest[0].marker) await fsp.rename(rest[0].file, dest);
    return gone.marker ? { versionId, deleteMarker: true } : { versionId };
  }

  /** Whether any non-current version or marker is kept for the bucket (it then is not empty). */
  async hasVersions(bucket: string): Promise<boolean> {
    for await (const k of walk(path.join(this.d.versionsDir, bucket), '', '', null, { hex: null })) if ((await this.entries(k.file)).length) return true;
    return false;
  }

  /** A key's directory once its last version went (and its empty parents): best effort, a later write remakes it. */
  async prune(bucket: string, key: string): Promise<void> {
    const stop = path.join(this.d.versionsDir, bucket);
    for (let d = this.keyDir(bucket, key); d.startsWith(stop + path.sep); d = path.dirname(d)) {
      try {
        await fsp.rmdir(d);
      } catch {
        return;
      }
    }
  }

  async dropBucket(bucket: string): Promise<void> {
    await fsp.rm(path.join(this.d.versionsDir, bucket), { recursive: true, force: true });
  }

  /** One key's versions and markers, newest first (the current file counted once). */
  private async keyVersions(key: string, curFile: string | undefined, dir: string | undefined): Promise<VersionEntry[]> {
    const cur = curFile ? await this.d.statObject(curFile) : null;
    const all: { seq: string; entry: VersionEntry }[] = [];
    const entry = (h: StoredHeader, seq: string) => ({
      seq,
      entry: { key, versionId: vidOf(h), isLatest: false, lastModified: new Date(h.lastModified), deleteMarker: false, size: h.size, etag: h.etag },
    });
    if (cur) all.push(entry(cur, seqOf(cur)));
    for (const e of dir ? await this.entries(dir) : []) {
      if (cur && e.seq === seqOf(cur)) continue;
      if (e.marker) {
        all.push({ seq: e.seq, entry: { key, versionId: e.vid, isLatest: false, lastModified: timeOfSeq(e.seq), deleteMarker: true, size: 0, etag: '' } });
        continue;
      }
      const h = await this.d.statObject(e.file);
      if (h) all.push(entry(h, e.seq));
    }
    all.sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
    if (all[0]) all[0].entry.isLatest = true;
    return all.map((x) => x.entry);
  }

  /** ListObjectVersions: by key (S3 order), newest version first; paged by key and version-id markers. */
  async list(bucket: string, opts: ListVersionsOptions): Promise<ListVersionsResult> {
    const prefix = opts.prefix ?? '';
    const delimiter = opts.delimiter ?? '';
    const maxKeys = Math.max(0, Math.min(1000, opts.maxKeys ?? 1000));
    const res: ListVersionsResult = { entries: [], commonPrefixes: [], isTruncated: false };
    if (maxKeys === 0) return res;
    const hex = (s: string) => Buffer.from(s, 'utf8').toString('hex');
    const prefixHex = hex(prefix);
    const keyMarker = opts.keyMarker ?? '';
    const skip = { hex: null as string | null };
    let lastCp: string | undefined;
    const cpOf = (key: string) => {
      if (!delimiter || !key.startsWith(prefix)) return undefined;
      const i = key.indexOf(delimiter, prefix.length);
      return i >= 0 ? key.slice(0, i + delimiter.length) : undefined;
    };
    // A key marker inside a common prefix (a page that ended on it): the whole prefix was listed.
    const markerCp = keyMarker ? cpOf(keyMarker) : undefined;
    if (markerCp !== undefined) {
      lastCp = markerCp;
      skip.hex = hex(markerCp);
    }
    let count = 0;
    let last: { key: string; vid?: string } | undefined;
    const emit = (e: VersionEntry): boolean => {
      if (count >= maxKeys) return false;
      res.entries.push(e);
      count++;
      last = { key: e.key, vid: e.versionId };
      return true;
    };
    const full = () => {
      res.isTruncated = true;
      if (last) {
        res.nextKeyMarker = last.key;
        res.nextVersionIdMarker = last.vid;
      }
    };
    const bdir = path.join(this.d.objectsDir, bucket);
    const vdir = path.join(this.d.versionsDir, bucket);
    // The rest of the key marker's versions, after the version-id marker.
    if (opts.versionIdMarker && keyMarker && keyMarker.startsWith(prefix) && markerCp === undefined) {
      const rel = hexToRel(keyHex(keyMarker));
      const vs = await this.keyVersions(keyMarker, path.join(bdir, rel), path.join(vdir, rel));
      const at = vs.findIndex((v) => v.versionId === opts.versionIdMarker);
      const after =
        at >= 0 ? vs.slice(at + 1) : ID_RE.test(opts.versionIdMarker) ? vs.filter((v) => v.versionId !== NULL_VID && v.versionId > opts.versionIdMarker!) : [];
      for (const v of after) {
        if (!emit(v)) {
          full();
          return res;
        }
      }
    }
    const afterHex = keyMarker ? hex(keyMarker) : null;
    for await (const k of mergeWalks(walk(bdir, '', prefixHex, afterHex, skip), walk(vdir, '', prefixHex, afterHex, skip))) {
      const key = Buffer.from(k.hex, 'hex').toString('utf8');
      if (lastCp !== undefined && key.startsWith(lastCp)) continue;
      const cp = cpOf(key);
      if (cp !== undefined) {
        // Only a key with a version (not a stray empty directory) makes a common prefix.
        if ((await this.keyVersions(key, k.cur, k.dir)).length === 0) continue;
        if (count >= maxKeys) {
          full();
          return res;
        }
        res.commonPrefixes.push(cp);
        count++;
        last = { key: cp };
        lastCp = cp;
        skip.hex = hex(cp);
        continue;
      }
      for (const v of await this.keyVersions(key, k.cur, k.dir)) {
        if (!emit(v)) {
          full();
          return res;
        }
      }
    }
    return res;
  }
}

type Walked = AsyncGenerator<{ hex: string; file: string }>;

/** The keys of the current files and of the version directories, merged in key order. */
async function* mergeWalks(objects: Walked, versions: Walked): AsyncGenerator<{ hex: string; cur?: string; dir?: string }> {
  let a = await objects.next();
  let b = await versions.next();
  while (!a.done || !b.done) {
    if (!a.done && (b.done || a.value.hex < b.value.hex)) {
      yield { hex: a.value.hex, cur: a.value.file };
      a = await objects.next();
    } else if (!b.done && (a.done || b.value.hex < a.value.hex)) {
      yield { hex: b.value.hex, dir: b.value.file };
      b = await versions.next();
    } else if (!a.done && !b.done) {
      yield { hex: a.value.hex, cur: a.value.file, dir: b.value.file };
      a = await objects.next();
      b = await versions.next();
    }
  }
}

