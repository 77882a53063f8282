/**
 * The engines users run on a lake, writing and reading through one gateway on MinIO (issue #19 item 5):
 * DuckDB `COPY ... TO` (one file, and PARTITION_BY a directory), delta-rs (create, append, overwrite, time
 * travel; commits as conditional PUTs) and pyiceberg on a SQL catalog with either FileIO. Every read back equals
 * what was written, row for row; the objects carry a marker in plaintext, and MinIO holds it nowhere.
 * Concurrent delta-rs writers on two gateways: delta-concurrent.test.ts. The Python side: test/clients/py/lake_*.py.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTmpDir } from '../../tools/tmp.ts';
import { uniqueBucket } from '../helpers/s3.ts';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { accessLog, cleanEnv, MARKER } from './util.ts';
import { lakeMissing, lakePython, lakeScript, sparkJars } from './lake.ts';

type Compared = { equal: boolean; rows: number };

describe('lake engines through the gateway', () => {
  let gw: TestGateway;
  const log = accessLog();
  const tmp = makeTmpDir('lc-lake-');
  let env: Record<string, string>;
  const markerBuckets: string[] = [];
  const requests = (bucket: string) => log.records.filter((r) => r.bucket === bucket);

  beforeAll(async () => {
    expect(lakeMissing(), `python modules missing in ${lakePython()}: run \`bash scripts/test-deps.sh\``).toEqual([]);
    gw = await startTestGateway('s3', { onRequestDone: log.hook });
    env = cleanEnv(path.join(tmp.path, 'home'), { LC_ENDPOINT: gw.url, LC_ACCESS_KEY: gw.accessKey, LC_SECRET_KEY: gw.secretKey });
  }, 120_000);
  afterAll(async () => {
    await gw?.close();
    tmp.cleanup();
  });

  it('DuckDB: COPY TO one Parquet file (multipart) and PARTITION_BY a directory, read back equal to the source', async () => {
    const bucket = uniqueBucket('lake-duck');
    const out = await lakeScript<{ single: Compared; parted: Compared; marker_rows: number; keys: string[]; marker_objects: string[] }>(
      'lake_duckdb.py',
      ['copy', bucket, MARKER],
      env,
    );
    expect(out.single, JSON.stringify(out.single)).toMatchObject({ equal: true, rows: 300_000 });
    expect(out.parted, JSON.stringify(out.parted)).toMatchObject({ equal: true, rows: 300_000 });
    expect(out.marker_rows).toBe(300);
    expect(out.keys.filter((k) => k.startsWith('parted/')).map((k) => k.split('/')[1]).sort()).toEqual(['cat=c0', 'cat=c1', 'cat=c2', 'cat=c3', 'cat=c4']);
    expect(out.keys).toContain('single.parquet');
    // the single file went up as a multipart upload of several parts, every request answered 200
    const single = requests(bucket).filter((r) => r.key === 'single.parquet' && r.method !== 'GET' && r.method !== 'HEAD');
    expect(single.map((r) => r.op).filter((op, i, a) => a.indexOf(op) === i)).toEqual(['CreateMultipartUpload', 'UploadPart', 'CompleteMultipartUpload']);
    expect(single.filter((r) => r.op === 'UploadPart').length).toBeGreaterThanOrEqual(2);
    expect(requests(bucket).filter((r) => r.method !== 'GET' && r.method !== 'HEAD' && r.status >= 300), 'failed writes').toEqual([]);
    // the marked rows (id % 1000 = 7) all fall in partition c2
    expect(out.marker_objects.map((k) => k.replace(/\/[^/]*$/, '/')).sort(), 'the marker is in the Parquet files as written').toEqual(['parted/cat=c2/', 'single.parquet']);
    markerBuckets.push(bucket);
  }, 300_000);

  it('delta-rs: create, append, overwrite, time travel to versions 0 and 1; commits are conditional PUTs', async () => {
    const bucket = uniqueBucket('lake-delta');
    const out = await lakeScript<Record<string, Compared> & { version: number; history: number[]; keys: string[]; marker_objects: string[] }>(
      'lake_delta.py',
      ['basic', bucket, MARKER],
      env,
    );
    for (const k of ['append', 'overwrite', 'time_travel_v0', 'time_travel_v1']) expect(out[k]!.equal, `${k}: ${JSON.stringify(out[k])}`).toBe(true);
    expect(out).toMatchObject({ version: 2, history: [0, 1, 2], append: { rows: 800 }, overwrite: { rows: 200 } });
    const commits = requests(bucket).filter((r) => r.op === 'PutObject' && r.key.startsWith('events/_delta_log/') && r.key.endsWith('.json'));
    expect(commits.map((r) => r.key.split('/').pop())).toEqual(['00000000000000000000.json', '00000000000000000001.json', '00000000000000000002.json']);
    // conditional_put=etag: each commit is put only if no object has that version's name yet
    for (const c of commits) expect([c.status, c.headers['if-none-match']]).toEqual([200, '*']);
    expect(out.marker_objects.some((k) => k.endsWith('.parquet'))).toBe(true);
    markerBuckets.push(bucket);
  }, 300_000);

  it.each(['pyarrow', 'fsspec'])('pyiceberg, SQL catalog (sqlite), %s FileIO: namespace, table, appends, delete, reads of every snapshot', async (io) => {
    const bucket = uniqueBucket(`lake-ice-${io}`);
    const catalogDir = makeTmpDir('lc-iceberg-');
    try {
      const out = await lakeScript<Record<string, unknown> & Record<'current' | 'snapshot_1' | 'snapshot_2' | 'filtered', Compared>>(
        'lake_iceberg.py',
        ['run', bucket, catalogDir.path, io, MARKER],
        env,
      );
      for (const k of ['current', 'snapshot_1', 'snapshot_2', 'filtered'] as const) expect(out[k].equal, `${k}: ${JSON.stringify(out[k])}`).toBe(true);
      expect(out).toMatchObject({
        io: io === 'pyarrow' ? 'pyiceberg.io.pyarrow.PyArrowFileIO' : 'pyiceberg.io.fsspec.FsspecFileIO',
        namespaces: [['sales']],
        tables: [['sales', 'orders']],
        location: `s3://${bucket}/wh/sales/orders`,
        snapshots: 3,
        current: { rows: 2400 },
        snapshot_1: { rows: 2000 },
        snapshot_2: { rows: 2500 },
        filtered: { rows: 100 },
      });
      expect(out.metadata_files).toBeGreaterThanOrEqual(4);
      const written = requests(bucket).filter((r) => r.key.endsWith('.metadata.json') && (r.op === 'PutObject' || r.op === 'CompleteMultipartUpload'));
      expect(written.length, 'metadata files written through the gateway').toBe(out.metadata_files);
      expect((out.marker_objects as string[]).some((k) => k.endsWith('.parquet'))).toBe(true);
      markerBuckets.push(bucket);
    } finally {
      catalogDir.cleanup();
    }
  }, 300_000);

  it('MinIO holds none of the marked rows in plaintext', async () => {
    expect(markerBuckets.length, 'the engines above wrote their marked objects').toBe(4);
    expect(await gw.scanBackendFor([MARKER])).toEqual([]);
  });
});

/**
 * Apache Spark over s3a: opt-in (LAKECRYPT_TEST_SPARK=1, after `LAKECRYPT_TEST_SPARK=1 bash scripts/test-deps.sh`),
 * since pyspark (~460 MB) and the AWS SDK bundle hadoop-aws needs (~650 MB) are too big for every CI run. Without
 * the variable the describe is not defined at all: no skipped test stands in for it.
 */
if (process.env.LAKECRYPT_TEST_SPARK === '1') {
  describe('Apache Spark (pyspark, s3a) through the gateway', () => {
    let gw: TestGateway;
    const log = accessLog();
    const tmp = makeTmpDir('lc-spark-');

    beforeAll(async () => {
      const setup = 'run `LAKECRYPT_TEST_SPARK=1 bash scripts/test-deps.sh`';
      expect(lakeMissing(['pyspark', 'boto3']), `pyspark missing in ${lakePython()}: ${setup}`).toEqual([]);
      expect(sparkJars().split(',').filter((j) => !existsSync(j)), `jars missing: ${setup}`).toEqual([]);
      gw = await startTestGateway('s3', { onRequestDone: log.hook });
    }, 120_000);
    afterAll(async () => {
      await gw?.close();
      tmp.cleanup();
    });

    it('partitioned Parquet and one CSV file written with the default commit protocol, read back equal; no plaintext in MinIO', async () => {
      const bucket = uniqueBucket('lake-spark');
      // SPARK_LOCAL_IP: Spark would otherwise bind to the host name's non-loopback address
      const env = cleanEnv(path.join(tmp.path, 'home'), { LC_ENDPOINT: gw.url, LC_ACCESS_KEY: gw.accessKey, LC_SECRET_KEY: gw.secretKey, SPARK_LOCAL_IP: '127.0.0.1', LAKECRYPT_SPARK_JARS: sparkJars() });
      const out = await lakeScript<Record<'parted' | 'csv', Compared> & { partitions: string[]; csv_files: number; success_markers: string[]; temporary_left: string[]; marker_objects: string[] }>(
        'lake_spark.py',
        ['run', bucket, MARKER],
        env,
        { timeoutMs: 900_000, allow: /^WARNING: Using incubator modules/ },
      );
      expect(out.parted, JSON.stringify(out.parted)).toMatchObject({ equal: true, rows: 200_000 });
      expect(out.csv, JSON.stringify(out.csv)).toMatchObject({ equal: true, rows: 200_000 });
      expect(out).toMatchObject({ partitions: ['cat=0', 'cat=1', 'cat=2', 'cat=3', 'cat=4', 'cat=5', 'cat=6'], csv_files: 1, success_markers: ['csv/_SUCCESS', 'parted/_SUCCESS'], temporary_left: [] });
      // the commits moved task output into place with server-side copies
      expect(log.records.some((r) => r.bucket === bucket && r.op === 'CopyObject' && r.status === 200)).toBe(true);
      expect(out.marker_objects.some((k) => k.startsWith('csv/part-'))).toBe(true);
      expect(await gw.scanBackendFor([MARKER])).toEqual([]);
    }, 900_000);
  });
}
