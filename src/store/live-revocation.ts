/**
 * Revocation state of one object read, kept current while its plaintext streams (issue #16).
 *
 * A read checks its keys when it opens: the header's key chain (header key -> KEK version -> CMK version) and the
 * dataset's DEK revocation list. A read that is still streaming when a revocation lands must stop as a new request
 * would be refused: within the 1 s the epoch poll gives (docs/DESIGN.md, "Caches"). Every cache clear bumps the
 * key service's `cacheGeneration` — on every gateway, since each one clears when it sees the keystore epoch move —
 * so the decrypt stream compares that integer once per input buffer (`stale`), and only when it moved awaits
 * `recheck`: the key chain of this header validated again as opening it does, and the revocation list read again.
 * A revoked KEK or header key, a disabled or destroyed CMK version, or a backend failure during the recheck
 * (fail closed) rejects, and the stream errors — the response is aborted like an integrity failure after the
 * status line. An unrelated change (a rotation, another dataset's revocation) passes the recheck and the stream
 * goes on.
 *
 * The stream holds its own copy of the DEKs (cloneHeaderKeys): a recheck needs none of them, only the header's
 * fixed fields, so the cache clear that wipes the cached header does not matter here.
 */
import { isS3Error } from '../errors.ts';
import type { HeaderFields } from '../engine/index.ts';
import type { LiveCheck } from '../engine/decrypt.ts';
import type { Backend } from '../backend/types.ts';
import type { KeyService } from '../keys/service.ts';
import { wipeHeaderKeys } from './header-cache.ts';
import type { HeaderDoor } from './header-door.ts';
import { loadHeaderBytes } from './inline-header.ts';

/** What a recheck needs of the object store: where the object's current header lives. */
export interface HeaderLocator {
  readonly backend: Backend;
  readonly metaBucket: string;
  readonly door: HeaderDoor;
  headerPath(bucket: string, key: string, oidHex: string): string;
}

type Ref = Pick<HeaderFields, 'dataset' | 'version' | 'keyNumber' | 'oid' | 'bucket' | 'key'>;

/**
 * After an epoch change every stream in flight rechecks at once: one key-chain validation per (generation, key)
 * however many streams share it, not one keystore read each.
 */
const chainChecks = new WeakMap<KeyService, Map<string, Promise<void>>>();

function keyChain(keys: KeyService, r: Ref): Promise<void> {
  let m = chainChecks.get(keys);
  if (!m) chainChecks.set(keys, (m = new Map<string, Promise<void>>()));
  const id = `${keys.cacheGeneration}\u0000${r.dataset}\u0000${r.version}\u0000${r.keyNumber}`;
  let p = m.get(id);
  if (!p) {
    // After the clear the key service reads the record again and unwraps again through the CMK: a revoked or
    // destroyed KEK version, a retired header key or a disabled CMK version throws KeyRevoked here.
    p = keys.headerSealKey(r.dataset, r.version, r.keyNumber).then(() => undefined);
    const map = m;
    const done = () => void map.delete(id);
    p.then(done, done);
    m.set(id, p);
  }
  return p;
}

/**
 * The header key this read opened with was refused: a re-key may have resealed the object's header under a fresh
 * key and retired the old one. A new request would open that current header (same oid, same DEKs): when it opens
 * under a usable key, the read may go on. Anything else (no header, another object, a key refused as well) means
 * a new request would be refused too.
 */
async function currentHeaderOpens(store: HeaderLocator, r: Ref): Promise<boolean> {
  const oidHex = r.oid.toString('hex');
  let data: Buffer;
  try {
    // the meta bucket's header of this oid, or the data object's inline one (inline-header.ts)
    ({ data } = await loadHeaderBytes(store, r.bucket, r.key, oidHex));
  } catch (e) {
    if (isS3Error(e, 'NoSuchKey')) return false;
    throw e;
  }
  const peek = store.door.peek(data);
  if (peek.version === r.version && peek.keyNumber === r.keyNumber) return false; // the key just refused
  let fields;
  try {
    // another dataset or another object (same path, other oid) is not this read's object any more
    fields = await store.door.open(data, { bucket: r.bucket, key: r.key, dataset: r.dataset, oidHex });
  } catch (e) {
    if (isS3Error(e, 'IntegrityError')) return false;
    throw e;
  }
  wipeHeaderKeys(fields);
  return true;
}

export class LiveRevocation implements LiveCheck {
  private seen: number;
  private pred: (part: number, block: number) => boolean = () => false;
  private readonly ref: Ref;
  private readonly oidHex: string;
  /** The predicate for the decrypt stream: always the latest list this read fetched. */
  readonly isRevoked = (part: number, block: number): boolean => this.pred(part, block);

  private constructor(
    private readonly keys: KeyService,
    private readonly store: HeaderLocator,
    h: HeaderFields,
    since: number,
  ) {
    // Only the fixed fields: the DEKs stay with the stream's own copy of the header.
    this.ref = { dataset: h.dataset, version: h.version, keyNumber: h.keyNumber, oid: h.oid, bucket: h.bucket, key: h.key };
    this.oidHex = h.oid.toString('hex');
    this.seen = since;
  }

  /**
   * `since`: the key service's generation when the caller took its header (opened, or cloned from the cache, which
   * a clear would have wiped): any clear after it makes the first input buffer wait for a recheck.
   */
  static async open(keys: KeyService, store: HeaderLocator, h: HeaderFields, since: number): Promise<LiveRevocation> {
    const live = new LiveRevocation(keys, store, h, since);
    live.pred = await keys.revocationCheck(h.dataset, live.oidHex);
    return live;
  }

  /** Per input buffer: a key change seen, or the revocation state not confirmed within the bound (epoch-watch.ts). */
  stale(): boolean {
    return this.keys.cacheGeneration !== this.seen || !this.keys.epochFresh();
  }

  async recheck(): Promise<void> {
    // Taken first: a clear during the recheck leaves the stream stale, so the next buffer checks again.
    const gen = this.keys.cacheGeneration;
    try {
      await keyChain(this.keys, this.ref);
    } catch (e) {
      if (!isS3Error(e, 'KeyRevoked') || !(await currentHeaderOpens(this.store, this.ref))) throw e;
    }
    this.pred = await this.keys.revocationCheck(this.ref.dataset, this.oidHex);
    this.seen = gen;
  }
}
