/** MinIO client (mc) against lakecrypt on MinIO: alias set, cp, mirror, ls, cat, stat, rm. */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBinary } from '../../tools/process.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { minioCoords, uniqueBucket } from '../helpers/s3.ts';
import { scanDir, startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { nativeDataplane, nativeTransfers } from '../../src/engine/dataplane.ts';
import { accessLog, cleanEnv, expectClean, expectSameFile, MARKER, markedData, md5, run, writeFile } from './util.ts';

const MiB = 1024 * 1024;

describe('mc', () => {
  let gw: TestGateway;
  const log = accessLog();
  const tmp = makeTmpDir('lc-mc-');
  const bucket = uniqueBucket('mc');
  let env: Record<string, string>;
  const configDir = path.join(tmp.path, 'mc-config');
  const mc = (...args: string[]) => run(findBinary('mc')!, ['--config-dir', configDir, '--no-color', ...args], { env });

  beforeAll(async () => {
    expect(findBinary('mc'), 'mc not found: run `bash scripts/test-deps.sh`').toBeTruthy();
    gw = await startTestGateway('s3', { onRequestDone: log.hook });
    env = cleanEnv(path.join(tmp.path, 'home'));
    const endpoint = gw.url;
    const accessKey = gw.accessKey;
    const secretKey = gw.secretKey;
    // docs:begin mc
    const aliasArgs = ['alias', 'set', 'lakecrypt', endpoint, accessKey, secretKey, '--api', 'S3v4', '--path', 'on'];
    // docs:end
    expectClean(await mc(...aliasArgs));
    expectClean(await mc('mb', `lakecrypt/${bucket}`));
  });
  afterAll(async () => {
    await gw?.close();
    tmp.cleanup();
  });

  it('cp (multipart) with metadata, stat, cat, ls, cp back', async () => {
    const big = markedData('mc big', 40 * MiB + 5);
    const src = writeFile(tmp.path, 'up/big.bin', big);
    const parts0 = nativeTransfers.part;
    expectClean(await mc('cp', '--quiet', '--attr', `note=${MARKER}-mcmeta`, src, `lakecrypt/${bucket}/keep/big.bin`));
    const parts = log.records.filter((r) => r.op === 'UploadPart' && r.key === 'keep/big.bin').length;
    expect(parts).toBeGreaterThan(1);
    // over http mc signs its parts as aws-chunks (STREAMING-AWS4-HMAC-SHA256-PAYLOAD): each sealed by the native data
    // plane, which checked every chunk's signature
    expect(nativeDataplane(), 'native/build/dataplane.node').not.toBeNull();
    expect(nativeTransfers.part - parts0).toBe(parts);

    const stat = JSON.parse(expectClean(await mc('stat', '--json', `lakecrypt/${bucket}/keep/big.bin`)).stdout);
    expect(stat.size).toBe(big.length);
    expect(JSON.stringify(stat.metadata)).toContain(`${MARKER}-mcmeta`);

    const cat = expectClean(await mc('cat', `lakecrypt/${bucket}/keep/big.bin`));
    expect(md5(cat.stdoutBuf)).toBe(md5(big));
    const dst = path.join(tmp.path, 'down/big.bin');
    expectClean(await mc('cp', '--quiet', `lakecrypt/${bucket}/keep/big.bin`, dst));
    expectSameFile(dst, big);
  });

  it('mirror up (second mirror copies nothing), ls --recursive, mirror down, rm --recursive', async () => {
    const dir = path.join(tmp.path, 'mirror');
    const files = {
      'a.txt': markedData('mc mirror a', 100),
      'x/b.bin': markedData('mc mirror b', 10 * MiB + 1),
      'x/y/c.bin': markedData('mc mirror c', 70_000),
    };
    for (const [n, d] of Object.entries(files)) writeFile(dir, n, d);
    const puts0 = nativeTransfers.put;
    expectClean(await mc('mirror', '--quiet', dir, `lakecrypt/${bucket}/mirror`));
    expect(nativeTransfers.put - puts0, 'the 10 MiB file: one signed-chunk PUT through the pump (over the 8 MiB the store reads whole)').toBe(1);
    const puts = () => log.records.filter((r) => (r.op === 'PutObject' || r.op === 'CompleteMultipartUpload') && r.key.startsWith('mirror/')).length;
    expect(puts()).toBe(3);
    expectClean(await mc('mirror', '--quiet', dir, `lakecrypt/${bucket}/mirror`));
    expect(puts(), 'second mirror uploads nothing').toBe(3);

    const ls = expectClean(await mc('ls', '--recursive', '--json', `lakecrypt/${bucket}/mirror`));
    const listed = Object.fromEntries(ls.stdout.trim().split('\n').map((l) => JSON.parse(l)).map((e) => [e.key, e.size]));
    expect(listed).toEqual(Object.fromEntries(Object.entries(files).map(([n, d]) => [n, d.length])));

    const down = path.join(tmp.path, 'mirror-down');
    expectClean(await mc('mirror', '--quiet', `lakecrypt/${bucket}/mirror`, down));
    for (const [n, d] of Object.entries(files)) expectSameFile(path.join(down, n), d);

    expectClean(await mc('rm', '--recursive', '--force', `lakecrypt/${bucket}/mirror`));
    const after = expectClean(await mc('ls', '--recursive', `lakecrypt/${bucket}/mirror`));
    expect(after.stdout.trim()).toBe('');
  });

  it('leaves no plaintext in MinIO; cleanup', async () => {
    expect(scanDir(minioCoords().dataDir, [MARKER])).toEqual([]);
    expectClean(await mc('rb', '--force', `lakecrypt/${bucket}`));
  });
});
