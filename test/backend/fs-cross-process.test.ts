/** fs backend: conditional writes are atomic across processes sharing one data dir. */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { FsBackend } from '../../src/backend/fs.ts';
import { makeTmpDir } from '../../tools/tmp.ts';

const run = promisify(execFile);
const worker = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'fs-worker.ts');

async function spawnWorkers(args: (i: number) => string[], n: number) {
  const outs = await Promise.all(
    Array.from({ length: n }, (_, i) => run(process.execPath, ['--import', 'tsx', worker, ...args(i)], { timeout: 90_000 })),
  );
  return outs.map((o) => JSON.parse(o.stdout.trim().split('\n').pop()!));
}

describe('fs backend across processes', () => {
  const tmp = makeTmpDir('lakecrypt-fsxp-');
  const b = new FsBackend({ dataDir: tmp.path });
  afterAll(() => tmp.cleanup());

  it('6 processes race ifNoneMatch "*" on one key: exactly one wins', async () => {
    await b.createBucket('xproc');
    const startAt = String(Date.now() + 2500);
    const res = await spawnWorkers((i) => [tmp.path, 'xproc', 'race', String(i), startAt], 6);
    const winners = res.filter((r) => r.won);
    expect(winners).toHaveLength(1);
    for (const r of res.filter((r) => !r.won)) expect(r.code).toBe('PreconditionFailed');
    expect((await b.getBuffer('xproc', 'race')).data.toString()).toBe(`winner-${winners[0].id}`);
  });

  it('4 processes x 15 compare-and-swap increments: no lost update', async () => {
    await b.putObject('xproc', 'counter', Buffer.from('0'), { size: 1 });
    const startAt = String(Date.now() + 2500);
    const res = await spawnWorkers((i) => [tmp.path, 'xproc', 'counter', String(i), startAt, '15'], 4);
    expect(res.reduce((s, r) => s + r.done, 0)).toBe(60);
    expect((await b.getBuffer('xproc', 'counter')).data.toString()).toBe('60');
  });
});
