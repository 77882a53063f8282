/** boto3 (default checksum settings) against lakecrypt on MinIO: test/clients/py/boto3_client.py does the work. */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTmpDir } from '../../tools/tmp.ts';
import { minioCoords, uniqueBucket } from '../helpers/s3.ts';
import { scanDir, startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { accessLog, cleanEnv, expectClean, MARKER, run } from './util.ts';
import { pythonExe, pythonHas, scriptPath } from './python.ts';
import { nativeDataplane, nativeTransfers } from '../../src/engine/dataplane.ts';

describe('boto3', () => {
  let gw: TestGateway;
  const log = accessLog();
  const tmp = makeTmpDir('lc-boto3-');
  beforeAll(async () => {
    expect(pythonHas(['boto3']), 'pip install boto3 (scripts/test-deps.sh)').toEqual([]);
    gw = await startTestGateway('s3', { onRequestDone: log.hook });
  });
  afterAll(async () => {
    await gw?.close();
    tmp.cleanup();
  });

  it('put/get/head/list/delete, upload_file/download_file multipart with 4 threads, checksums validated', async () => {
    const bucket = uniqueBucket('boto3');
    const env = cleanEnv(path.join(tmp.path, 'home'), { LC_ACCESS_KEY: gw.accessKey, LC_SECRET_KEY: gw.secretKey });
    const before = { ...nativeTransfers };
    const r = expectClean(await run(pythonExe(), [scriptPath('boto3_client.py'), gw.url, bucket, tmp.path, MARKER], { env }));
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.ok).toBe(true);
    expect(out.get_validated).toBe(true);
    // the multipart upload used 8 MiB parts, and the download ranged GETs in parallel
    const parts = log.records.filter((x) => x.op === 'UploadPart' && x.key === 'keep/big.bin');
    expect(parts.length).toBe(4);
    const ranged = log.records.filter((x) => x.op === 'GetObject' && x.key === 'keep/big.bin' && x.range);
    expect(ranged.length).toBeGreaterThanOrEqual(4);
    // boto3 sent checksums by default (a header over http)
    const put = log.records.find((x) => x.op === 'PutObject' && x.key === 'keep/small.bin')!;
    expect(put.headers['x-amz-checksum-crc32'] ?? put.headers['x-amz-trailer']).toBeTruthy();
    // boto3's parts (a signed SHA-256 and a CRC32 header each, over http) and its ranged GETs of 8 MiB went through
    // the native data plane: the pump verified both digests (issue #22)
    expect(nativeDataplane(), 'native/build/dataplane.node').not.toBeNull();
    expect(nativeTransfers.part - before.part).toBe(3); // the fourth, 4,321 bytes, is below NATIVE_MIN_BYTES
    expect(nativeTransfers.get - before.get).toBeGreaterThanOrEqual(3); // its 8 MiB ranges (not the 4,321-byte tail)

    expect(scanDir(minioCoords().dataDir, [MARKER])).toEqual([]);
  });
});
