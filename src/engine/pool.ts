import { createRequire } from 'node:module';
import type { Piscina } from 'piscina';
import { defaultOf } from '../ops/config.ts';
import { openBatch, sealBatch, type BatchTask, type OpenResult } from '../../workers/crypto-core.mjs';

/** Chunks per task: 16 x 64 KiB = 1 MiB, large enough to amortise a thread hop (bench/crypto.ts). */
export const BATCH_CHUNKS = 16;
/**
 * Streams smaller than this run inline even when a pool is configured: a thread hop costs more than it saves
 * for a few chunks (bench/results/crypto.md).
 */
export const POOL_MIN_BYTES = 4 * 1024 * 1024;

export type Op = 'seal' | 'open';

let pool: Piscina | null = null;
let poolThreads = 0;

/**
 * The cryptoThreads setting: 0 = inline (the default). On the 2-core reference machine inline beat the pool at
 * every size (bench/results/crypto.md: 1107 vs 456 MiB/s encrypt, 1043 vs 909 MiB/s decrypt); set it > 0 only
 * after bench/crypto.ts shows a gain on more cores. Streams below POOL_MIN_BYTES stay inline regardless.
 * Set once by the process that loaded the configuration (main.ts); streams may also name their own count.
 */
let threadsSetting: number = defaultOf('cryptoThreads');

export function setCryptoThreads(n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > 64) throw new RangeError(`cryptoThreads must be an integer 0..64, got ${n}`);
  threadsSetting = n;
}

export function configuredThreads(): number {
  return threadsSetting;
}

function getPool(threads: number): Piscina {
  if (pool && poolThreads === threads) return pool;
  if (pool) void pool.destroy();
  // piscina is loaded on first use: with cryptoThreads 0 (the default) no pool is ever made, and its memory is not paid
  const { Piscina: PoolClass } = createRequire(import.meta.url)('piscina') as { Piscina: typeof Piscina };
  pool = new PoolClass({
    filename: new URL('../../workers/crypto-worker.mjs', import.meta.url).href,
    minThreads: threads,
    maxThreads: threads,
    idleTimeout: 30_000,
  });
  poolThreads = threads;
  return pool;
}

export async function closeCryptoPool(): Promise<void> {
  const p = pool;
  pool = null;
  poolThreads = 0;
  if (p) await p.destroy();
}

/** Runs one batch, in this thread (threads = 0) or in the pool. The task's data buffer is transferred. */
export function runBatch(op: Op, task: BatchTask, threads: number): Promise<OpenResult> | OpenResult {
  if (threads === 0) return op === 'seal' ? { data: sealBatch(task), ok: task.count, failed: false } : openBatch(task);
  const key = new Uint8Array(task.key); // own 32-byte buffer: never clone a pooled slab next to other secrets
  const data = task.data;
  const own = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
  const payload = own ? data : new Uint8Array(data); // transfer needs a buffer of its own
  return getPool(threads).run(
    { op, key, aad: task.aad, firstChunk: task.firstChunk, count: task.count, lastLen: task.lastLen, final: task.final, data: payload },
    { transferList: [key.buffer, payload.buffer as ArrayBuffer] },
  ).then((r: { data: Uint8Array; ok: number; failed: boolean }) => ({
    data: Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength),
    ok: r.ok,
    failed: r.failed,
  }));
}
