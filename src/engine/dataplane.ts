/**
 * The native data plane (native/dataplane.c, issue #22), typed and loaded for the gateway: a thread of its own
 * moves a body between two socket file descriptors with AES-256-GCM per 64 KiB chunk (docs/FORMAT.md 2.2), while
 * JavaScript keeps HTTP, auth, keys and policy. The C file's top comment says what each mode does.
 *
 * Loading never throws: `nativeDataplane()` is the addon, or null when it is not built (scripts/build-native.mjs
 * needs gcc and node's headers), the platform is not Linux, or loading failed (`dataplaneUnavailable()` says why).
 * The gateway never compiles at run time: the build (scripts/build.mjs) or the test setup does.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type net from 'node:net';
import { fileURLToPath } from 'node:url';
import { nativeTransfers } from '../ops/metrics.ts';

export { nativeTransfers };

export type PumpMode = 'pass' | 'aes-pass' | 'seal' | 'open';

export interface PumpOptions {
  inFd: number;
  outFd: number;
  /** Plaintext bytes of the part (seal/open), input bytes (pass modes), or -1: until end of file (pass modes). */
  length: number;
  /**
   * A ranged open: the plaintext offsets within the part to write, 0 <= from < to <= length (default the whole
   * part). The input is then exactly the sealed chunks holding [from, to), from the chunk holding `from` on.
   */
  from?: number;
  to?: number;
  mode: PumpMode;
  /** aes-pass (the benchmark floor's mode): 32 bytes. */
  key?: Buffer;
  /** shutdown(outFd, SHUT_WR) when done: a relay's half close (bench/lib/native-relay.ts). */
  shutdown?: boolean;
  /** Bytes per read from inFd, 4 KiB to 1 MiB (default 1 MiB, seal 256 KiB: native/dataplane.c's top comment). */
  readSize?: number;
  /** seal/open: 32 bytes per block of the part, block 0 first (copied by the call: the caller may wipe it after). */
  deks?: Buffer;
  /** seal/open: "LKC1" || datasetId(32) || oid(16). */
  aadPrefix?: Buffer;
  partNumber?: number;
  /** Plaintext bytes per block (a multiple of 64 KiB up to 8 MiB). */
  blockSize?: number;
  /** Input bytes already read from inFd's stream: taken before reading inFd. */
  pre?: Buffer;
  /** control[0] set to non-zero stops the pump (code Stopped) before its next chunk or during a wait. */
  control?: Int32Array;
  /**
   * gate[0] is compared, at each block's start, with its value when the pump started (or last answered): when it
   * differs, the thread writes out what is verified, calls onGate(block, value) and waits, releasing nothing of
   * that block, until answerGate(gate, ok): go on (under that value), or stop with code KeyRevoked.
   */
  gate?: Int32Array;
  onGate?: (block: number, generation: number) => void;
  /**
   * open, with gate: freshUntil[0] is the CLOCK_MONOTONIC time in ns (process.hrtime.bigint()) up to which the key
   * state is confirmed; before each chunk past it, the thread asks onGate as for a moved gate (the revocation bound
   * inside a block, whatever the JavaScript thread's timers do).
   */
  freshUntil?: BigInt64Array;
  /** A wait for either side longer than this fails with ETIMEDOUT (0: none). */
  idleMs?: number;
  /**
   * seal: what the plaintext must hash to — SHA-256 (32 bytes) and CRC-32 (only when the addon's CRC32 is true) —
   * checked before the last chunk is written: a mismatch ends the pump (code XAmzContentSHA256Mismatch or BadDigest)
   * with that chunk unwritten.
   */
  sha256?: Buffer;
  /** seal: a Content-MD5 (16 bytes), checked the same way (code BadContentMD5). */
  md5?: Buffer;
  crc32?: number;
  /**
   * seal: the input is an aws-chunked body (STREAMING-UNSIGNED-PAYLOAD-TRAILER) of `inputLength` bytes whose chunks'
   * data are the `length` bytes of plaintext; its x-amz-checksum-crc32 trailer, if any, is checked before the last
   * chunk is written (native/dataplane.c's top comment). Needs CRC32.
   */
  awsChunked?: boolean;
  inputLength?: number;
  /**
   * seal, awsChunked, instead of inputLength: the aws-chunked body comes in HTTP chunked transfer coding (the
   * JavaScript SDK's stream uploads), from its first byte (`pre` then holds raw bytes of it, as on the wire); its end
   * is that framing's, and the pump reads no byte past it (native/http-chunked.c).
   */
  httpChunked?: boolean;
  /**
   * seal of an aws-chunked body with signed chunks (STREAMING-AWS4-HMAC-SHA256-PAYLOAD): the request's SigV4 signing
   * key (32 bytes), its signature (the chain's seed, 64 hex characters) and `${amzDate}\n${scope}`; every chunk's
   * signature is checked (code SignatureDoesNotMatch; native/aws-chunked.c). The key is copied and wiped by the pump.
   */
  chunkKey?: Buffer;
  chunkSeed?: Buffer;
  chunkDateScope?: Buffer;
  /**
   * seal of signed chunks followed by a signed trailer (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER): the trailer's
   * x-amz-trailer-signature (code SignatureDoesNotMatch) and its x-amz-checksum-crc32 (BadDigest) are checked.
   */
  signedTrailer?: boolean;
}

export interface PumpResult {
  bytesIn: number;
  bytesOut: number;
  /** seal with crc32 or awsChunked: the plaintext's CRC-32. */
  crc32?: number;
}
export interface PumpError extends Error {
  code: string;
  bytesIn: number;
  bytesOut: number;
  /** The chunk (within the part) that failed authentication. */
  chunk?: number;
}

export interface Addon {
  pump(o: PumpOptions, cb: (err: PumpError | undefined, r: PumpResult) => void): void;
  /** malloc_trim(0): freed allocator pages back to the system; true when some were (src/ops/memory-trim.ts). */
  trim(): boolean;
  /**
   * V8's memory-reducing full collections (native/heap.cc): unlike global.gc() they also release the young
   * generation's idle semi-space and V8's pooled pages. False when the addon was built without a C++ compiler (nothing was done). The
   * JavaScript thread only.
   */
  lowMemory(): boolean;
  CHUNK: number;
  /** The pump can check CRC-32 (node exports its zlib's crc32). */
  CRC32: boolean;
  /** The pump checks signed aws-chunks (chunkKey): true in every build the loader accepts. */
  SIGNED_CHUNKS: boolean;
  /** The pump honours freshUntil: true in every build the loader accepts. */
  FRESH_UNTIL: boolean;
  /** The pump reads aws-chunks inside HTTP chunked transfer coding (httpChunked): true in every build the loader accepts. */
  HTTP_CHUNKED: boolean;
  /** The pump checks a signed trailer (signedTrailer): true in every build the loader accepts. */
  SIGNED_TRAILER: boolean;
}

/** Objects smaller than this stay on the Node path: the fd handoff costs more than it saves on a small body. */
export const NATIVE_MIN_BYTES = 1024 * 1024;

/**
 * Pumps running at once. Each is a thread with about 2 MiB of buffers: past this many, requests take the Node path
 * (bounded memory and threads however many connections are open).
 */
export const MAX_PUMPS = 32;

const ADDON_URL = new URL('../../native/build/dataplane.node', import.meta.url);
let addon: Addon | null | undefined;
let whyNot = '';

/** The addon, or null (see dataplaneUnavailable()). Loaded once; never throws. */
export function nativeDataplane(): Addon | null {
  if (addon !== undefined) return addon;
  addon = null;
  const file = fileURLToPath(ADDON_URL);
  if (process.platform !== 'linux') whyNot = `the native data plane runs on Linux only (this is ${process.platform})`;
  else if (!existsSync(file)) whyNot = `${file} is not built (node scripts/build-native.mjs: needs gcc and node's headers)`;
  else {
    try {
      const a = createRequire(import.meta.url)(file) as Addon;
      if (typeof a?.pump !== 'function') throw new Error('no pump() export');
      // built from an older native/dataplane.c (scripts/build-native.mjs remakes it when the source changed)
      if (typeof a.trim !== 'function' || typeof a.lowMemory !== 'function') throw new Error('no trim() or lowMemory() export: a stale build (npm run build)');
      // an older pump would ignore chunkKey and check no chunk signature: never hand it a signed body
      if (a.SIGNED_CHUNKS !== true) throw new Error('no SIGNED_CHUNKS: a stale build (npm run build)');
      // ... and would ignore freshUntil, streaming past the revocation bound when the JavaScript thread runs late
      if (a.FRESH_UNTIL !== true) throw new Error('no FRESH_UNTIL: a stale build (npm run build)');
      if (a.HTTP_CHUNKED !== true) throw new Error('no HTTP_CHUNKED: a stale build (npm run build)');
      if (a.SIGNED_TRAILER !== true) throw new Error('no SIGNED_TRAILER: a stale build (npm run build)');
      addon = a;
    } catch (e) {
      whyNot = `${file} did not load: ${e instanceof Error ? e.message : String(e)}`;
    }
  }
  return addon;
}

/** Why nativeDataplane() is null ('' when it loaded or was not asked yet). */
export function dataplaneUnavailable(): string {
  return whyNot;
}

let running = 0;

/** Pumps holding a place now (each released when its pump ended, or when it was never started). */
export function pumpsRunning(): number {
  return running;
}

/** A place for one more pump (release it when the pump ended), or null when MAX_PUMPS already run. */
export function takePumpSlot(): (() => void) | null {
  if (running >= MAX_PUMPS) return null;
  running++;
  let held = true;
  return () => {
    if (held) running--;
    held = false;
  };
}

/** Run one pump; resolves with its result or rejects with its PumpError. The addon must be loaded. */
export function pump(o: PumpOptions): Promise<PumpResult> {
  const a = nativeDataplane();
  if (!a) return Promise.reject(new Error(`native data plane unavailable: ${whyNot}`));
  return new Promise((resolve, reject) => a.pump(o, (err, r) => (err ? reject(err) : resolve(r))));
}

/** A gate of three: [0] the value the pump compares, [2] the answer slot. */
export function newGate(value = 0): Int32Array {
  const g = new Int32Array(3);
  g[0] = value;
  return g;
}

/** The answer to an onGate call: the pump goes on or stops with KeyRevoked. */
export function answerGate(gate: Int32Array, ok: boolean): void {
  Atomics.store(gate, 2, ok ? 1 : -1);
}

/** The fd under a plain TCP net.Socket (libuv's handle), or -1 (no handle, or a TLS socket whose bytes are not the fd's). */
export function fdOf(socket: net.Socket): number {
  if ((socket as { encrypted?: boolean }).encrypted) return -1;
  const fd = (socket as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

/**
 * Keep a socket's fd open while a pump thread uses it. Closing it under the thread could hand the number to a new
 * connection the thread would then write to. While held, `socket.destroy()` (a client reset seen by node, a
 * server time-out or shutdown, a failed backend socket) only records the request and calls `onDestroy` (which
 * stops the pump); `release()` puts destroy back and performs a destroy requested meanwhile. Node's socket
 * time-out is off while held: no JavaScript moves the bytes, so it would fire on a healthy transfer (the pump has
 * its own idle limit).
 */
export function holdSocket(socket: net.Socket, onDestroy: () => void): { release(): void; destroyRequested(): boolean } {
  const s = socket as net.Socket & { timeout?: number };
  const timeout = s.timeout ?? 0;
  if (timeout > 0) s.setTimeout(0);
  let requested: { err?: Error } | null = null;
  s.destroy = function (this: net.Socket, err?: Error) {
    requested ??= { err };
    onDestroy();
    return this;
  };
  let released = false;
  return {
    destroyRequested: () => requested !== null,
    release() {
      if (released) return;
      released = true;
      delete (s as { destroy?: unknown }).destroy; // the prototype's destroy again
      if (requested) s.destroy(requested.err);
      else if (timeout > 0) s.setTimeout(timeout);
    },
  };
}
