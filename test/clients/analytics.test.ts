/**
 * Analytics engines over lakecrypt on MinIO: a Hive-partitioned Parquet dataset (2.4 million rows, 12 files,
 * year=/month=) is generated locally with pyarrow, uploaded with boto3, then queried with DuckDB httpfs,
 * pyarrow.dataset and Polars; every result must equal the same query on the local plaintext files. The
 * gateway's access log (onRequestDone) must show column projection served by range reads.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTmpDir } from '../../tools/tmp.ts';
import { minioCoords, uniqueBucket } from '../helpers/s3.ts';
import { scanDir, startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { accessLog, cleanEnv, expectClean, MARKER, run } from './util.ts';
import { pythonExe, pythonHas, scriptPath } from './python.ts';

type Compared = Record<string, { equal: boolean; rows?: number } & Record<string, unknown>>;

describe('analytics: DuckDB, pyarrow, Polars over Hive-partitioned Parquet', () => {
  let gw: TestGateway;
  const log = accessLog();
  const tmp = makeTmpDir('lc-analytics-');
  const bucket = uniqueBucket('lake');
  let env: Record<string, string>;
  let dataset: { rows: number; files: number; bytes: number };

  const py = async (...args: string[]) => {
    const r = expectClean(await run(pythonExe(), [scriptPath('analytics.py'), ...args], { env, timeoutMs: 180_000 }), {
      allow: /^\s*$/,
    });
    return JSON.parse(r.stdout.trim().split('\n').pop()!);
  };
  const expectAllEqual = (out: Compared) => {
    for (const [name, v] of Object.entries(out)) expect(v.equal, `${name}: ${JSON.stringify(v)}`).toBe(true);
  };

  beforeAll(async () => {
    expect(pythonHas(['boto3', 'duckdb', 'duckdb_extension_httpfs', 'pyarrow', 'polars']), 'pip packages (scripts/test-deps.sh)').toEqual([]);
    gw = await startTestGateway('s3', { onRequestDone: log.hook });
    env = cleanEnv(path.join(tmp.path, 'home'), { LC_ENDPOINT: gw.url, LC_ACCESS_KEY: gw.accessKey, LC_SECRET_KEY: gw.secretKey });
    dataset = await py('gen', tmp.path, MARKER);
    expect(dataset).toMatchObject({ rows: 2_400_000, files: 12 });
    expect(await py('upload', tmp.path, bucket)).toEqual({ uploaded: 12 });
  }, 240_000);
  afterAll(async () => {
    await gw?.close();
    tmp.cleanup();
  });

  it('DuckDB httpfs (offline extension, glob + hive_partitioning): aggregates, filters, the marker rows', async () => {
    const out = await py('duckdb', tmp.path, bucket, MARKER);
    expectAllEqual(out);
    expect(out.marker.rows).toBe(12); // one marker row per file
    expect(out.agg.rows).toBe(12);
  });

  it('DuckDB projection is served by range reads of a fraction of the objects', async () => {
    const from = log.records.length;
    const out = await py('duckdb-proj', tmp.path, bucket);
    expectAllEqual(out);
    const gets = log.records.slice(from).filter((r) => r.op === 'GetObject' && r.bucket === bucket);
    expect(gets.length).toBeGreaterThan(0);
    expect(gets.every((r) => r.range !== undefined && /^bytes=/.test(r.range)), JSON.stringify(gets.map((g) => g.range))).toBe(true);
    const read = gets.reduce((a, r) => a + r.bytesOut, 0);
    // year = 2024 prunes half the files; `value` is a small part of each file
    expect(read, `read ${read} of ${dataset.bytes}`).toBeLessThan(dataset.bytes / 10);
  });

  it('pyarrow.dataset: hive partitioning, partition filter + column projection', async () => {
    const from = log.records.length;
    const out = await py('pyarrow', tmp.path, bucket);
    expectAllEqual(out);
    expect(out.filter_projection.rows).toBeGreaterThan(0);
    const gets = log.records.slice(from).filter((r) => r.op === 'GetObject' && r.bucket === bucket);
    expect(gets.some((r) => r.range)).toBe(true);
    expect(gets.reduce((a, r) => a + r.bytesOut, 0)).toBeLessThan(dataset.bytes / 2);
  });

  it('Polars: scan_parquet with predicate + projection pushdown, write_parquet back, read back', async () => {
    const from = log.records.length;
    const out = await py('polars', tmp.path, bucket);
    expectAllEqual(out);
    expect(out.pushdown.rows).toBeGreaterThan(0);
    const recs = log.records.slice(from).filter((r) => r.bucket === bucket);
    expect(recs.filter((r) => r.op === 'GetObject' && r.key.startsWith('ds/')).every((r) => r.range)).toBe(true);
    expect(recs.some((r) => r.key === 'out/polars-result.parquet' && (r.op === 'PutObject' || r.op === 'CompleteMultipartUpload'))).toBe(true);
  });

  it('leaves no plaintext in MinIO (marker values of the rows)', () => {
    expect(scanDir(minioCoords().dataDir, [MARKER])).toEqual([]);
  });
});
