/**
 * Real clients with Signature Version 2 against lakecrypt on MinIO: boto3 (its default presigned URLs, and a
 * client with signature_version="s3" signing every request with SigV2 header auth) and s3cmd with
 * `signature_v2 = True`. Raw-request protocol tests are in test/s3/sigv2.test.ts.
 */
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBinary } from '../../tools/process.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { minioCoords, uniqueBucket } from '../helpers/s3.ts';
import { scanDir, startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { accessLog, cleanEnv, expectClean, expectSameFile, MARKER, markedData, run, writeFile } from './util.ts';
import { pythonExe, pythonHas, scriptPath } from './python.ts';

const MiB = 1024 * 1024;

describe('SigV2 clients', () => {
  let gw: TestGateway;
  let off: TestGateway;
  const log = accessLog();
  const tmp = makeTmpDir('lc-sigv2-');
  beforeAll(async () => {
    gw = await startTestGateway('s3', { onRequestDone: log.hook });
    off = await startTestGateway('s3', { sigv2: false });
  });
  afterAll(async () => {
    await gw?.close();
    await off?.close();
    tmp.cleanup();
  });

  it('boto3: default generate_presigned_url and signature_version="s3" (every request SigV2) work; tampered, expired, other method or key refused; refused when sigv2 is off', async () => {
    expect(pythonHas(['boto3']), 'pip install boto3 (scripts/test-deps.sh)').toEqual([]);
    const bucket = uniqueBucket('boto3-v2');
    const env = cleanEnv(path.join(tmp.path, 'home-boto3'), {
      LC_ACCESS_KEY: gw.accessKey,
      LC_SECRET_KEY: gw.secretKey,
      LC_OFF_ACCESS_KEY: off.accessKey,
      LC_OFF_SECRET_KEY: off.secretKey,
    });
    const from = log.records.length;
    const r = expectClean(await run(pythonExe(), [scriptPath('sigv2_boto3.py'), gw.url, bucket, off.url], { env }));
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    expect(out.ok).toBe(true);
    // this boto3 presigns with SigV2 by default for a custom endpoint (what tutorials hand out)
    expect(out.s3_form).toBe('v2');
    expect(['v2', 'v4']).toContain(out.default_form);
    for (const name of ['default', 's3']) {
      expect(out[`${name}_get`], name).toBe(200);
      expect(out[`${name}_put`], name).toBe(200);
      expect(out[`${name}_expired`], name).toEqual([403, 'AccessDenied']);
      expect(out[`${name}_get_as_put`], name).toEqual([403, 'SignatureDoesNotMatch']);
      expect(out[`${name}_other_key`], name).toEqual([403, 'SignatureDoesNotMatch']);
    }
    expect(out.s3_tampered).toEqual([403, 'SignatureDoesNotMatch']);
    if (out.default_form === 'v2') expect(out.default_tampered).toEqual([403, 'SignatureDoesNotMatch']);
    expect(out.listed).toEqual(['v2/small ü.bin']);
    expect(out.listed_parts).toBe(2);
    expect(out.deleted).toEqual(['v2/big.bin', 'v2/copy.bin']);
    expect(out.after_delete).toEqual(['v2/presigned-s3.txt', 'v2/small ü.bin']);
    expect(out.off_header).toBe('InvalidRequest');
    expect(out.off_query).toEqual([400, 'InvalidRequest']);

    // the header-signed requests really were SigV2 (and were not refused)
    const mine = log.records.slice(from).filter((x) => x.bucket === bucket);
    const v2Signed = mine.filter((x) => /^AWS [^:]+:/.test(String(x.headers.authorization ?? '')));
    expect(v2Signed.map((x) => x.op)).toEqual(expect.arrayContaining(['CreateBucket', 'PutObject', 'GetObject', 'HeadObject', 'ListObjectsV2', 'CreateMultipartUpload', 'UploadPart', 'ListParts', 'CompleteMultipartUpload', 'CopyObject', 'DeleteObjects', 'DeleteObject']));
    expect(v2Signed.filter((x) => x.status >= 400).map((x) => `${x.op} ${x.status}`)).toEqual([]);
  });

  it('s3cmd with signature_v2 = True: put (multipart and single), ls, get, info, del', async () => {
    expect(findBinary('s3cmd'), 'apt-get install s3cmd (scripts/test-deps.sh)').toBeTruthy();
    const bucket = uniqueBucket('s3cmd-v2');
    const hostPort = new URL(gw.url).host;
    const cfgFile = path.join(tmp.path, 'sigv2.s3cfg');
    writeFileSync(cfgFile, ['[default]', `access_key = ${gw.accessKey}`, `secret_key = ${gw.secretKey}`, `host_base = ${hostPort}`, `host_bucket = ${hostPort}`, 'use_https = False', 'signature_v2 = True', 'bucket_location = us-east-1', ''].join('\n'));
    const env = cleanEnv(path.join(tmp.path, 'home-s3cmd'));
    const s3cmd = (...args: string[]) => run(findBinary('s3cmd')!, ['-c', cfgFile, ...args], { env });
    const from = log.records.length;

    expectClean(await s3cmd('mb', `s3://${bucket}`));
    const big = markedData('s3cmd v2 big', 20 * MiB + 99);
    const small = markedData('s3cmd v2 small', 100_000);
    const bigPath = writeFile(tmp.path, 'up/big.bin', big);
    const smallPath = writeFile(tmp.path, 'up/small file.bin', small);
    const put = expectClean(await s3cmd('put', '--add-header', `x-amz-meta-note:${MARKER}-v2meta`, bigPath, smallPath, `s3://${bucket}/keep/`));
    expect(put.stdout.match(/^upload: /gm)?.length, put.stdout).toBe(2);

    const ls = expectClean(await s3cmd('ls', `s3://${bucket}/keep/`));
    expect(ls.stdout).toMatch(new RegExp(`${big.length}\\s+s3://${bucket}/keep/big.bin`));
    expect(ls.stdout).toMatch(new RegExp(`${small.length}\\s+s3://${bucket}/keep/small file.bin`));
    for (const [name, data] of [['big.bin', big], ['small file.bin', small]] as const) {
      const dst = path.join(tmp.path, 'down', name);
      expectClean(await s3cmd('get', '--force', `s3://${bucket}/keep/${name}`, dst));
      expectSameFile(dst, data);
    }
    const info = expectClean(await s3cmd('info', `s3://${bucket}/keep/small file.bin`));
    expect(info.stdout).toContain(`x-amz-meta-note: ${MARKER}-v2meta`);

    expectClean(await s3cmd('del', `s3://${bucket}/keep/small file.bin`));
    expect(expectClean(await s3cmd('ls', `s3://${bucket}/keep/`)).stdout).not.toContain('small file.bin');
    expectClean(await s3cmd('del', '--recursive', '--force', `s3://${bucket}/`));
    expectClean(await s3cmd('rb', `s3://${bucket}`));

    // every request s3cmd made was SigV2-signed, multipart included, and none was refused
    const mine = log.records.slice(from).filter((x) => x.bucket === bucket);
    expect(mine.length).toBeGreaterThan(8);
    expect(mine.filter((x) => !/^AWS [^:]+:/.test(String(x.headers.authorization ?? ''))).map((x) => x.op)).toEqual([]);
    expect(mine.filter((x) => x.op === 'UploadPart').length).toBe(2);
    // `info` also asks for ?policy, ?cors and ?acl, which lakecrypt does not implement: 501 comes after the
    // signature verified (signed over those sub-resources; a wrong resource would be 403), as with SigV4
    expect(mine.filter((x) => x.status === 501).length).toBe(3);
    expect(mine.filter((x) => x.status >= 400 && x.status !== 501).map((x) => `${x.op} ${x.status}`)).toEqual([]);
    expect(scanDir(minioCoords().dataDir, [MARKER])).toEqual([]);
  });
});
