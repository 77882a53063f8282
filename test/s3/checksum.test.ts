import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ChecksumSet, combineFullObjectCrc, compositeChecksum, expectedFromRequest, type ChecksumAlgorithm, type CrcAlgorithm } from '../../src/s3/checksum.ts';
import { S3Error } from '../../src/errors.ts';

const digestOf = async (alg: ChecksumAlgorithm, b: Buffer) => {
  const s = new ChecksumSet([alg]);
  s.update(b);
  return (await s.digest()).checksums[alg]!;
};
const code = (f: () => unknown) => {
  try { f(); } catch (e) { if (e instanceof S3Error) return e.code; throw e; }
  return 'OK';
};
const acode = async (p: Promise<unknown>) => {
  try { await p; } catch (e) { if (e instanceof S3Error) return e.code; throw e; }
  return 'OK';
};

describe('known values ("123456789")', () => {
  const b = Buffer.from('123456789');
  it.each([
    ['CRC32', 'cbf43926'], ['CRC32C', 'e3069283'], ['CRC64NVME', 'ae8b14860a799888'],
    ['SHA1', createHash('sha1').update(b).digest('hex')], ['SHA256', createHash('sha256').update(b).digest('hex')],
  ] as const)('%s', async (alg, hex) => {
    expect(Buffer.from(await digestOf(alg, b), 'base64').toString('hex')).toBe(hex);
  });
});

describe('expectedFromRequest', () => {
  const md5 = createHash('md5').update('x').digest('base64');
  it('parses and validates', () => {
    expect(expectedFromRequest({ 'content-md5': md5, 'x-amz-checksum-crc32': 'AAAAAA==' })).toEqual({ md5, algorithm: 'CRC32', value: 'AAAAAA==' });
    expect(expectedFromRequest({ 'x-amz-trailer': 'x-amz-checksum-crc64nvme', 'x-amz-sdk-checksum-algorithm': 'CRC64NVME' })).toEqual({ algorithm: 'CRC64NVME', trailerName: 'x-amz-checksum-crc64nvme' });
    expect(expectedFromRequest({ 'x-amz-sdk-checksum-algorithm': 'crc32c' })).toEqual({ algorithm: 'CRC32C' });
    expect(expectedFromRequest({ 'x-amz-checksum-mode': 'ENABLED' })).toEqual({});
    expect(code(() => expectedFromRequest({ 'content-md5': 'abc' }))).toBe('InvalidDigest');
    expect(code(() => expectedFromRequest({ 'x-amz-checksum-crc32': 'AAAA' }))).toBe('InvalidRequest');
    expect(code(() => expectedFromRequest({ 'x-amz-checksum-crc32': 'AAAAAA==', 'x-amz-checksum-sha1': 'x' }))).toBe('InvalidRequest');
    expect(code(() => expectedFromRequest({ 'x-amz-checksum-crc32': 'AAAAAA==', 'x-amz-trailer': 'x-amz-checksum-crc32' }))).toBe('InvalidRequest');
    expect(code(() => expectedFromRequest({ 'x-amz-trailer': 'x-amz-foo' }))).toBe('InvalidRequest');
    expect(code(() => expectedFromRequest({ 'x-amz-sdk-checksum-algorithm': 'MD4' }))).toBe('InvalidRequest');
    expect(code(() => expectedFromRequest({ 'x-amz-sdk-checksum-algorithm': 'SHA256', 'x-amz-checksum-crc32': 'AAAAAA==' }))).toBe('InvalidRequest');
  });
});

describe('verify', () => {
  const body = Buffer.from('hello checksum world');
  it('header value, md5, trailer', async () => {
    const crc = await digestOf('CRC32', body);
    const md5 = createHash('md5').update(body).digest('base64');
    const ok = async (headers: Record<string, string>, trailers?: Map<string, string>) => {
      const exp = expectedFromRequest(headers);
      const s = ChecksumSet.forRequest(exp);
      s.update(body.subarray(0, 5));
      s.update(body.subarray(5));
      return s.verify(exp, trailers);
    };
    expect((await ok({ 'x-amz-checksum-crc32': crc, 'content-md5': md5 })).checksums.CRC32).toBe(crc);
    expect(await acode(ok({ 'x-amz-checksum-crc32': 'AAAAAA==' }))).toBe('BadDigest');
    expect(await acode(ok({ 'content-md5': createHash('md5').update('y').digest('base64') }))).toBe('BadDigest');
    const tr = { 'x-amz-trailer': 'x-amz-checksum-crc32' };
    expect(await acode(ok(tr, new Map([['x-amz-checksum-crc32', crc]])))).toBe('OK');
    expect(await acode(ok(tr, new Map([['x-amz-checksum-crc32', 'AAAAAA==']])))).toBe('BadDigest');
    expect(await acode(ok(tr, new Map([['x-amz-checksum-crc32', 'garbage!']])))).toBe('InvalidRequest');
    expect(await acode(ok(tr, new Map([['x-amz-checksum-sha256', crc]])))).toBe('InvalidRequest');
    expect(await acode(ok(tr, new Map()))).toBe('OK');
    expect(await acode(ok({}, new Map([['x-amz-checksum-crc32', crc]])))).toBe('InvalidRequest');
    expect((await ok({ 'x-amz-sdk-checksum-algorithm': 'SHA256' })).checksums.SHA256).toBe(createHash('sha256').update(body).digest('base64'));
  });
});

describe('multipart combination', () => {
  it('composite = hash of concatenated raw digests with -N', async () => {
    const parts = [Buffer.from('part one'), Buffer.from('part two!')];
    const ds = await Promise.all(parts.map((p) => digestOf('SHA256', p)));
    const expected = createHash('sha256').update(Buffer.concat(ds.map((d) => Buffer.from(d, 'base64')))).digest('base64');
    expect(await compositeChecksum('SHA256', ds)).toBe(`${expected}-2`);
    expect(await compositeChecksum('CRC32', [await digestOf('CRC32', parts[0]!)])).toMatch(/-1$/);
  });
  it('full-object CRC combine equals the CRC of the concatenation (fast-check)', async () => {
    await fc.assert(fc.asyncProperty(
      fc.constantFrom<CrcAlgorithm>('CRC32', 'CRC32C', 'CRC64NVME'), fc.array(fc.uint8Array({ maxLength: 2000 }), { minLength: 1, maxLength: 6 }),
      async (alg, parts) => {
        const bufs = parts.map((p) => Buffer.from(p));
        const ps = await Promise.all(bufs.map(async (b) => ({ checksum: await digestOf(alg, b), length: b.length })));
        expect(combineFullObjectCrc(alg, ps)).toBe(await digestOf(alg, Buffer.concat(bufs)));
      }), { numRuns: 200 });
  });
  it('handles large part lengths (5 GiB parts) quickly', () => {
    const t = Date.now();
    const parts = Array.from({ length: 100 }, () => ({ checksum: 'AAAAAAAAAAA=', length: 5 * 1024 ** 3 }));
    expect(combineFullObjectCrc('CRC64NVME', parts)).toMatch(/=$/);
    expect(Date.now() - t).toBeLessThan(2000);
  });
});
