/**
 * The one door for stored headers (and the sealed ETag that goes with them): every path that turns header bytes
 * into fields or fields into bytes — reads, writes, multipart records, re-wrap, DEK revocation, the in-flight
 * recheck — comes through here, so the order of checks is written once:
 *   open: peek the fixed fields (never trusted) → the dataset the header names must be one the object can belong
 *         to — the key's route or an ancestor of it in the routing tree (the bucket, a shorter prefix: a prefix
 *         dataset created over existing objects leaves them sealed under the dataset that routed them then; a read
 *         follows the header) — and the oid when the caller knows it must match, BEFORE any key is fetched → the
 *         key the header names in THAT dataset (a KEK version for format 1, a header key for format 2) → open,
 *         which authenticates all of it with the location as HKDF input. A header naming any other dataset is
 *         refused (IntegrityError) without a key fetched;
 *   seal: the key the fields name → refuse DEKs a cache clear zeroed under the caller (sealing them would lose the
 *         object for good) → seal.
 * Backend names of the object layer (data-object metadata, header paths) live here too.
 */
import { createHash } from 'node:crypto';
import { S3Error } from '../errors.ts';
import { datasetIdOf, openHeader, peekHeader, sealHeader, type HeaderFields, type HeaderPeek } from '../engine/index.ts';
import { openEtag, sealEtag, sealedEtagKey } from '../format/etag.ts';
import { liveKey } from '../keys/cache.ts';
import type { KeyService } from '../keys/service.ts';

/** Backend metadata names on data objects (never secret). */
export const META_OID = 'lc-oid';
export const META_FMT = 'lc-fmt';
export { META_ETAG } from '../format/etag.ts';

const keyHash = (key: string) => createHash('sha256').update(key, 'utf8').digest('hex');

/** Meta-bucket path of the header of one object version. */
export const headerPath = (bucket: string, key: string, oidHex: string): string => `h/${bucket}/${keyHash(key)}/${oidHex}`;
/** Meta-bucket folder of every header version of one key. */
export const headerDir = (bucket: string, key: string): string => `h/${bucket}/${keyHash(key)}/`;

/** True when a DEK buffer was zeroed (the header left the cache while we held it); a real DEK is never all zero. */
export function dekWiped(h: HeaderFields): boolean {
  return h.parts.some((p) => p.deks.some((d) => d !== null && d.every((b) => b === 0)));
}

/**
 * Where a header is expected to belong. `dataset`: exactly that dataset (a job walking one dataset's headers);
 * default: the key's route or an ancestor of it. `oidHex` is checked when given.
 */
export interface HeaderPlace {
  bucket: string;
  key: string;
  dataset?: string;
  oidHex?: string;
}

/** What a mismatch before opening becomes: IntegrityError by default; multipart records say NoSuchUpload/InvalidPart. */
export type Refusal = (reason: string) => S3Error;
const integrity: Refusal = (reason) => new S3Error('IntegrityError', reason);

export class HeaderDoor {
  constructor(private readonly keys: KeyService) {}

  /** The fixed fields, unauthenticated: for choosing what to do, never for trusting. */
  peek(bytes: Buffer): HeaderPeek {
    return peekHeader(bytes);
  }

  /** Open header bytes found at `at` (see the file comment for the order of checks). */
  async open(bytes: Buffer, at: HeaderPlace, refuse: Refusal = integrity): Promise<HeaderFields> {
    const peek = peekHeader(bytes);
    const dataset =
      at.dataset !== undefined
        ? peek.datasetId.equals(datasetIdOf(at.dataset))
          ? at.dataset
          : null
        : this.keys.headerDatasetFor(at.bucket, at.key, peek.datasetId);
    if (dataset === null) throw refuse('The object header belongs to another dataset.');
    if (at.oidHex !== undefined && peek.oid.toString('hex') !== at.oidHex) throw refuse('The object header belongs to another object.');
    const key = await this.keys.headerSealKey(dataset, peek.version, peek.keyNumber);
    return openHeader(bytes, { bucket: at.bucket, key: at.key }, key);
  }

  /** Seal fields under the key they name. */
  async seal(fields: HeaderFields): Promise<Buffer> {
    const key = liveKey(await this.keys.headerSealKey(fields.dataset, fields.version, fields.keyNumber));
    if (dekWiped(fields)) throw new S3Error('ServiceUnavailable', 'Key cache was cleared during the operation; retry.');
    return sealHeader(fields, key);
  }

  /** Seal fields as format 2 under header key `keyNumber` (default: the dataset's active one), as re-wrap and revocation write. */
  async sealAsCurrent(fields: HeaderFields, keyNumber?: number): Promise<Buffer> {
    const n = keyNumber ?? (await this.keys.activeHeaderKeyNumber(fields.dataset));
    return this.seal({ ...fields, version: 2, keyNumber: n });
  }

  /** The plaintext MD5 sealed for the data object's metadata, under the header's key (FORMAT.md 2.5). */
  async sealEtag(h: HeaderFields): Promise<string> {
    const key = liveKey(await this.keys.headerSealKey(h.dataset, h.version, h.keyNumber));
    return sealEtag(key, h, h.oid, h.bucket, h.key, h.checksums.md5!);
  }

  /**
   * A sealed ETag's MD5, or null when the value is not one or does not open for this object. It is sealed under
   * the key of the dataset its header names, which the value does not say: the key's route is tried first, then
   * its ancestors (a prefix dataset created over existing objects). Throws KeyRevoked when no dataset's key opens
   * it and one was refused.
   */
  async openEtag(sealed: string, at: { bucket: string; key: string; oidHex: string }): Promise<string | null> {
    const ref = sealedEtagKey(sealed);
    if (ref === null) return null;
    let refused: Error | undefined;
    for (const dataset of this.keys.datasetAncestry(at.bucket, at.key)) {
      let key: Buffer;
      try {
        key = await this.keys.headerSealKey(dataset, ref.version, ref.keyNumber);
      } catch (e) {
        refused ??= e as Error;
        continue;
      }
      const md5 = openEtag(sealed, key, Buffer.from(at.oidHex, 'hex'), at.bucket, at.key);
      if (md5 !== null) return md5;
    }
    if (refused !== undefined) throw refused;
    return null;
  }
}
