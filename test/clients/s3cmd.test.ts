/**
 * s3cmd against lakecrypt on MinIO: put (15 MiB multipart by default), ls, get, info, del. s3cmd compares
 * ETags with the MD5 of what it sent/received (unless the response says `x-amz-server-side-encryption:
 * aws:kms`, which lakecrypt also says); single-part ETags are the plaintext MD5 anyway, multipart ones are
 * `<hex>-N` (s3cmd then uses its own stored MD5), so there must be no "MD5" warning at all.
 */
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBinary } from '../../tools/process.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { minioCoords, uniqueBucket } from '../helpers/s3.ts';
import { scanDir, startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { accessLog, cleanEnv, expectClean, expectSameFile, MARKER, markedData, run, writeFile } from './util.ts';

const MiB = 1024 * 1024;

describe('s3cmd', () => {
  let gw: TestGateway;
  const log = accessLog();
  const tmp = makeTmpDir('lc-s3cmd-');
  const bucket = uniqueBucket('s3cmd');
  let cfgFile: string;
  let env: Record<string, string>;
  const s3cmd = (...args: string[]) => run(findBinary('s3cmd')!, ['-c', cfgFile, ...args], { env });

  beforeAll(async () => {
    expect(findBinary('s3cmd'), 'apt-get install s3cmd (scripts/test-deps.sh)').toBeTruthy();
    gw = await startTestGateway('s3', { onRequestDone: log.hook });
    const hostPort = new URL(gw.url).host;
    const accessKey = gw.accessKey;
    const secretKey = gw.secretKey;
    // docs:begin s3cmd
    // s3cmd -c lakecrypt.s3cfg ...   (host_base/host_bucket: the gateway's host:port, e.g. 127.0.0.1:9100)
    const s3cfg = [
      '[default]',
      `access_key = ${accessKey}`,
      `secret_key = ${secretKey}`,
      `host_base = ${hostPort}`,
      `host_bucket = ${hostPort}`,
      'use_https = False',
      'signature_v2 = False',
      'bucket_location = us-east-1',
      '',
    ].join('\n');
    // docs:end
    cfgFile = path.join(tmp.path, 'lakecrypt.s3cfg');
    writeFileSync(cfgFile, s3cfg);
    env = cleanEnv(path.join(tmp.path, 'home'));
    expectClean(await s3cmd('mb', `s3://${bucket}`));
  });
  afterAll(async () => {
    await gw?.close();
    tmp.cleanup();
  });

  it('put (multipart and single), ls, get, info, del: byte-identical, no MD5 warnings', async () => {
    const big = markedData('s3cmd big', 20 * MiB + 99);
    const small = markedData('s3cmd small', 200_000);
    const bigPath = writeFile(tmp.path, 'up/big.bin', big);
    const smallPath = writeFile(tmp.path, 'up/small.bin', small);
    const put = expectClean(await s3cmd('put', '--add-header', `x-amz-meta-note:${MARKER}-s3cmdmeta`, bigPath, smallPath, `s3://${bucket}/keep/`));
    expect(put.stdout.match(/^upload: /gm)?.length, put.stdout).toBe(2);
    expect(log.records.filter((r) => r.op === 'UploadPart' && r.key === 'keep/big.bin').length).toBe(2); // 15 MiB parts

    const ls = expectClean(await s3cmd('ls', `s3://${bucket}/keep/`));
    expect(ls.stdout).toMatch(new RegExp(`${big.length}\\s+s3://${bucket}/keep/big.bin`));
    expect(ls.stdout).toMatch(new RegExp(`${small.length}\\s+s3://${bucket}/keep/small.bin`));

    for (const [name, data] of [['big.bin', big], ['small.bin', small]] as const) {
      const dst = path.join(tmp.path, 'down', name);
      expectClean(await s3cmd('get', '--force', `s3://${bucket}/keep/${name}`, dst));
      expectSameFile(dst, data);
    }
    const info = expectClean(await s3cmd('info', `s3://${bucket}/keep/small.bin`));
    expect(info.stdout).toContain(`x-amz-meta-note: ${MARKER}-s3cmdmeta`);
    expect(info.stdout).toMatch(/SSE:\s+aws:kms/);

    const tmpObj = writeFile(tmp.path, 'up/gone.txt', markedData('s3cmd gone', 1000));
    expectClean(await s3cmd('put', tmpObj, `s3://${bucket}/tmp/gone.txt`));
    expectClean(await s3cmd('del', `s3://${bucket}/tmp/gone.txt`));
    const after = expectClean(await s3cmd('ls', `s3://${bucket}/tmp/`));
    expect(after.stdout.trim()).toBe('');
  });

  it('leaves no plaintext in MinIO; cleanup', async () => {
    expect(scanDir(minioCoords().dataDir, [MARKER])).toEqual([]);
    expectClean(await s3cmd('del', '--recursive', '--force', `s3://${bucket}/`));
    expectClean(await s3cmd('rb', `s3://${bucket}`));
  });
});
