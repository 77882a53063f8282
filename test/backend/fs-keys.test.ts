/** fs backend: hostile keys map safely, distinctly, and never outside the data dir. */
import { createHash } from 'node:crypto';
import { readdirSync, lstatSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FsBackend } from '../../src/backend/fs.ts';
import { S3Error } from '../../src/errors.ts';
import { makeTmpDir } from '../../tools/tmp.ts';

const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

function walkFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = path.join(dir, e);
    const st = lstatSync(p);
    if (st.isSymbolicLink()) throw new Error(`unexpected symlink ${p}`);
    if (st.isDirectory()) out.push(p + path.sep, ...walkFiles(p));
    else out.push(p);
  }
  return out;
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(S3Error);
    return (e as S3Error).code;
  }
  return 'no error';
}

const HOSTILE = [
  '../../etc/passwd',
  '../../../../../../../../../../tmp/evil',
  'a/../../b',
  '..',
  '.',
  './',
  '../',
  '/',
  '//x',
  '/leading',
  'trailing/',
  'a',
  'a/b',
  'a/b/c',
  'a//b',
  'a/./b',
  'nfc-\u00e9',
  'nfc-e\u0301',
  'key%2Fslash',
  'key/slash',
  'back\\slash',
  '..\\..\\windows',
  'ctrl\u0001\u007f',
  'tab\tnew\nline\r',
  ' space ',
  '.bucket.json',
  '00.o',
  '61.o',
  'x'.repeat(1024),
  'x'.repeat(1023),
  'x'.repeat(1023) + 'y',
  '\u00e9'.repeat(512),
  '\u{1F600}'.repeat(256),
  'é/'.repeat(300).slice(0, 600),
];

describe('fs backend: hostile keys', () => {
  const parent = makeTmpDir('lakecrypt-fskeys-');
  const dataDir = path.join(parent.path, 'nest', 'deeper', 'data');
  const b = new FsBackend({ dataDir });
  const bucket = 'hostile';
  afterAll(() => parent.cleanup());

  it('round-trips every key distinctly, lists them in byte order, and stays inside the data dir', async () => {
    expect(new Set(HOSTILE).size).toBe(HOSTILE.length);
    for (const k of HOSTILE) expect(Buffer.byteLength(k)).toBeLessThanOrEqual(1024);
    await b.createBucket(bucket);
    for (const [i, k] of HOSTILE.entries()) {
      const body = Buffer.from(`body-${i}`);
      await b.putObject(bucket, k, body, { size: body.length, meta: { i: String(i) } });
    }
    for (const [i, k] of HOSTILE.entries()) {
      const { data, info } = await b.getBuffer(bucket, k);
      expect(data.toString()).toBe(`body-${i}`);
      expect(info.key).toBe(k);
      expect(info.meta.i).toBe(String(i));
      expect((await b.headObject(bucket, k))!.etag).toBe(createHash('md5').update(`body-${i}`).digest('hex'));
    }
    const listed = await b.listObjects(bucket, {});
    expect(listed.objects.map((o) => o.key)).toEqual([...HOSTILE].sort(byteOrder));

    // `a` and `a/b` coexist; a delimiter listing shows both the object and the prefix
    const d = await b.listObjects(bucket, { prefix: 'a', delimiter: '/' });
    expect(d.objects.map((o) => o.key)).toEqual(['a']);
    expect(d.commonPrefixes).toEqual(['a/']);
    const d2 = await b.listObjects(bucket, { prefix: 'a/', delimiter: '/' });
    expect(d2.objects.map((o) => o.key)).toEqual(['a/b']);
    expect(d2.commonPrefixes).toEqual(['a/../', 'a/./', 'a//', 'a/b/']); // '.' (0x2e) < '/' (0x2f)
    // prefix that cuts a long key in the middle of a path segment
    const long = await b.listObjects(bucket, { prefix: 'x'.repeat(1023) });
    expect(long.objects.map((o) => o.key)).toEqual(['x'.repeat(1023), 'x'.repeat(1024), 'x'.repeat(1023) + 'y']);
    const paged: string[] = [];
    let token: string | undefined;
    do {
      const r = await b.listObjects(bucket, { maxKeys: 3, continuationToken: token });
      paged.push(...r.objects.map((o) => o.key));
      token = r.nextContinuationToken;
    } while (token);
    expect(paged).toEqual([...HOSTILE].sort(byteOrder));

    // copy and multipart with hostile keys
    await b.copyObject(bucket, '../../etc/passwd', bucket, 'a/../../b', { meta: { c: '1' } });
    expect((await b.getBuffer(bucket, 'a/../../b')).data.toString()).toBe('body-0');
    const id = await b.createMultipart(bucket, '../mpu/../../x', {});
    const p = await b.uploadPart(bucket, '../mpu/../../x', id, 1, Buffer.from('mp'), 2);
    await b.completeMultipart(bucket, '../mpu/../../x', id, [{ partNumber: 1, etag: p.etag }]);
    expect((await b.getBuffer(bucket, '../mpu/../../x')).data.toString()).toBe('mp');

    // nothing outside the data dir: the only entries under the parent are the path to it and the dir itself
    const all = walkFiles(parent.path);
    const outside = all.filter((f) => !f.startsWith(dataDir + path.sep));
    expect(outside.sort()).toEqual([path.join(parent.path, 'nest') + path.sep, path.join(parent.path, 'nest', 'deeper') + path.sep]);
    // every stored path component is hex + .o/.d (or the bucket marker)
    const objectsDir = path.join(dataDir, 'objects', bucket);
    for (const f of walkFiles(objectsDir)) {
      for (const part of path.relative(objectsDir, f).split(path.sep).filter(Boolean)) {
        expect(part === '.bucket.json' || /^[0-9a-f]{1,200}\.[od]$/.test(part)).toBe(true);
      }
    }

    // deletes remove exactly one key each and prune empty directories
    for (const k of HOSTILE) await b.deleteObject(bucket, k);
    await b.deleteObject(bucket, '../mpu/../../x');
    await b.deleteObject(bucket, 'a/../../b');
    expect((await b.listObjects(bucket, {})).objects).toEqual([]);
    expect(readdirSync(objectsDir)).toEqual(['.bucket.json']);
    await b.deleteBucket(bucket);
  });

  it('rejects over-long and empty keys, hostile bucket names and upload ids', async () => {
    await b.createBucket('limits');
    expect(await code(b.putObject('limits', 'x'.repeat(1025), Buffer.from('1'), { size: 1 }))).toBe('KeyTooLongError');
    expect(await code(b.putObject('limits', '\u00e9'.repeat(513), Buffer.from('1'), { size: 1 }))).toBe('KeyTooLongError');
    expect(await code(b.putObject('limits', '', Buffer.from('1'), { size: 1 }))).toBe('InvalidArgument');
    for (const bad of ['..', '../x', 'a/b', 'ABC', 'x', '.hidden', 'has space']) {
      expect(await code(b.createBucket(bad))).toBe('InvalidBucketName');
      expect(await b.bucketExists(bad)).toBe(false);
    }
    for (const id of ['../../x', '', 'ABCDEF', '0'.repeat(31), '0'.repeat(32)]) {
      expect(await code(b.uploadPart('limits', 'k', id, 1, Buffer.from('1'), 1))).toBe('NoSuchUpload');
      expect(await code(b.abortMultipart('limits', 'k', id))).toBe('NoSuchUpload');
    }
    expect(await code(b.listObjects('limits', { continuationToken: 'garbage!' }))).toBe('InvalidArgument');
    const id = await b.createMultipart('limits', 'k', {});
    expect(await code(b.uploadPart('limits', 'other-key', id, 1, Buffer.from('1'), 1))).toBe('NoSuchUpload');
    expect(await code(b.uploadPart('limits', 'k', id, 0, Buffer.from('1'), 1))).toBe('InvalidArgument');
    expect(await code(b.uploadPart('limits', 'k', id, 10001, Buffer.from('1'), 1))).toBe('InvalidArgument');
    expect(await code(b.putObject('limits', 'short', Buffer.from('12'), { size: 3 }))).toBe('IncompleteBody');
    expect(await b.headObject('limits', 'short')).toBeNull();
  });

  it('a stale lock file left by a crashed process is broken', async () => {
    await b.createBucket('stale');
    const name = createHash('sha256').update('stale').update('\0').update('k').digest('hex');
    const lock = path.join(dataDir, 'locks', name);
    writeFileSync(lock, '999999\n');
    const old = new Date(Date.now() - 60_000);
    utimesSync(lock, old, old);
    const t0 = Date.now();
    await b.putObject('stale', 'k', Buffer.from('v'), { size: 1, ifNoneMatch: '*' });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect((await b.getBuffer('stale', 'k')).data.toString()).toBe('v');
  });
});
