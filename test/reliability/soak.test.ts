/**
 * CI soak: 20 s of scripts/soak.ts (32 concurrent clients, mixed operations, KEK rotation + re-wrap mid-run).
 * Zero failed requests, zero mismatches, bounded RSS growth in the second half. Local: `npx tsx scripts/soak.ts --duration 60`.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runSoak } from '../../scripts/soak.ts';
import { makeTmpDir } from '../../tools/tmp.ts';

describe('soak', () => {
  it('32 clients for 20 s with a rotation + re-wrap: no failures, no mismatches, bounded memory', async () => {
    const out = process.env.LAKECRYPT_SOAK_OUT ?? path.join(makeTmpDir('lakecrypt-soak-out-').path, 'soak.json');
    const r = await runSoak({ durationSec: 20, clients: 32, backend: 'fs', out, log: () => {} });
    console.log(`[soak] ${r.requests} requests ${JSON.stringify(r.byOp)}; failed ${r.failed}; mismatches ${r.mismatches}; rotation ${JSON.stringify(r.rotation)}`);
    console.log(`[soak] RSS MiB per second: ${r.rssMiB.join(' ')}`);
    expect(r.failures).toEqual([]);
    expect(r.failed).toBe(0);
    expect(r.mismatches).toBe(0);
    expect(r.rotation).not.toBeNull();
    // every kind of operation ran (how many depends on how busy the machine is: not asserted)
    for (const op of ['PUT', 'GET', 'RANGE', 'LIST', 'DELETE']) expect(r.byOp[op] ?? 0, op).toBeGreaterThan(0);
    expect(r.rssGrowthSecondHalfMiB).toBeLessThan(100);
  }, 120_000);
});
