import { createHash } from 'node:crypto';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, expect, it } from 'vitest';
import {
  DEFAULT_BLOCK_SIZE, blockCount, closeCryptoPool, createDecryptStream, createEncryptStream, newDeks, type HeaderFields,
} from '../../src/engine/index.ts';

afterAll(() => closeCryptoPool());
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

it('2 GiB streams through encrypt (pool) and decrypt (inline) with bounded memory', { timeout: 180_000 }, async () => {
  const size = 2 * GiB;
  const oid = Buffer.alloc(16, 5);
  const deks = newDeks(blockCount(size, DEFAULT_BLOCK_SIZE));
  const h: HeaderFields = { version: 2, dataset: 'big', keyNumber: 1, oid, bucket: 'b', key: 'k', state: 'final', createdAt: 0, blockSize: DEFAULT_BLOCK_SIZE, chunkSize: 65536, parts: [{ plaintextSize: size, deks }], meta: { user: {} }, checksums: {} };
  const base = Buffer.alloc(MiB, 0xa5);
  let made = 0;
  let quarterRss = 0;
  const src = new Readable({
    read() {
      if (made === size) return void this.push(null);
      const b = Buffer.from(base);
      b.writeUInt32BE(made / MiB, 0); // every MiB differs: reorder would change the hash
      made += MiB;
      if (made === size / 4) quarterRss = process.memoryUsage().rss;
      this.push(b);
    },
  });
  const inHash = createHash('sha256');
  const outHash = createHash('sha256');
  let outBytes = 0;
  const tap = new PassThrough();
  tap.on('data', (b: Buffer) => inHash.update(b));
  const sink = new Writable({ write(c: Buffer, _e, cb) { outHash.update(c); outBytes += c.length; cb(); } });
  // Start the worker threads first: their fixed cost is not growth.
  const warm = 16 * MiB;
  await pipeline(Readable.from([Buffer.alloc(warm)]), createEncryptStream({ dataset: 'big', oid, partNumber: 1, plaintextSize: warm, blockSize: DEFAULT_BLOCK_SIZE, deks: newDeks(2), withPrefix: true, threads: 2 }), new Writable({ write(_c, _e, cb) { cb(); } }));
  const start = process.memoryUsage();
  let peakRss = start.rss;
  let peakHeap = start.heapUsed + start.arrayBuffers;
  const timer = setInterval(() => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeap = Math.max(peakHeap, m.heapUsed + m.arrayBuffers);
  }, 100);
  try {
    await pipeline(
      src, tap,
      createEncryptStream({ dataset: 'big', oid, partNumber: 1, plaintextSize: size, blockSize: DEFAULT_BLOCK_SIZE, deks, withPrefix: true, threads: 2 }),
      createDecryptStream({ header: h, start: 0, endInclusive: size - 1, threads: 0 }),
      sink,
    );
  } finally {
    clearInterval(timer);
  }
  console.info(`2 GiB: heap+arrayBuffers growth ${((peakHeap - start.heapUsed - start.arrayBuffers) / MiB).toFixed(1)} MiB, RSS growth ${((peakRss - start.rss) / MiB).toFixed(1)} MiB (after 1/4: ${((peakRss - quarterRss) / MiB).toFixed(1)} MiB)`);
  expect(outBytes).toBe(size);
  expect(outHash.digest('hex')).toBe(inHash.digest('hex'));
  expect(peakHeap - (start.heapUsed + start.arrayBuffers)).toBeLessThan(64 * MiB);
  // RSS also holds malloc arenas of the worker threads (freed 1 MiB batches kept for reuse): bounded, and not
  // growing with the stream length (the last 3/4 of the stream add less than 32 MiB).
  expect(peakRss - start.rss).toBeLessThan(160 * MiB);
  expect(peakRss - quarterRss).toBeLessThan(32 * MiB);
});
