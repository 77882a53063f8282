/**
 * rclone against lakecrypt on MinIO: copy (single part and multipart), sync, check, md5sum, cat, delete — with the
 * plain S3 remote config a user would write for AWS, no encryption settings.
 *
 * rclone takes a 32-hex ETag for the MD5 of the content (backend/s3 `setMD5FromEtag`), from PUT answers and from
 * listings. lakecrypt's ETag of a single-PUT object is the MD5 of the plaintext in both (src/format/etag.ts) —
 * rclone always sends Content-MD5 on single-part uploads, and other clients' uploads up to 8 MiB get it too — so
 * rclone's upload check and `rclone check` work unchanged. Other ETags are `<hex>-N`, which rclone knows is not an
 * MD5: for its own multipart uploads it uses the MD5 it stored in `X-Amz-Meta-Md5chksum`.
 */
import path from 'node:path';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBinary } from '../../tools/process.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { minioCoords, uniqueBucket } from '../helpers/s3.ts';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { nativeDataplane, nativeTransfers } from '../../src/engine/dataplane.ts';
import { scanDir, startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { accessLog, cleanEnv, expectClean, MARKER, markedData, md5, run, writeFile } from './util.ts';

const MiB = 1024 * 1024;
/** rclone check prints "0 differences found": not a complaint. */
const ZERO_DIFF = /: 0 differences found$/;

describe('rclone', () => {
  let gw: TestGateway;
  const log = accessLog();
  const tmp = makeTmpDir('lc-rclone-');
  const bucket = uniqueBucket('rclone');
  let cfgFile: string;
  let env: Record<string, string>;
  const rclone = (...args: string[]) => run(findBinary('rclone')!, ['--config', cfgFile, ...args], { env });
  const files: Record<string, Buffer> = {};

  beforeAll(async () => {
    expect(findBinary('rclone'), 'apt-get install rclone (scripts/test-deps.sh)').toBeTruthy();
    gw = await startTestGateway('s3', { onRequestDone: log.hook });
    const endpoint = gw.url;
    const accessKey = gw.accessKey;
    const secretKey = gw.secretKey;
    // docs:begin rclone
    // rclone --config rclone.conf ...   remote "lakecrypt:bucket/path"
    const rcloneConf = [
      '[lakecrypt]',
      'type = s3',
      'provider = Other',
      `endpoint = ${endpoint}`,
      `access_key_id = ${accessKey}`,
      `secret_access_key = ${secretKey}`,
      'region = us-east-1',
      'force_path_style = true',
      '',
    ].join('\n');
    // docs:end
    cfgFile = path.join(tmp.path, 'rclone.conf');
    writeFileSync(cfgFile, rcloneConf);
    env = cleanEnv(path.join(tmp.path, 'home'));
    expectClean(await rclone('mkdir', `lakecrypt:${bucket}`));
  });
  afterAll(async () => {
    await gw?.close();
    tmp.cleanup();
  });

  it('copy (single part and multipart) with the upload hash check, then check agrees on every MD5', async () => {
    const src = path.join(tmp.path, 'src');
    Object.assign(files, {
      'tiny.txt': markedData('rclone tiny', 50),
      'mid.bin': markedData('rclone mid', 3 * MiB + 1),
      'dir/big.bin': markedData('rclone big', 20 * MiB + 17),
    });
    for (const [n, d] of Object.entries(files)) writeFile(src, n, d);
    // multipart above 8 MiB, so big.bin goes in 3 parts
    const parts0 = nativeTransfers.part;
    const copy = expectClean(await rclone('copy', '-v', '--s3-upload-cutoff', '8M', '--s3-chunk-size', '8M', src, `lakecrypt:${bucket}/keep`));
    expect(copy.stderr.match(/: Copied \(new\)/g)?.length, copy.stderr).toBe(3);
    expect(log.records.filter((r) => r.op === 'UploadPart' && r.key === 'keep/dir/big.bin').length).toBe(3);
    // each part (Content-MD5, UNSIGNED-PAYLOAD, over 1 MiB) sealed by the native data plane, its MD5 checked there
    expect(nativeDataplane(), 'native/build/dataplane.node').not.toBeNull();
    expect(nativeTransfers.part - parts0).toBe(3);

    const check = expectClean(await rclone('check', src, `lakecrypt:${bucket}/keep`), { allow: ZERO_DIFF });
    expect(check.stderr).toMatch(/: 0 differences found$/m);
    expect(check.stderr).toMatch(/: 3 matching files/);
    expect(check.stderr).not.toMatch(/hashes could not be checked/);

    const sums = expectClean(await rclone('md5sum', `lakecrypt:${bucket}/keep`)).stdout;
    const got = Object.fromEntries(sums.trim().split('\n').map((l) => l.split(/\s+/).reverse()));
    expect(got).toEqual(Object.fromEntries(Object.entries(files).map(([n, d]) => [n, md5(d)])));

    const cat = expectClean(await rclone('cat', `lakecrypt:${bucket}/keep/mid.bin`));
    expect(md5(cat.stdoutBuf)).toBe(md5(files['mid.bin']!));
    const down = path.join(tmp.path, 'down');
    expectClean(await rclone('copy', `lakecrypt:${bucket}/keep`, down));
    for (const [n, d] of Object.entries(files)) expect(md5(readFileSync(path.join(down, n))), n).toBe(md5(d));
  });

  it('sync: a second sync transfers nothing; a local delete and change are mirrored', async () => {
    const src = path.join(tmp.path, 'syncsrc');
    writeFile(src, 'a.txt', markedData('rclone sync a', 2000));
    writeFile(src, 'b.txt', markedData('rclone sync b', 3000));
    expectClean(await rclone('sync', '-v', src, `lakecrypt:${bucket}/sync`));
    const again = expectClean(await rclone('sync', '-v', src, `lakecrypt:${bucket}/sync`));
    expect(again.stderr).not.toMatch(/Copied/);
    rmSync(path.join(src, 'a.txt'));
    const changed = markedData('rclone sync b2', 4000);
    writeFile(src, 'b.txt', changed);
    const third = expectClean(await rclone('sync', '-v', src, `lakecrypt:${bucket}/sync`));
    expect(third.stderr).toMatch(/a\.txt: Deleted/);
    expect(third.stderr).toMatch(/b\.txt: Copied \(replaced existing\)/);
    expectClean(await rclone('check', src, `lakecrypt:${bucket}/sync`), { allow: ZERO_DIFF });
    const ls = expectClean(await rclone('lsf', `lakecrypt:${bucket}/sync`));
    expect(ls.stdout.trim().split('\n')).toEqual(['b.txt']);
    expectClean(await rclone('purge', `lakecrypt:${bucket}/sync`));
  });

  it('checks hashes of objects other clients wrote, from the listing alone', async () => {
    const s3 = gw.client();
    const other: Record<string, Buffer> = { 'sdk-small.bin': markedData('rclone other small', 70_000), 'sdk-8m.bin': markedData('rclone other 8m', 8 * MiB) };
    const local = path.join(tmp.path, 'other');
    for (const [n, d] of Object.entries(other)) {
      writeFile(local, n, d);
      // the AWS SDK's defaults: a CRC32 trailer, no Content-MD5
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `other/${n}`, Body: d }));
    }
    const before = log.records.length;
    const check = expectClean(await rclone('check', local, `lakecrypt:${bucket}/other`), { allow: ZERO_DIFF });
    expect(check.stderr).toMatch(/: 2 matching files/);
    expect(check.stderr).not.toMatch(/hashes could not be checked/);
    // the MD5s came with the listing: no HEAD per object (rclone HEADs the root "other" once, to see if it is a file)
    expect(log.records.slice(before).filter((r) => r.op === 'HeadObject' && r.key.startsWith('other/'))).toEqual([]);
    // rclone's own single-part upload above 8 MiB (default cutoff 200M) declares Content-MD5: an MD5 ETag too
    const tenMiB = markedData('rclone single 10m', 10 * MiB + 1);
    other['rclone-10m.bin'] = tenMiB;
    writeFile(local, 'rclone-10m.bin', tenMiB);
    const puts0 = nativeTransfers.put;
    expectClean(await rclone('copyto', path.join(local, 'rclone-10m.bin'), `lakecrypt:${bucket}/other/rclone-10m.bin`));
    expect(log.records.filter((r) => r.op === 'PutObject' && r.key === 'other/rclone-10m.bin').length).toBe(1);
    expect(nativeTransfers.put - puts0).toBe(1); // sealed by the pump, which checked the Content-MD5
    const recheck = expectClean(await rclone('check', local, `lakecrypt:${bucket}/other`), { allow: ZERO_DIFF });
    expect(recheck.stderr).toMatch(/: 3 matching files/);
    expect(recheck.stderr).not.toMatch(/hashes could not be checked/);
    const sums = expectClean(await rclone('md5sum', `lakecrypt:${bucket}/other`)).stdout;
    const got = Object.fromEntries(sums.trim().split('\n').map((l) => l.split(/\s+/).reverse()));
    expect(got).toEqual(Object.fromEntries(Object.entries(other).map(([n, d]) => [n, md5(d)])));
  });

  it('leaves no plaintext in MinIO; cleanup', async () => {
    expect(scanDir(minioCoords().dataDir, [MARKER])).toEqual([]);
    expectClean(await rclone('purge', `lakecrypt:${bucket}`));
  });
});
