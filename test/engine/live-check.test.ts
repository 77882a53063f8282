/**
 * The decrypt streams' live key check (issue #16): a revocation that lands while a stream runs stops it before
 * any byte it covers, inline (chunk-stream.ts) and through the pool (batch-stream.ts); an unrelated change does not.
 */
import { buffer } from 'node:stream/consumers';
import { afterAll, describe, expect, it } from 'vitest';
import { closeCryptoPool, createDecryptStream, isFormatError, planRange } from '../../src/engine/index.ts';
import type { LiveCheck } from '../../src/engine/decrypt.ts';
import { S3Error } from '../../src/errors.ts';
import { FormatError } from '../../src/format/errors.ts';
import { C, encryptObject, pieces } from './helpers.ts';

afterAll(() => closeCryptoPool());

const B = 4 * C; // 256 KiB blocks
const BLOCKS = 8;
const PIECE = 77_777;

/** A check that turns stale at its `after`-th call (once per input buffer); `recheck` runs `onRecheck` then. */
function flipAt(after: number, onRecheck: () => void): LiveCheck & { calls: number; rechecks: number } {
  let gen = 0;
  let seen = 0;
  const c = {
    calls: 0,
    rechecks: 0,
    stale() {
      if (++c.calls === after) gen++;
      return gen !== seen;
    },
    async recheck() {
      c.rechecks++;
      await new Promise((r) => setTimeout(r, 5));
      onRecheck();
      seen = gen;
    },
  };
  return c;
}

async function run(o: Awaited<ReturnType<typeof encryptObject>>, threads: number, live: LiveCheck, isRevoked: (p: number, b: number) => boolean) {
  const got: Buffer[] = [];
  const end = o.pt.length - 1;
  const r = planRange(o.h, 0, end);
  const dec = createDecryptStream({ header: o.h, start: 0, endInclusive: end, threads, isRevoked, live });
  dec.on('data', (b: Buffer) => got.push(b));
  try {
    await buffer(pieces(o.ct.subarray(r.cipherStart, r.cipherEnd + 1), PIECE).pipe(dec));
    return { out: Buffer.concat(got) };
  } catch (err) {
    return { out: Buffer.concat(got), err };
  }
}

describe.each([0, 2])('live key check (threads %i)', async (threads) => {
  const o = await encryptObject([BLOCKS * B], B);
  const FLIP = 6; // stale from the 6th input buffer on: 5 buffers (< 2 blocks of ciphertext) were consumed before

  it('a block revoked ahead of the reader: DekErased before any byte of it', async () => {
    const revoked = new Set<number>();
    const live = flipAt(FLIP, () => revoked.add(5));
    const { out, err } = await run(o, threads, live, (_p, b) => revoked.has(b));
    expect(isFormatError(err) && err.reason).toBe('DekErased');
    expect(live.rechecks).toBe(1);
    expect(out.length).toBeLessThanOrEqual(5 * B);
    expect(out.length).toBeGreaterThan((FLIP - 1) * PIECE - 2 * B); // it did go on up to the revoked block
    expect(out.equals(o.pt.subarray(0, out.length))).toBe(true);
  });

  it('the block in progress revoked: nothing past the input consumed before the change', async () => {
    const revoked = new Set<number>();
    // the 6th buffer starts at 5 * PIECE = 388,885 (sealed), inside block 1
    const live = flipAt(FLIP, () => revoked.add(1));
    const { out, err } = await run(o, threads, live, (_p, b) => revoked.has(b));
    expect(isFormatError(err) && err.reason).toBe('DekErased');
    expect(out.length).toBeLessThanOrEqual((FLIP - 1) * PIECE);
    expect(out.equals(o.pt.subarray(0, out.length))).toBe(true);
  });

  it('a recheck that throws (KEK or CMK version revoked, backend down) ends the stream with its error', async () => {
    const live = flipAt(FLIP, () => {
      throw new S3Error('KeyRevoked', 'key version 1 is revoked');
    });
    const { out, err } = await run(o, threads, live, () => false);
    expect((err as S3Error).code).toBe('KeyRevoked');
    expect(out.length).toBeLessThanOrEqual((FLIP - 1) * PIECE);
    expect(out.equals(o.pt.subarray(0, out.length))).toBe(true);
  });

  it('an unrelated change (the recheck passes, nothing revoked): the whole object, one recheck', async () => {
    const live = flipAt(FLIP, () => {});
    const { out, err } = await run(o, threads, live, () => false);
    expect(err).toBeUndefined();
    expect(live.rechecks).toBe(1);
    expect(live.calls).toBeGreaterThan(FLIP);
    expect(out.equals(o.pt)).toBe(true);
  });

  it('a DEK erased error thrown by the recheck itself is passed on as it is', async () => {
    const live = flipAt(2, () => {
      throw new FormatError('DekErased', 'erased');
    });
    const { out, err } = await run(o, threads, live, () => false);
    expect(isFormatError(err) && err.reason).toBe('DekErased');
    expect(out.length).toBeLessThanOrEqual(PIECE);
  });
});
