/**
 * The fs backend's on-disk format and the helpers its two modules share (fs.ts: objects, uploads, locks;
 * fs-versions.ts: bucket versioning). The layout is described at the top of fs.ts.
 */
import type { FileHandle } from 'node:fs/promises';
import * as fsp from 'node:fs/promises';
import path from 'node:path';
import { S3Error } from '../errors.ts';

/**
 * The one silent catch of this backend: cleanup of its own temp files, locks and handles on a path that has
 * already failed or finished. The error that matters is the one being thrown (or the result being returned);
 * a temp file left behind is swept at the next start (`sweepTmp`), a lock left behind is broken by age.
 */
export const cleanupFailed = (): void => undefined;

export const MAGIC = Buffer.from('LCO1');
const SEG = 200; // hex chars per path component (100 key bytes)
export const MAX_KEY_BYTES = 1024;

export interface StoredHeader {
  etag: string;
  key: string;
  size: number;
  lastModified: number;
  meta: Record<string, string>;
  /**
   * Bucket versioning (fs-versions.ts): the version id this file is ('null' or a 32-hex id), and its order key
   * (`seq`: newer versions sort first). Absent on files written while the bucket's versioning was never enabled:
   * such a file is the null version, ordered by its lastModified.
   */
  vid?: string;
  seq?: string;
}

export function keyHex(key: string): string {
  if (typeof key !== 'string' || key.length === 0) throw new S3Error('InvalidArgument', 'Object key must not be empty.');
  const b = Buffer.from(key, 'utf8');
  if (b.length > MAX_KEY_BYTES) throw new S3Error('KeyTooLongError');
  return b.toString('hex');
}

/** Relative path components for a key hex string. */
export function hexToRel(hex: string): string {
  const parts: string[] = [];
  for (let i = 0; i < hex.length; i += SEG) parts.push(hex.slice(i, i + SEG));
  return parts.map((p, i) => (i === parts.length - 1 ? `${p}.o` : `${p}.d`)).join(path.sep);
}

export const isErrno = (e: unknown, ...codes: string[]) =>
  typeof e === 'object' && e !== null && codes.includes((e as NodeJS.ErrnoException).code ?? '');

export function wrap(e: unknown): never {
  if (e instanceof S3Error) throw e;
  throw new S3Error('ServiceUnavailable', `filesystem backend error: ${(e as Error)?.message ?? String(e)}`, {}, { cause: e });
}

export function encodeHeader(h: StoredHeader): Buffer {
  // etag first, so a placeholder can be patched in place at a fixed offset.
  const json = Buffer.from(
    JSON.stringify({ etag: h.etag, key: h.key, size: h.size, lastModified: h.lastModified, meta: h.meta, vid: h.vid, seq: h.seq }),
    'utf8',
  );
  const len = Buffer.alloc(4);
  len.writeUInt32BE(json.length);
  return Buffer.concat([MAGIC, len, json]);
}
export const ETAG_OFFSET = 8 + Buffer.byteLength('{"etag":"');
export const ETAG_PLACEHOLDER = '0'.repeat(32);

export async function readHeader(fh: FileHandle): Promise<{ h: StoredHeader; dataOffset: number }> {
  const pre = Buffer.alloc(8);
  const { bytesRead } = await fh.read(pre, 0, 8, 0);
  if (bytesRead !== 8 || !pre.subarray(0, 4).equals(MAGIC)) throw new S3Error('InternalError', 'corrupt object file');
  const len = pre.readUInt32BE(4);
  const buf = Buffer.alloc(len);
  const r = await fh.read(buf, 0, len, 8);
  if (r.bytesRead !== len) throw new S3Error('InternalError', 'corrupt object file');
  return { h: JSON.parse(buf.toString('utf8')) as StoredHeader, dataOffset: 8 + len };
}

/**
 * Sorted depth-first walk yielding every object file under `dir` whose key hex starts with `prefixHex`,
 * is strictly greater than `afterHex`, and does not start with `skip.hex` (updated by the consumer between
 * yields, to jump over a common prefix). Whole directories are pruned by the same bounds.
 */
export async function* walk(
  dir: string,
  base: string,
  prefixHex: string,
  afterHex: string | null,
  skip: { hex: string | null },
): AsyncGenerator<{ hex: string; file: string }> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (e) {
    if (isErrno(e, 'ENOENT', 'ENOTDIR')) return;
    throw e;
  }
  const entries = names
    .filter((n) => /^[0-9a-f]+\.[od]$/.test(n))
    .map((n) => ({ n, seg: n.slice(0, -2), isDir: n.endsWith('.d') }))
    .sort((a, b) => (a.seg < b.seg ? -1 : a.seg > b.seg ? 1 : a.isDir === b.isDir ? 0 : a.isDir ? 1 : -1));
  for (const e of entries) {
    const full = base + e.seg;
    if (e.isDir) {
      if (!full.startsWith(prefixHex) && !prefixHex.startsWith(full)) {
        if (full > prefixHex) return;
        continue;
      }
      if (afterHex !== null && full < afterHex && !afterHex.startsWith(full)) continue;
      if (skip.hex !== null && full.startsWith(skip.hex)) continue;
      yield* walk(path.join(dir, e.n), full, prefixHex, afterHex, skip);
    } else {
      if (!full.startsWith(prefixHex)) {
        if (full > prefixHex && !prefixHex.startsWith(full)) return;
        continue;
      }
      if (afterHex !== null && full <= afterHex) continue;
      if (skip.hex !== null && full.startsWith(skip.hex)) continue;
      yield { hex: full, file: path.join(dir, e.n) };
    }
  }
}
