/**
 * A GET through the native data plane (issue #22; src/engine/dataplane.ts, native/dataplane.c), of a whole object
 * or of a plaintext range of it (Range, partNumber): the backend's response body — the sealed chunks planRange names
 * — goes from its socket to the client's socket through the addon's `open` mode on a thread of its own, each 64 KiB
 * chunk verified before its plaintext is written. JavaScript keeps what the Node path does around the bytes: the
 * keys and their checks before any response byte, the prefix check (FORMAT.md 2.1) when the range begins with it,
 * revocation while streaming (2.4), and the accounting.
 *
 * It applies to an encrypted object whose read is at least NATIVE_MIN_BYTES of plaintext and whose backend body is a
 * Content-Length answer on a raw-http keep-alive socket (src/backend/raw-http.ts detachBody); anything else is the
 * Node path (null, the body untouched). The parts the read touches go through one pump each, in order, on the same
 * two sockets: a pump reads exactly the sealed chunks of its part's piece of the read (FORMAT.md 2.2: the part's own
 * DEKs, its number in every chunk's AAD; a range's first chunk may sit inside a block), and writes only the
 * plaintext asked for, so the next starts where it ended.
 *
 * Revocation while streaming: the pump asks JavaScript (`onGate`) at the start of a block whenever gate[0] moved
 * since it last asked. gate[0] is a token of this read, moved whenever the key service's cache generation moved
 * (at once from its invalidate hook — every revocation, on every gateway, clears the caches — and by a 50 ms watch
 * for the moves that clear nothing: the epoch going stale) and again after each answer while a
 * later block of this object is revoked, so the pump asks at every block until it reaches it. An answer rechecks
 * the keys (live-revocation.ts) and refuses a revoked block before any byte of it. The revocation bound inside a
 * block is the pump's own: it reads `keys.freshUntil` (the epoch's confirmed-until time, epoch-watch.ts) before every
 * chunk and, past it, asks onGate as for a moved gate, releasing nothing until a recheck answers — however late this
 * thread's timers run. The 50 ms watch adds a recheck whenever the state is stale (a key change seen mid-block, which
 * moves the gate only for the next block), and a failed one (KeyRevoked, KeyStateStale) stops the pump (control[0])
 * before its next chunk — it writes nothing more, and the client's connection is cut.
 */
import type { Readable } from 'node:stream';
import { S3Error } from '../errors.ts';
import { detachBody, type DetachedBody } from '../backend/raw-http.ts';
import {
  NATIVE_MIN_BYTES,
  answerGate,
  holdSocket,
  nativeDataplane,
  nativeTransfers,
  newGate,
  pump,
  takePumpSlot,
  type PumpError,
} from '../engine/dataplane.ts';
import { CHUNK_SIZE, FormatError, PREFIX_SIZE, cryptoMeter, datasetIdOf, type HeaderFields } from '../engine/index.ts';
import { locateRange } from '../engine/plan.ts';
import { AAD_MAGIC, TAG_SIZE, checkPrefix } from '../format/layout.ts';
import { wipeHeaderKeys } from './header-cache.ts';
import type { LiveRevocation } from './live-revocation.ts';
import type { ObjectStore, StoredObject } from './object-store.ts';

/** How often a running pump's revocation state is looked at (key generation moved, epoch fresh). */
const WATCH_MS = 50;
const MAX_BLOCK = 8 * 1024 * 1024;

/** Per key service, the watches of the pumps running now: one invalidate hook for all (it has no removal). */
const keyWatchers = new WeakMap<ObjectStore['keys'], Set<() => void>>();

function onKeyChange(keys: ObjectStore['keys'], fn: () => void): () => void {
  let set = keyWatchers.get(keys);
  if (!set) {
    const watchers = new Set<() => void>();
    keyWatchers.set(keys, (set = watchers));
    keys.onInvalidate(() => {
      for (const w of watchers) w();
    });
  }
  set.add(fn);
  const s = set;
  return () => void s.delete(fn);
}

/** How a send ended. */
export interface NativeOutcome {
  /** Plaintext bytes written to the client. */
  bytesOut: number;
  /** Why the body stopped short (after the status line: the caller must cut the connection). */
  error?: Error;
  /** The client went away (its socket failed or was destroyed): nothing to report, the connection is cut. */
  clientGone?: boolean;
}

export interface NativeRead {
  /** Plaintext bytes the body has (the response's Content-Length). */
  readonly length: number;
  /** Move the plaintext to `outFd` (a plain TCP socket node no longer writes to until this settles). Once. */
  send(outFd: number, idleMs: number): Promise<NativeOutcome>;
  /** Stop a running send (its client socket is being destroyed): it ends before its next chunk. */
  stop(): void;
  /** Not sent after all: the backend connection is closed and the keys wiped. */
  discard(): void;
}

/** The refusal of a revoked block, as the engine words it (decrypt.ts): which object, which bytes, which dataset. */
function erased(h: HeaderFields, part: number, block: number): FormatError {
  const p = h.parts[part];
  const start = block * h.blockSize;
  const end = Math.min(p.plaintextSize, start + h.blockSize) - 1;
  return new FormatError('DekErased', `block ${block} of part ${p.partNumber ?? part + 1} (plaintext bytes ${start}-${end}) of ${h.bucket}/${h.key} in dataset ${h.dataset} is revoked`);
}

/**
 * One part's piece of a read: plaintext [from, to) within part `part` (an index into the header's parts), read as
 * the sealed chunks holding it (`sealed` bytes).
 */
interface Piece {
  part: number;
  from: number;
  to: number;
  sealed: number;
}

/** The pieces of plaintext [start, endInclusive] in body order (empty parts have none), and what the body holds. */
function piecesOf(h: HeaderFields, start: number, endInclusive: number): { pieces: Piece[]; withPrefix: boolean; bodySize: number } {
  const plan = locateRange(h, start, endInclusive);
  const pieces: Piece[] = [];
  for (let i = plan.from.part; i <= plan.to.part; i++) {
    const p = plan.parts[i];
    if (p.size === 0) continue;
    const from = Math.max(start, p.plainStart) - p.plainStart;
    const to = Math.min(endInclusive + 1, p.plainStart + p.size) - p.plainStart;
    const plain = Math.min(p.size, Math.ceil(to / CHUNK_SIZE) * CHUNK_SIZE) - Math.floor(from / CHUNK_SIZE) * CHUNK_SIZE;
    pieces.push({ part: i, from, to, sealed: plain + TAG_SIZE * Math.ceil(plain / CHUNK_SIZE) });
  }
  return { pieces, withPrefix: plan.withPrefix, bodySize: plan.cipherEnd - plan.cipherStart + 1 };
}

/** The blocks of a piece: first and last index within its part. */
function blocksOf(h: HeaderFields, piece: Piece): [number, number] {
  return [Math.floor(piece.from / h.blockSize), Math.floor((piece.to - 1) / h.blockSize)];
}

/** The first revoked (or erased) block the read touches from (piece, block) on, in body order, or null. */
function firstRevoked(h: HeaderFields, live: LiveRevocation, pieces: Piece[], piece = 0, block = -1): { piece: number; block: number } | null {
  for (let i = piece; i < pieces.length; i++) {
    const p = h.parts[pieces[i].part];
    const [first, last] = blocksOf(h, pieces[i]);
    for (let b = i === piece ? Math.max(first, block) : first; b <= last; b++) {
      if (p.deks[b] == null || live.isRevoked(p.partNumber ?? pieces[i].part + 1, b)) return { piece: i, block: b };
    }
  }
  return null;
}

/** Whether the native path can serve this read at all (before anything is touched). */
function applies(obj: StoredObject, length: number): boolean {
  const h = obj.header;
  return (
    !obj.plaintext &&
    length >= NATIVE_MIN_BYTES &&
    h.chunkSize === CHUNK_SIZE &&
    h.blockSize % CHUNK_SIZE === 0 &&
    h.blockSize > 0 &&
    h.blockSize <= MAX_BLOCK
  );
}

/**
 * Open plaintext [start, endInclusive] of `obj` for the native path, its backend `body` (not read yet) being the
 * sealed bytes planRange names for it (openWhole's whole-object GET, or read()'s ranged one): null when it does not
 * apply (body untouched); throws, before any response byte, what the Node path's open would (a revoked block, a key
 * refused, a prefix that is not this object's), the backend connection then closed.
 */
export async function openNativeRead(store: ObjectStore, obj: StoredObject, body: Readable, start = 0, endInclusive = obj.size - 1): Promise<NativeRead | null> {
  if (!applies(obj, endInclusive - start + 1) || !nativeDataplane()) return null;
  const { pieces, withPrefix, bodySize } = piecesOf(obj.header, start, endInclusive);
  const releaseSlot = takePumpSlot();
  if (!releaseSlot) return null;
  let d: DetachedBody | null;
  try {
    d = await detachBody(body, withPrefix ? PREFIX_SIZE : 0);
  } catch (e) {
    releaseSlot();
    throw e;
  }
  if (!d) {
    releaseSlot();
    return null;
  }
  const detached = d;
  let header: HeaderFields | undefined;
  try {
    const keys = await store.readKeys(obj, body);
    header = keys.header;
    // every block of the read before the status line, as createDecryptStream does: a revoked one is a clean 403
    const revoked = firstRevoked(header, keys.live, pieces);
    if (revoked) throw erased(header, pieces[revoked.piece].part, revoked.block);
    if (withPrefix) checkPrefix(detached.pre.subarray(0, PREFIX_SIZE), header.oid);
    // the pumps read exactly the pieces' sealed bytes (the backend answered the range asked; openWhole and stat
    // checked the header's stored size against the backend's)
    if (detached.pre.length + detached.left !== bodySize) {
      throw new S3Error('IntegrityError', 'The stored object does not have the size its header describes.');
    }
    return new Pump(store, obj, header, keys.live, detached, releaseSlot, pieces, withPrefix, endInclusive - start + 1);
  } catch (e) {
    if (header) wipeHeaderKeys(header);
    detached.abort();
    releaseSlot();
    throw e;
  }
}

class Pump implements NativeRead {
  readonly length: number;
  private readonly control = new Int32Array(1);
  private used = false;
  private clientGone = false;

  constructor(
    private readonly store: ObjectStore,
    private readonly obj: StoredObject,
    private header: HeaderFields,
    private readonly live: LiveRevocation,
    private readonly d: DetachedBody,
    private readonly releaseSlot: () => void,
    private readonly pieces: Piece[],
    private readonly withPrefix: boolean,
    length: number,
  ) {
    this.length = length;
  }

  stop(): void {
    this.clientGone = true;
    Atomics.store(this.control, 0, 1);
  }

  discard(): void {
    if (this.used) return;
    this.used = true;
    wipeHeaderKeys(this.header);
    this.d.abort();
    this.releaseSlot();
  }

  async send(outFd: number, idleMs: number): Promise<NativeOutcome> {
    if (this.used) throw new Error('NativeRead.send called twice');
    this.used = true;
    const { store, live, control, d, pieces } = this;
    const h = this.header;
    const keys = store.keys;
    /** The piece whose pump runs now. */
    let current = 0;
    let failure: Error | undefined;
    const refuse = (e: unknown) => {
      failure ??= e instanceof Error ? e : new S3Error('KeyRevoked');
      Atomics.store(control, 0, 1);
    };
    // gate[0]: this read's token (see the file comment); each pump starts under its value then
    const gate = newGate(0);
    let token = 0;
    const moveGate = () => Atomics.store(gate, 0, ++token);
    let seenGen = keys.cacheGeneration;
    const onGate = (block: number) => {
      const piece = current;
      const part = pieces[piece].part;
      live.recheck().then(
        () => {
          if (live.isRevoked(h.parts[part].partNumber ?? part + 1, block)) {
            failure ??= erased(h, part, block);
            return answerGate(gate, false);
          }
          // a later block of the read is revoked: ask again at the next block's start
          if (firstRevoked(h, live, pieces, piece, block + 1)) moveGate();
          answerGate(gate, true);
        },
        (e: unknown) => {
          failure ??= e instanceof Error ? e : new S3Error('KeyRevoked');
          answerGate(gate, false);
        },
      );
    };
    let checking = false;
    const watch = () => {
      const gen = keys.cacheGeneration;
      if (gen !== seenGen) {
        seenGen = gen;
        moveGate();
      }
      // The bound inside a block: the Node path waits for this recheck before its next buffer; here the pump stops
      // when it fails (KeyRevoked, or KeyStateStale once the epoch could not be confirmed within the bound).
      if (!checking && live.stale()) {
        checking = true;
        live.recheck().then(() => (checking = false), refuse);
      }
    };
    // the DEKs of every piece's part, copied once: the header's are wiped before any byte moves (a part's blocks
    // before the piece's first are zeros: the pump takes the DEKs by block index and never uses those)
    const partDeks = pieces.map((pc) => {
      const ks = h.parts[pc.part].deks;
      const [first, last] = blocksOf(h, pc);
      const out = Buffer.alloc(32 * (last + 1));
      for (let b = first; b <= last; b++) ks[b]!.copy(out, 32 * b);
      return out;
    });
    const aadPrefix = Buffer.concat([AAD_MAGIC, datasetIdOf(h.dataset), h.oid]);
    wipeHeaderKeys(h);
    const timer = setInterval(watch, WATCH_MS);
    timer.unref();
    // a revocation clears the key caches: the gate moves at once, not at the next tick
    const unwatch = onKeyChange(keys, watch);

    const backend = holdSocket(d.socket, () => Atomics.store(control, 0, 1));
    let bytesOut = 0;
    // bytes of the body node had read past the prefix: they go to the pieces they belong to
    let rest = d.pre.subarray(this.withPrefix ? PREFIX_SIZE : 0);
    try {
      for (let i = 0; i < pieces.length; i++) {
        current = i;
        // Before a part's first byte (for part 1, the status line is out): a key change since the keys were taken
        // is checked again, as the Node path's first buffer does; from the last await to the pump's start nothing
        // else runs, so the pump starts under the token that was checked. A refusal here is the answer, as a
        // recheck's is inside a part.
        try {
          while (live.stale()) {
            seenGen = keys.cacheGeneration;
            await live.recheck();
          }
        } catch (e) {
          failure ??= e instanceof Error ? e : new S3Error('KeyRevoked');
          throw failure;
        }
        seenGen = keys.cacheGeneration;
        // Before the first piece no block of the read may be revoked (as before the status line); before a later
        // one, its first block may not, and when a block after that is, the gate moves once the pump started so that
        // it asks at every block until it reaches it (as onGate does inside a part).
        const piece = pieces[i];
        const revoked = firstRevoked(h, live, pieces, i);
        if (revoked && (i === 0 || (revoked.piece === i && revoked.block === blocksOf(h, piece)[0]))) {
          failure ??= erased(h, pieces[revoked.piece].part, revoked.block);
          throw failure;
        }
        const p = h.parts[piece.part];
        const pre = rest.subarray(0, Math.min(rest.length, piece.sealed));
        rest = rest.subarray(pre.length);
        let run: Promise<{ bytesOut: number }>;
        try {
          run = pump({
            inFd: d.fd,
            outFd,
            length: p.plaintextSize,
            from: piece.from,
            to: piece.to,
            mode: 'open',
            deks: partDeks[i],
            aadPrefix,
            partNumber: p.partNumber ?? piece.part + 1,
            blockSize: h.blockSize,
            pre,
            control,
            gate,
            onGate,
            freshUntil: keys.freshUntil,
            idleMs,
          });
        } catch (e) {
          run = Promise.reject(e instanceof Error ? e : new Error(String(e)));
        } finally {
          // the pump copied them: nothing here holds this part's DEKs while its body moves
          partDeks[i].fill(0);
        }
        if (i === 0) nativeTransfers.get++;
        if (revoked) moveGate();
        bytesOut += (await run).bytesOut;
      }
      clearInterval(timer);
      unwatch();
      backend.release();
      if (backend.destroyRequested()) d.abort();
      else d.done();
      cryptoMeter.decrypt += this.length;
      return { bytesOut };
    } catch (e) {
      clearInterval(timer);
      unwatch();
      backend.release();
      d.abort();
      const err = e as PumpError;
      if (typeof err.bytesOut === 'number') bytesOut += err.bytesOut;
      if (failure) return { bytesOut, error: failure };
      if (this.clientGone || err.code === 'EPIPE') return { bytesOut, clientGone: true };
      return { bytesOut, error: this.pumpError(err, pieces[current]?.part ?? 0) };
    } finally {
      for (const k of partDeks) k.fill(0);
      this.releaseSlot();
    }
  }

  /** The pump's own failure in the engine's words (integrity failures are counted by reason as on the Node path). */
  private pumpError(e: PumpError, part: number): Error {
    const h = this.header;
    switch (e.code) {
      case 'ChunkAuthFailed': {
        const perBlock = h.blockSize / CHUNK_SIZE;
        const chunk = e.chunk ?? 0;
        return new FormatError('ChunkAuthFailed', `part ${h.parts[part].partNumber ?? part + 1} block ${Math.floor(chunk / perBlock)} chunk ${chunk % perBlock} failed authentication`);
      }
      case 'UnexpectedEOF':
      case 'TrailingData':
        return new FormatError(e.code, `${e.message} (${this.obj.bucket}/${this.obj.key})`);
      case 'ETIMEDOUT':
        return new S3Error('RequestTimeout', `the transfer made no progress: ${e.message}`);
      default:
        return new S3Error('InternalError', `native data plane: ${e.code ?? 'Error'}: ${e.message}`, {}, { cause: e });
    }
  }
}
