import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { S3Error } from '../../src/errors.ts';
import { LocalCmkProvider } from '../../src/keys/local-cmk.ts';
import { KeyService } from '../../src/keys/service.ts';
import { createLogger } from '../../src/ops/logger.ts';
import { MemBackend } from './mem-backend.ts';

const META = 'lakecrypt-meta';
const dirs: string[] = [];
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** MemBackend whose HEAD (the epoch poll) fails while `down`, and whose PUTs fail while `writesDown`. */
class FlakyBackend extends MemBackend {
  down = false;
  writesDown = false;
  override async headObject(bucket: string, key: string) {
    if (this.down) throw new S3Error('ServiceUnavailable', 'backend unreachable (test)');
    return super.headObject(bucket, key);
  }
  override async putObject(...args: Parameters<MemBackend['putObject']>) {
    if (this.writesDown) throw new S3Error('ServiceUnavailable', 'backend refuses writes (test)');
    return super.putObject(...args);
  }
}

function setup() {
  const d = mkdtempSync(path.join(os.tmpdir(), 'lc-epoch-'));
  dirs.push(d);
  const backend = new FlakyBackend();
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ level: 'info', destination: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) } });
  const failures: string[] = [];
  const ks = new KeyService({
    backend,
    metaBucket: META,
    cmks: { main: new LocalCmkProvider({ id: 'main', dataDir: d }) },
    defaultCmk: 'main',
    epochPollMs: 60_000, // polled by hand
    log,
    onBestEffortFailure: (what) => failures.push(what),
  });
  closers.push(() => ks.stop());
  return { backend, ks, lines, failures };
}

describe('best-effort failures are reported', () => {
  it('each failure is counted, logged at warn once per streak (no key material), recovery at info; caches dropped', async () => {
    const { backend, ks, lines, failures } = setup();
    await ks.start();
    const kek = Buffer.from((await ks.activeKek('ds')).key).toString('hex');
    const gen = ks.cacheGeneration;

    backend.down = true;
    for (let i = 0; i < 3; i++) await ks.pollOnce();
    expect(failures).toEqual(['epoch-poll', 'epoch-poll', 'epoch-poll']);
    expect(ks.cacheGeneration).toBeGreaterThanOrEqual(gen + 3);
    const warns = lines.filter((l) => l.level === 'warn');
    expect(warns).toHaveLength(1);
    expect(warns[0]).toMatchObject({ what: 'epoch-poll', code: 'ServiceUnavailable', reason: 'backend unreachable (test)' });
    expect(String(warns[0].msg)).toMatch(/epoch poll failed/);

    backend.down = false;
    await ks.pollOnce();
    await ks.pollOnce();
    const infos = lines.filter((l) => l.level === 'info');
    expect(infos).toHaveLength(1);
    expect(infos[0]).toMatchObject({ what: 'epoch-poll', failures: 3 });

    // a new streak warns again
    backend.down = true;
    await ks.pollOnce();
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(2);
    expect(failures).toHaveLength(4);
    expect(JSON.stringify(lines)).not.toContain(kek);
  });

  it('a failed lazy re-wrap on read is counted and logged (and still rejects for the caller)', async () => {
    const { backend, ks, lines, failures } = setup();
    await ks.start();
    await ks.activeHeaderKeyNumber('ds'); // header key 1 under KEK v1
    await ks.rotate('ds');
    await ks.headerKey('ds', 1); // caches the record: key 1 is still under v1, v2 is active
    backend.writesDown = true;
    await expect(ks.rewrapHeaderKeysIfStale('ds', 1)).rejects.toThrow(/refuses writes/);
    expect(failures).toEqual(['lazy-rewrap']);
    expect(lines.filter((l) => l.level === 'warn')).toMatchObject([{ what: 'lazy-rewrap', dataset: 'ds', code: 'ServiceUnavailable' }]);
    backend.writesDown = false;
    await expect(ks.rewrapHeaderKeysIfStale('ds', 1)).resolves.toMatchObject({ rewrapped: 1 });
    expect(lines.filter((l) => l.level === 'info')).toMatchObject([{ what: 'lazy-rewrap', failures: 1 }]);
  });

  it('without a logger or hook a failed poll still drops the caches and never rejects', async () => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'lc-epoch-'));
    dirs.push(d);
    const backend = new FlakyBackend();
    const ks = new KeyService({ backend, metaBucket: META, cmks: { main: new LocalCmkProvider({ id: 'main', dataDir: d }) }, defaultCmk: 'main', epochPollMs: 60_000 });
    closers.push(() => ks.stop());
    await ks.start();
    await ks.activeKek('ds');
    const gen = ks.cacheGeneration;
    backend.down = true;
    await expect(ks.pollOnce()).resolves.toBeUndefined();
    expect(ks.cacheGeneration).toBe(gen + 1);
  });
});
