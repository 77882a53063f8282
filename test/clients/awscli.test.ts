/**
 * AWS CLI against lakecrypt (on MinIO): high-level `aws s3` commands (multipart cp, sync, ls, rm, presign)
 * and the low-level multipart API with 8 MiB parts. Runs every AWS CLI found: the Debian package
 * (/usr/bin/aws, v2) and the pip one (python -m awscli, v1 on a current botocore, which sends CRC32 checksums
 * by default).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTmpDir } from '../../tools/tmp.ts';
import { minioCoords, uniqueBucket } from '../helpers/s3.ts';
import { scanDir, startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { nativeDataplane, nativeTransfers } from '../../src/engine/dataplane.ts';
import { cleanEnv, expectClean, expectSameFile, MARKER, markedData, run, writeFile, type RunResult } from './util.ts';
import { pythonExe } from './python.ts';

const MiB = 1024 * 1024;

/** [label, command prefix] for every AWS CLI installed. */
function awsClis(): [string, string[]][] {
  const out: [string, string[]][] = [];
  if (existsSync('/usr/bin/aws')) out.push(['debian-aws', ['/usr/bin/aws']]);
  try {
    execFileSync(pythonExe(), ['-c', 'import awscli'], { stdio: 'ignore' });
    out.push(['pip-awscli', [pythonExe(), '-m', 'awscli']]);
  } catch {
    /* not installed */
  }
  if (out.length === 0) throw new Error('no AWS CLI found: run `bash scripts/test-deps.sh` (apt awscli)');
  return out;
}

let gw: TestGateway;
beforeAll(async () => {
  gw = await startTestGateway('s3');
});
afterAll(async () => {
  await gw?.close();
});

describe.each(awsClis())('AWS CLI (%s)', (label, prefix) => {
  const tmp = makeTmpDir('lc-aws-');
  const bucket = uniqueBucket(`aws-${label}`);
  let env: Record<string, string>;
  const aws = async (...args: string[]): Promise<RunResult> =>
    run(prefix[0]!, [...prefix.slice(1), '--endpoint-url', gw.url, ...args], { env, cwd: tmp.path });

  beforeAll(async () => {
    const home = path.join(tmp.path, 'home');
    // docs:begin awscli-config
    // ~/.aws/config (or the file named by AWS_CONFIG_FILE)
    const awsConfig = ['[default]', 'region = us-east-1', 's3 =', '    addressing_style = path', '    signature_version = s3v4', ''].join('\n');
    // environment, and every command gets: --endpoint-url http://127.0.0.1:9100
    const awsEnv = {
      AWS_ACCESS_KEY_ID: gw.accessKey,
      AWS_SECRET_ACCESS_KEY: gw.secretKey,
      AWS_DEFAULT_REGION: 'us-east-1',
      AWS_CONFIG_FILE: path.join(home, 'aws-config'),
    };
    // docs:end
    env = cleanEnv(home, { ...awsEnv, AWS_SHARED_CREDENTIALS_FILE: path.join(home, 'none'), AWS_EC2_METADATA_DISABLED: 'true', AWS_PAGER: '' });
    writeFileSync(awsEnv.AWS_CONFIG_FILE, awsConfig);
    expectClean(await aws('s3', 'mb', `s3://${bucket}`));
  });
  afterAll(() => tmp.cleanup());

  it('cp up and down, > 8 MiB so both go multipart, with user metadata', async () => {
    const data = markedData(`aws ${label} cp`, 20 * MiB + 12345);
    const src = writeFile(tmp.path, 'up/big.bin', data);
    const parts0 = nativeTransfers.part;
    expectClean(await aws('s3', 'cp', '--no-progress', src, `s3://${bucket}/keep/big.bin`, '--metadata', `note=${MARKER}-awsmeta`));
    // its 8 MiB parts (over http: a signed SHA-256 and a CRC32 each) sealed by the native data plane, which checked both
    expect(nativeDataplane(), 'native/build/dataplane.node').not.toBeNull();
    expect(nativeTransfers.part - parts0).toBe(3);
    const head = JSON.parse(expectClean(await aws('s3api', 'head-object', '--bucket', bucket, '--key', 'keep/big.bin')).stdout);
    expect(head.ContentLength).toBe(data.length);
    expect(head.ETag).toMatch(/^"[0-9a-f]{32}-3"$/); // 8 MiB parts: 3 of them
    expect(head.Metadata).toEqual({ note: `${MARKER}-awsmeta` });
    const dst = path.join(tmp.path, 'down/big.bin');
    expectClean(await aws('s3', 'cp', '--no-progress', `s3://${bucket}/keep/big.bin`, dst));
    expectSameFile(dst, data);
  });

  it('sync uploads once; a second sync uploads nothing; ls lists; rm --recursive removes', async () => {
    const dir = path.join(tmp.path, 'syncsrc');
    const files = {
      'a.txt': markedData(`aws ${label} sync a`, 1000),
      'sub/b.bin': markedData(`aws ${label} sync b`, 9 * MiB + 7),
      'sub/deeper/c.bin': markedData(`aws ${label} sync c`, 300_000),
    };
    for (const [name, data] of Object.entries(files)) writeFile(dir, name, data);
    const first = expectClean(await aws('s3', 'sync', '--no-progress', dir, `s3://${bucket}/sync/`));
    expect(first.stdout.match(/^upload: /gm)?.length ?? 0, first.stdout).toBe(3);
    const second = expectClean(await aws('s3', 'sync', '--no-progress', dir, `s3://${bucket}/sync/`));
    expect(second.stdout.trim(), 'second sync should transfer nothing').toBe('');

    const ls = expectClean(await aws('s3', 'ls', `s3://${bucket}/sync/`, '--recursive'));
    const listed = Object.fromEntries(
      ls.stdout
        .trim()
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .map((f) => [f[3]!, Number(f[2])]),
    );
    expect(listed).toEqual(Object.fromEntries(Object.entries(files).map(([n, d]) => [`sync/${n}`, d.length])));

    const down = path.join(tmp.path, 'syncdown');
    expectClean(await aws('s3', 'sync', '--no-progress', `s3://${bucket}/sync/`, down));
    for (const [name, data] of Object.entries(files)) expectSameFile(path.join(down, name), data);

    const rm = expectClean(await aws('s3', 'rm', `s3://${bucket}/sync/`, '--recursive'));
    expect(rm.stdout.match(/^delete: /gm)?.length ?? 0).toBe(3);
    const after = await aws('s3', 'ls', `s3://${bucket}/sync/`, '--recursive');
    expect(after.stdout.trim()).toBe('');
  });

  it('s3api create-multipart-upload / upload-part (8 MiB) / complete-multipart-upload', async () => {
    const data = markedData(`aws ${label} mpu`, 2 * 8 * MiB + 555);
    const key = 'keep/mpu.bin';
    const created = JSON.parse(expectClean(await aws('s3api', 'create-multipart-upload', '--bucket', bucket, '--key', key)).stdout);
    const parts: { PartNumber: number; ETag: string }[] = [];
    for (let i = 0; i * 8 * MiB < data.length; i++) {
      const p = writeFile(tmp.path, `parts/p${i + 1}`, data.subarray(i * 8 * MiB, (i + 1) * 8 * MiB));
      const up = JSON.parse(
        expectClean(
          await aws('s3api', 'upload-part', '--bucket', bucket, '--key', key, '--upload-id', created.UploadId, '--part-number', String(i + 1), '--body', p),
        ).stdout,
      );
      parts.push({ PartNumber: i + 1, ETag: up.ETag });
    }
    const mpFile = writeFile(tmp.path, 'parts/mpu.json', Buffer.from(JSON.stringify({ Parts: parts })));
    const done = JSON.parse(
      expectClean(
        await aws('s3api', 'complete-multipart-upload', '--bucket', bucket, '--key', key, '--upload-id', created.UploadId, '--multipart-upload', `file://${mpFile}`),
      ).stdout,
    );
    expect(done.ETag).toMatch(/-3"$/);
    const dst = path.join(tmp.path, 'down/mpu.bin');
    const got = JSON.parse(expectClean(await aws('s3api', 'get-object', '--bucket', bucket, '--key', key, dst)).stdout);
    expect(got.ETag).toBe(done.ETag);
    expectSameFile(dst, data);
  });

  it('presigned GET URL fetched with curl is byte-identical', async () => {
    const data = markedData(`aws ${label} presign`, 3 * MiB + 3);
    const src = writeFile(tmp.path, 'up/presign.bin', data);
    expectClean(await aws('s3', 'cp', '--no-progress', src, `s3://${bucket}/keep/presign.bin`));
    const url = expectClean(await aws('s3', 'presign', `s3://${bucket}/keep/presign.bin`, '--expires-in', '300')).stdout.trim();
    expect(url).toMatch(new RegExp(`^${gw.url}/${bucket}/keep/presign\\.bin\\?`));
    const dst = path.join(tmp.path, 'down/presign.bin');
    expectClean(await run('curl', ['-sS', '--fail', '-o', dst, url], { env }));
    expectSameFile(dst, data);
    // and a tampered signature is refused
    const bad = await run('curl', ['-sS', '--fail', '-o', '/dev/null', url.replace(/Signature=[0-9a-f]/, 'Signature=x')], { env });
    expect(bad.code).not.toBe(0);
  });

  it('leaves no plaintext (contents, metadata) in MinIO', async () => {
    const dir = minioCoords().dataDir;
    expect(dir, 'needs the test MinIO started by global-setup').toBeTruthy();
    expect(readFileSync(path.join(tmp.path, 'up/big.bin')).includes(Buffer.from(MARKER))).toBe(true);
    expect(scanDir(dir, [MARKER])).toEqual([]);
    expectClean(await aws('s3', 'rm', `s3://${bucket}/`, '--recursive'));
    expectClean(await aws('s3', 'rb', `s3://${bucket}`));
  });
});
