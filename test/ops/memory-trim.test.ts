/**
 * Giving freed memory back after bursts (src/ops/memory-trim.ts, the addon's trim()): the allocator really returns
 * pages a plain free() kept (in a child process, RSS before and after), the schedule trims only after activity
 * and, under traffic, only when idle or once per busy period, and a running gateway trims after its requests end.
 * Every launcher passes the same node flags (the young generation's cap).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { nativeDataplane } from '../../src/engine/dataplane.ts';
import { MemoryTrim } from '../../src/ops/memory-trim.ts';
import { Metrics, memoryTrims } from '../../src/ops/metrics.ts';
import { GATEWAY_NODE_FLAGS, startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { pollUntil } from '../../tools/wait.ts';

const addon = nativeDataplane();

describe('the allocator trim', () => {
  it('the addon is built and exports trim()', () => {
    expect(addon, 'native/build/dataplane.node must be built by the test setup').not.toBeNull();
    expect(typeof addon!.trim()).toBe('boolean');
  });

  it('returns pages that free() kept: 128 MiB of 64 KiB Buffers freed under a live one, RSS falls only with the trim', () => {
    // 64 KiB Buffers come from malloc's heap (below its mmap threshold); one allocated after them and kept alive pins
    // the heap's top, so glibc's own free() cannot shrink it. Only malloc_trim(0) returns the free pages inside.
    const script = `
      const a = require(${JSON.stringify(fileURLToPath(new URL('../../native/build/dataplane.node', import.meta.url)))});
      const rss = () => Number(/VmRSS:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
      let bufs = [];
      for (let i = 0; i < 2048; i++) bufs.push(Buffer.allocUnsafeSlow(65536).fill(i & 255));
      const pin = Buffer.allocUnsafeSlow(65536).fill(1);
      const full = rss();
      bufs = null;
      global.gc(); global.gc();
      const freed = rss();
      const released = a.trim();
      const trimmed = rss();
      console.log(JSON.stringify({ full, freed, trimmed, released, pin: pin[0] }));
    `;
    const out = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8' })) as Record<string, number | boolean>;
    const [full, freed, trimmed] = [out.full as number, out.freed as number, out.trimmed as number];
    expect(full - freed, `free() alone kept the pages (${JSON.stringify(out)})`).toBeLessThan(64);
    expect(out.released).toBe(true);
    expect(freed - trimmed, `the trim returned at least 96 of the 128 MiB (${JSON.stringify(out)})`).toBeGreaterThan(96);
  });

  it("lowMemory() releases V8's young-generation pages, which global.gc() leaves resident", () => {
    // a second of short-lived objects grows the young generation to its cap (two 4 MiB semi-spaces); a full GC
    // right after it leaves them committed and resident (V8 shrinks them only after seconds of low allocation)
    const script = `
      const a = require(${JSON.stringify(fileURLToPath(new URL('../../native/build/dataplane.node', import.meta.url)))});
      const v8 = require('v8');
      const young = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size / 1048576;
      const rss = () => Number(/VmRSS:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
      let keep = [];
      for (const t0 = Date.now(); Date.now() - t0 < 1000; ) {
        const batch = [];
        for (let i = 0; i < 2000; i++) batch.push({ i, s: 'x' + i });
        keep.push(batch);
        if (keep.length > 40) keep.shift();
      }
      keep = null;
      const grown = young();
      global.gc();
      const afterGc = young(), rssGc = rss();
      const done = a.lowMemory();
      console.log(JSON.stringify({ grown, afterGc, done, afterLow: young(), rssGc, rssLow: rss() }));
    `;
    const out = JSON.parse(execFileSync(process.execPath, [...GATEWAY_NODE_FLAGS, '-e', script], { encoding: 'utf8' })) as Record<string, number | boolean>;
    const o = JSON.stringify(out);
    expect(out.grown, `the young generation grew to its cap (${o})`).toBe(8);
    expect(out.afterGc, `global.gc() left it (${o})`).toBe(8);
    expect(out.done).toBe(true);
    // with --min-semi-space-size=4 (GATEWAY_NODE_FLAGS) the idle semi-space is uncommitted, the capacity kept
    expect(out.afterLow as number, `lowMemory() released a semi-space (${o})`).toBeLessThanOrEqual(4);
    expect((out.rssGc as number) - (out.rssLow as number), `and RSS fell by at least 4 MiB (${o})`).toBeGreaterThan(4);
  });
});

describe('when the gateway trims', () => {
  function harness(busyEveryMs = 30_000) {
    const src = { inflight: 0, served: 0 };
    let now = 0;
    let trims = 0;
    let collections = 0;
    const t = new MemoryTrim(
      { inflight: () => src.inflight, served: () => src.served },
      { trim: () => (trims++, addon!.trim()), collect: () => void collections++, busyEveryMs, now: () => now },
    );
    return { src, t, trims: () => trims, collections: () => collections, advance: (ms: number) => void (now += ms) };
  }

  it('not without activity since the last trim', () => {
    const h = harness();
    expect(h.t.tick()).toBe(false);
    h.advance(60_000);
    expect(h.t.tick()).toBe(false);
    expect(h.trims()).toBe(0);
  });

  it('once nothing finished and nothing was in flight for a second after requests, with a collection first; then not again until more requests, and the collection at most once a minute', () => {
    const h = harness();
    h.src.inflight = 2;
    h.src.served = 5;
    expect(h.t.tick()).toBe(false); // busy, and the busy period has not passed
    h.src.inflight = 0;
    h.advance(750);
    expect(h.t.tick()).toBe(false); // quiet for 750 ms only
    h.advance(250);
    expect(h.t.tick()).toBe(true); // a whole second without a request finishing or in flight
    expect([h.trims(), h.collections()]).toEqual([1, 1]);
    h.advance(5000);
    expect(h.t.tick()).toBe(false); // nothing new to give back
    h.src.served = 6;
    h.advance(250);
    expect(h.t.tick()).toBe(false); // a request finished since the last check: not quiet yet
    h.advance(1000);
    expect(h.t.tick()).toBe(true);
    expect([h.trims(), h.collections()]).toEqual([2, 1]); // the allocator's pages only: 6.25 s since the collection
    // still quiet: the collection owed since then comes once a minute has passed since the last one
    h.advance(60_000 - 6_250 - 250);
    expect(h.t.tick()).toBe(false);
    h.advance(250);
    expect(h.t.tick()).toBe(true);
    expect([h.trims(), h.collections()]).toEqual([3, 2]);
    h.advance(120_000);
    expect(h.t.tick()).toBe(false); // nothing served since: nothing owed
    expect([h.trims(), h.collections()]).toEqual([3, 2]);
  });

  it('checked every 250 ms (the default), the trim comes 1.0-1.25 s after the last request', () => {
    const h = harness();
    let at = -1;
    for (let ms = 0; ms <= 3000 && at < 0; ms += 250) {
      if (ms <= 500) h.src.served++; // requests finish until 0.5 s
      if (h.t.tick()) at = ms;
      h.advance(250);
    }
    expect(at - 500).toBeGreaterThanOrEqual(1000);
    expect(at - 500).toBeLessThanOrEqual(1250);
  });

  it('a client sending one request at a time is never quiet: the trim alone, once per busy period', () => {
    const h = harness(30_000);
    for (let s = 1; s <= 90; s++) {
      h.src.served += 10; // nothing in flight at any tick, but requests finished during every one
      h.advance(1000);
      h.t.tick();
    }
    expect([h.trims(), h.collections()]).toEqual([3, 0]); // at 30, 60 and 90 s, without a collection
  });

  it('under traffic that never pauses, once per busy period', () => {
    const h = harness(30_000);
    h.src.inflight = 4;
    for (let s = 1; s <= 90; s++) {
      h.src.served += 10;
      h.advance(1000);
      h.t.tick();
    }
    expect([h.trims(), h.collections()]).toEqual([3, 0]);
  });
});

describe('a running gateway', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway('fs');
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('trims after its requests ended, collecting with the addon\'s lowMemory() first (lakecrypt_memory_trims_total)', async () => {
    const before = memoryTrims.done;
    const lowMemory = vi.spyOn(addon!, 'lowMemory');
    const c = gw.client();
    await c.send(new CreateBucketCommand({ Bucket: 'trim' }));
    for (let i = 0; i < 4; i++) await c.send(new PutObjectCommand({ Bucket: 'trim', Key: `k${i}`, Body: Buffer.alloc(2 << 20, i) }));
    const metrics = new Metrics();
    const scraped = async () => Number(/^lakecrypt_memory_trims_total (\d+)/m.exec(await metrics.render())?.[1]);
    expect(await scraped()).toBe(before); // the process's trims so far
    await pollUntil(() => memoryTrims.done > before, { timeoutMs: 30_000, what: 'a trim after the requests' });
    expect(gw.running.gateway.inflight).toBe(0);
    expect(await scraped()).toBeGreaterThan(before);
    expect(lowMemory).toHaveBeenCalled();
    lowMemory.mockRestore();
  });
});

describe('the node flags', () => {
  it('every launcher of the gateway passes them: scripts/start.sh, npm start, the Dockerfile, tools/gateway.ts', () => {
    const root = new URL('../../', import.meta.url);
    const read = (f: string) => readFileSync(new URL(f, root), 'utf8');
    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    const docker = read('Dockerfile').split('\n').filter((l) => /^CMD \["node", .*dist\/src\/main\.js"\]/.test(l));
    expect(docker.length).toBe(2);
    const launchers: [string, string][] = [
      ['scripts/start.sh', read('scripts/start.sh').split('\n').find((l) => l.includes('dist/src/main.js') && l.startsWith('exec node')) ?? ''],
      ['npm start', pkg.scripts.start ?? ''],
      ...docker.map((l, i): [string, string] => [`Dockerfile CMD ${i + 1}`, l]),
    ];
    expect(GATEWAY_NODE_FLAGS.length).toBeGreaterThan(0);
    for (const [name, line] of launchers) for (const f of GATEWAY_NODE_FLAGS) expect(line, name).toContain(f);
  });
});
