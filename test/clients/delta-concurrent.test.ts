/**
 * delta-rs writers on two gateways over one MinIO (issue #19 item 5): the Delta log's only lock is the commit
 * PUT with If-None-Match: * (`conditional_put: "etag"`), which lakecrypt makes a condition of the backend's own
 * commit, so two gateways can never both take one version. First a race decided one way (a stale writer on
 * one gateway lands after the winner on the other, and the winner's log entry cannot be put again through the
 * other gateway), then four writer processes, two per gateway, appending commits at once: afterwards every
 * version 0..total exists once and the table has every row once.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newCredentials, startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { uniqueBucket } from '../helpers/s3.ts';
import { lakeMissing, lakePython, lakeScript } from './lake.ts';
import { accessLog, cleanEnv, type AccessRecord } from './util.ts';

const WRITERS = 4;
const COMMITS = 10; // per writer: 4 x 10 + 3 stays under delta-rs's checkpoint interval (100)

interface Checked {
  version: number;
  history: number[];
  rows: [string, number][];
  commit_files: string[];
}

describe('delta-rs: concurrent writers through two gateways on one backend', () => {
  const gws: TestGateway[] = [];
  const logs = [accessLog(), accessLog()];
  const tmp = makeTmpDir('lc-delta-mw-');
  const bucket = uniqueBucket('lake-delta-mw');
  const table = 'events';
  const writer = newCredentials();
  const envs: Record<string, string>[] = [];
  const commitPuts = (recs: AccessRecord[]) =>
    recs.filter((r) => r.bucket === bucket && r.op === 'PutObject' && new RegExp(`^${table}/_delta_log/\\d{20}\\.json$`).test(r.key));
  const check = (env: Record<string, string>) => lakeScript<Checked>('lake_delta.py', ['check', bucket, table], env);

  beforeAll(async () => {
    expect(lakeMissing(), `python modules missing in ${lakePython()}: run \`bash scripts/test-deps.sh\``).toEqual([]);
    // One fleet: the same meta bucket (key state, datasets) and data dir (the local CMK's key file); the same user.
    const metaBucket = uniqueBucket('lake-delta-meta');
    for (const log of logs) {
      gws.push(await startTestGateway('s3', { dataDir: tmp.path, metaBucket, users: [{ ...writer, buckets: ['*'], admin: false }], onRequestDone: log.hook }));
    }
    for (const [i, gw] of gws.entries()) {
      const other = gws[1 - i]!.url;
      envs.push(cleanEnv(path.join(tmp.path, `home-${i}`), { LC_ENDPOINT: gw.url, LC_ENDPOINT2: other, LC_ACCESS_KEY: writer.accessKey, LC_SECRET_KEY: writer.secretKey }));
    }
    expect(await lakeScript('lake_delta.py', ['create', bucket, table], envs[0]!)).toEqual({ created: table });
  }, 180_000);
  afterAll(async () => {
    for (const gw of gws) await gw.close();
    tmp.cleanup();
  });

  it('a writer holding a stale version lands after the winner; the winner\'s version cannot be taken through the other gateway', async () => {
    // the early writer commits version 1 through gateway 1; the late one read version 0 through gateway 2 before
    const out = await lakeScript<{ read_version: number; version: number; refused: unknown; kept: boolean }>('lake_delta.py', ['stale', bucket, table], envs[0]!);
    expect(out).toEqual({ read_version: 0, version: 2, refused: [412, 'PreconditionFailed'], kept: true });
    const v1 = `${table}/_delta_log/00000000000000000001.json`;
    const v2 = `${table}/_delta_log/00000000000000000002.json`;
    const took = (i: number) => commitPuts(logs[i]!.records).filter((r) => r.status === 200).map((r) => [r.key, r.headers['if-none-match']]);
    expect(took(0)).toEqual([
      [`${table}/_delta_log/00000000000000000000.json`, '*'],
      [v1, '*'],
    ]);
    expect(took(1)).toEqual([[v2, '*']]);
    const now = await check(envs[1]!);
    expect(now.rows).toEqual([
      ['early', 0],
      ['late', 0],
    ]);
    expect([now.version, now.commit_files.length]).toEqual([2, 3]);
  }, 300_000);

  it(`${WRITERS} writer processes (2 per gateway) x ${COMMITS} commits: versions 0..total, every row once, none lost`, async () => {
    const before = logs.map((l) => l.records.length);
    const names = Array.from({ length: WRITERS }, (_, i) => `w${i}`);
    const results = await Promise.all(
      names.map((w, i) => lakeScript<{ writer: string; commits: number; redone: number }>('lake_delta.py', ['append', bucket, table, w, String(COMMITS)], envs[i % 2]!, { timeoutMs: 600_000 })),
    );
    expect(results.map((r) => [r.writer, r.commits])).toEqual(names.map((w) => [w, COMMITS]));
    const total = 2 + WRITERS * COMMITS;

    // read through each gateway: the same table
    for (const env of envs) {
      const t = await check(env);
      expect(t.version).toBe(total);
      expect(t.history).toEqual(Array.from({ length: total + 1 }, (_, v) => v));
      expect(t.commit_files).toEqual(Array.from({ length: total + 1 }, (_, v) => `${String(v).padStart(20, '0')}.json`));
      const want = [['early', 0], ['late', 0], ...names.flatMap((w) => Array.from({ length: COMMITS }, (_, s) => [w, s]))].sort((a, b) =>
        String(a[0]).localeCompare(String(b[0])) || Number(a[1]) - Number(b[1]),
      );
      expect(t.rows).toEqual(want);
    }

    // every version was taken by exactly one successful conditional PUT, on one gateway or the other
    const puts = logs.flatMap((l, i) => commitPuts(l.records.slice(before[i]))).filter((r) => r.status === 200);
    expect(puts.every((r) => r.headers['if-none-match'] === '*')).toBe(true);
    expect(puts.map((r) => r.key).sort()).toEqual(Array.from({ length: WRITERS * COMMITS }, (_, v) => `${table}/_delta_log/${String(v + 3).padStart(20, '0')}.json`));
    const refused = logs.flatMap((l, i) => commitPuts(l.records.slice(before[i]))).filter((r) => r.status === 412).length;
    const redone = results.reduce((a, r) => a + r.redone, 0);
    console.log(`delta-rs: ${WRITERS * COMMITS} commits by ${WRITERS} writers on 2 gateways; ${refused} commit PUTs refused (412), ${redone} writes redone`);
  }, 900_000);
});
