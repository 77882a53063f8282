/**
 * The native data plane (native/dataplane.c), typed and loaded: built first when stale (scripts/build-native.mjs).
 * See the C file's comment for what each mode does; in short, a thread moves `length` bytes from inFd to outFd
 * with AES-256-GCM per 64 KiB chunk, and the callback says how many bytes went each way.
 */
import { createRequire } from 'node:module';
import type net from 'node:net';
import { buildNative } from '../../scripts/build-native.mjs';

export type PumpMode = 'pass' | 'aes-pass' | 'seal' | 'open';

export interface PumpOptions {
  inFd: number;
  outFd: number;
  /** Plaintext bytes of the part (seal/open), input bytes (pass modes), or -1: until end of file (pass modes). */
  length: number;
  mode: PumpMode;
  /** aes-pass: 32 bytes. */
  key?: Buffer;
  /** seal/open: 32 bytes per block of the part, block 0 first. */
  deks?: Buffer;
  /** seal/open: "LKC1" || datasetId(32) || oid(16). */
  aadPrefix?: Buffer;
  partNumber?: number;
  /** Plaintext bytes per block (a multiple of 64 KiB up to 8 MiB; default 8 MiB). */
  blockSize?: number;
  /** Input bytes already read from inFd's stream: taken before reading inFd. */
  pre?: Buffer;
  /** shutdown(outFd, SHUT_WR) when done: a relay's half close. */
  shutdown?: boolean;
  /** control[0] set to non-zero stops the pump (code Stopped) before its next chunk or during a wait. */
  control?: Int32Array;
  /**
   * Revocation between blocks: gate[0] is kept equal to the key service's cache generation by the caller; when it
   * differs, at the start of a block, from the value it had when the pump was called, the thread writes out what is
   * verified, calls onGate(block, generation) and waits, releasing nothing of that block, until the caller answers
   * with answerGate(gate, ok): go on under that generation, or stop with code KeyRevoked.
   */
  gate?: Int32Array;
  onGate?: (block: number, generation: number) => void;
  /** Bytes asked of one read of inFd (4 KiB to 1 MiB, default 256 KiB): smaller reads start the output sooner. */
  readSize?: number;
  /** A wait for either side longer than this fails with ETIMEDOUT (default 120 s; 0: none). */
  idleMs?: number;
}

export interface PumpResult { bytesIn: number; bytesOut: number }
export interface PumpError extends Error { code: string; bytesIn: number; bytesOut: number; chunk?: number }

interface Addon {
  pump(o: PumpOptions, cb: (err: PumpError | undefined, r: PumpResult) => void): void;
  CHUNK: number;
}

let addon: Addon | undefined;

export function loadDataplane(): Addon {
  addon ??= createRequire(import.meta.url)(buildNative({ quiet: true })) as Addon;
  return addon;
}

export function pump(o: PumpOptions): Promise<PumpResult> {
  const a = loadDataplane();
  return new Promise((resolve, reject) => a.pump(o, (err, r) => (err ? reject(err) : resolve(r))));
}

/** A gate of three: [0] the generation, [2] the answer slot. */
export function newGate(generation = 0): Int32Array {
  const g = new Int32Array(3);
  g[0] = generation;
  return g;
}

/** The answer to an onGate call: the pump goes on (under the generation it asked about) or stops with KeyRevoked. */
export function answerGate(gate: Int32Array, ok: boolean): void {
  Atomics.store(gate, 2, ok ? 1 : -1);
}

/** The fd under a net.Socket (libuv's TCP handle; -1 when it has none). */
export function fdOf(socket: net.Socket): number {
  return (socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
}
