/**
 * The Backend contract: one suite, run against every backend (fs.test.ts, s3.test.ts, versitygw.test.ts).
 * Everything here must hold for the embedded fs backend AND for every real S3 store (MinIO, versitygw), except
 * where a store's documented difference is named in its BackendTraits and checked as that store answers.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backend/types.ts';
import { S3Error } from '../../src/errors.ts';
import { pollUntil } from '../../tools/wait.ts';
import { uniqueBucketName } from './names.ts';

export interface ContractTarget {
  backend: Backend;
  cleanup?: () => Promise<void> | void;
}

/** Where a store differs from S3 in ways lakecrypt copes with; each is checked as the store answers, not skipped. */
export interface BackendTraits {
  /**
   * Listings carry user metadata (`withMeta`): fs reads it from its files, MinIO answers its `metadata=true`
   * extension. false (versitygw, AWS S3): the parameter is ignored, every listed object's `meta` is undefined and
   * the gateway HEADs each one (src/server/listing.ts).
   */
  listsMetadata: boolean;
  /**
   * CompleteMultipartUpload checks each part's size before it looks for the parts after it, so a small part 1
   * followed by a part never uploaded is EntityTooSmall (versitygw v1.8.0) rather than S3's and MinIO's InvalidPart.
   * Either is a refusal that leaves the upload open; the gateway finds a missing part in its own records first.
   */
  partSizeBeforeLaterParts?: boolean;
  /**
   * A key that is also the prefix of another ('p' and 'p/q'), and a key ending in '/' with data (lakecrypt's 'dir/'
   * markers carry ciphertext): 'kept' (fs, S3) both stored and listed; 'unlisted' (MinIO) both stored and readable,
   * but a listing leaves out the keys under an object's name; 'refused' (versitygw, objects are files) the second
   * write is InvalidArgument and so is a marker with data.
   */
  nestedKeys?: 'kept' | 'unlisted' | 'refused';
}

const S3_LIKE: BackendTraits = { listsMetadata: true };

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const MiB = 1024 * 1024;

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function streamOf(buf: Buffer, chunk = 64 * 1024): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < buf.length; i += chunk) yield buf.subarray(i, i + chunk);
    })(),
  );
}

async function expectCode(p: Promise<unknown>, code: string | string[]) {
  const codes = Array.isArray(code) ? code : [code];
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(S3Error);
    expect(codes).toContain((e as S3Error).code);
    return e as S3Error;
  }
  throw new Error(`expected S3Error ${codes.join('|')}, but the call succeeded`);
}

/** UTF-8 byte order, as S3 lists. */
const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/** fn over items, `concurrency` at a time; the results in the items' order. */
async function inParallel<T, R>(items: readonly T[], concurrency: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i], i);
      }
    }),
  );
  return out;
}

async function putMany(b: Backend, bucket: string, keys: string[], concurrency = 32) {
  let i = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (i < keys.length) {
        const k = keys[i++];
        const body = Buffer.from(`v:${k}`);
        await b.putObject(bucket, k, body, { size: body.length });
      }
    }),
  );
}

/** Page through a listing, returning the flat sequence of keys and common prefixes. */
async function listAll(b: Backend, bucket: string, opts: { prefix?: string; delimiter?: string; startAfter?: string; maxKeys?: number }) {
  const keys: string[] = [];
  const prefixes: string[] = [];
  const pages: number[] = [];
  let token: string | undefined;
  for (let guard = 0; guard < 100_000; guard++) {
    const r = await b.listObjects(bucket, { ...opts, continuationToken: token });
    keys.push(...r.objects.map((o) => o.key));
    prefixes.push(...r.commonPrefixes);
    pages.push(r.objects.length + r.commonPrefixes.length);
    if (opts.maxKeys) expect(r.objects.length + r.commonPrefixes.length).toBeLessThanOrEqual(opts.maxKeys);
    if (!r.isTruncated) {
      expect(r.nextContinuationToken).toBeUndefined();
      break;
    }
    expect(r.nextContinuationToken).toBeTruthy();
    token = r.nextContinuationToken;
  }
  return { keys, prefixes, pages };
}

export function backendContract(name: string, makeTarget: () => Promise<ContractTarget>, traits: BackendTraits = S3_LIKE) {
  describe(`Backend contract: ${name}`, () => {
    let t: ContractTarget;
    let b: Backend;
    const created: string[] = [];
    const newBucket = async (p = 'c') => {
      const name = uniqueBucketName(p);
      await b.createBucket(name);
      created.push(name);
      return name;
    };

    beforeAll(async () => {
      t = await makeTarget();
      b = t.backend;
    });
    afterAll(async () => {
      // best-effort cleanup of everything this suite created
      for (const bucket of created) {
        try {
          for (const u of await b.listMultipartUploads(bucket)) await b.abortMultipart(bucket, u.key, u.uploadId).catch(() => {});
          for (;;) {
            const r = await b.listObjects(bucket, {});
            await Promise.all(r.objects.map((o) => b.deleteObject(bucket, o.key)));
            if (!r.isTruncated) break;
          }
          await b.deleteBucket(bucket);
        } catch {
          /* ignore */
        }
      }
      await b?.close();
      await t?.cleanup?.();
    });

    // ------------------------------------------------------------------------------------------ buckets
    describe('buckets', () => {
      it('create / exists / list / delete', async () => {
        const name = uniqueBucketName('bk');
        expect(await b.bucketExists(name)).toBe(false);
        await b.createBucket(name);
        expect(await b.bucketExists(name)).toBe(true);
        const list = await b.listBuckets();
        const mine = list.find((x) => x.name === name);
        expect(mine).toBeDefined();
        expect(mine!.creationDate).toBeInstanceOf(Date);
        expect(Math.abs(mine!.creationDate.getTime() - Date.now())).toBeLessThan(10 * 60_000);
        const names = list.map((x) => x.name);
        expect([...names].sort(byteOrder)).toEqual(names);
        await expectCode(b.createBucket(name), 'BucketAlreadyOwnedByYou');
        await b.deleteBucket(name);
        expect(await b.bucketExists(name)).toBe(false);
        await expectCode(b.deleteBucket(name), 'NoSuchBucket');
      });

      it('refuses to delete a non-empty bucket', async () => {
        const bucket = await newBucket();
        await b.putObject(bucket, 'x', Buffer.from('1'), { size: 1 });
        await expectCode(b.deleteBucket(bucket), 'BucketNotEmpty');
        await b.deleteObject(bucket, 'x');
        await b.deleteBucket(bucket);
        expect(await b.bucketExists(bucket)).toBe(false);
      });

      it('rejects invalid bucket names', async () => {
        for (const bad of ['ab', 'Bad_Name', '-leading', 'a..b', '192.168.1.1']) {
          await expectCode(b.createBucket(bad), 'InvalidBucketName');
        }
      });

      it('object calls on a missing bucket fail with NoSuchBucket', async () => {
        const missing = uniqueBucketName('nob');
        await expectCode(b.putObject(missing, 'k', Buffer.from('x'), { size: 1 }), 'NoSuchBucket');
        // large bodies too: versitygw refuses before reading the body and closes the connection (the client sees a
        // reset), MinIO answers before the body (Expect: 100-continue); either way NoSuchBucket, not a network error
        const big = randomBytes(8 * MiB);
        await expectCode(b.putObject(missing, 'k', big, { size: big.length }), 'NoSuchBucket');
        await expectCode(b.putObject(missing, 'k', streamOf(big), { size: big.length }), 'NoSuchBucket');
        await expectCode(b.getObject(missing, 'k'), 'NoSuchBucket');
        await expectCode(b.listObjects(missing, {}), 'NoSuchBucket');
        await expectCode(b.createMultipart(missing, 'k', {}), 'NoSuchBucket');
        expect(await b.headObject(missing, 'k')).toBeNull();
      });
    });

    // ------------------------------------------------------------------------------------------ objects
    describe('objects', () => {
      let bucket: string;
      beforeAll(async () => {
        bucket = await newBucket('obj');
      });

      it('put (Buffer) / head / get / getBuffer / delete with metadata', async () => {
        const data = randomBytes(1000);
        const before = Date.now();
        const { etag } = await b.putObject(bucket, 'dir/obj.bin', data, { size: data.length, meta: { 'lc-oid': 'abc123', 'lc-fmt': '1' } });
        expect(etag).toBe(md5(data));
        const h = await b.headObject(bucket, 'dir/obj.bin');
        expect(h).not.toBeNull();
        expect(h!.key).toBe('dir/obj.bin');
        expect(h!.size).toBe(1000);
        expect(h!.etag).toBe(etag);
        expect(h!.meta).toMatchObject({ 'lc-oid': 'abc123', 'lc-fmt': '1' });
        expect(Math.abs(h!.lastModified.getTime() - before)).toBeLessThan(60_000);
        const g = await b.getObject(bucket, 'dir/obj.bin');
        expect(await readAll(g.body)).toEqual(data);
        expect(g.info.etag).toBe(etag);
        expect(g.info.size).toBe(1000);
        expect(g.info.meta['lc-oid']).toBe('abc123');
        const gb = await b.getBuffer(bucket, 'dir/obj.bin');
        expect(gb.data).toEqual(data);
        expect(gb.info.etag).toBe(etag);
        await b.deleteObject(bucket, 'dir/obj.bin');
        expect(await b.headObject(bucket, 'dir/obj.bin')).toBeNull();
        await expectCode(b.getObject(bucket, 'dir/obj.bin'), 'NoSuchKey');
        await b.deleteObject(bucket, 'dir/obj.bin'); // idempotent
        await b.deleteObject(bucket, 'never-existed');
      });

      it('put (Readable stream, known size) and empty objects', async () => {
        const data = randomBytes(3 * MiB + 17);
        const { etag } = await b.putObject(bucket, 'stream.bin', streamOf(data), { size: data.length });
        expect(etag).toBe(md5(data));
        expect((await b.getBuffer(bucket, 'stream.bin')).data.equals(data)).toBe(true);
        const e = await b.putObject(bucket, 'empty', Buffer.alloc(0), { size: 0 });
        expect(e.etag).toBe(md5(Buffer.alloc(0)));
        const g = await b.getBuffer(bucket, 'empty');
        expect(g.data.length).toBe(0);
        expect(g.info.size).toBe(0);
        const es = await b.putObject(bucket, 'empty-stream', Readable.from([]), { size: 0 });
        expect(es.etag).toBe(md5(Buffer.alloc(0)));
      });

      it('a streamed body that fails or ends before its declared size commits nothing: the current object stays', async () => {
        // The gateway holds back a body's last bytes until its checksums verified and aborts the backend request when
        // they do not: the store must never commit what it received (versitygw does, unless the body is aws-chunked).
        const current = randomBytes(1000);
        const put = await b.putObject(bucket, 'cut-short', current, { size: current.length });
        for (const [how, size] of [['fails', 100_000], ['fails', 3 * MiB], ['ends short', 100_000], ['ends short', 3 * MiB]] as const) {
          const body = new Readable({ read() {} });
          const p = b.putObject(bucket, 'cut-short', body, { size });
          // all but the last 16 bytes, then the producer's error (or its end)
          const sent = randomBytes(size - 16);
          for (let i = 0; i < sent.length; i += 256 * 1024) body.push(sent.subarray(i, i + 256 * 1024));
          await pollUntil(() => body.readableLength === 0 || body.destroyed, { timeoutMs: 60_000, what: 'the body to be taken up' });
          if (how === 'fails') body.destroy(new Error('checksum mismatch'));
          else body.push(null);
          const err = await p.then(() => null, (e: unknown) => e);
          expect(err, `${how} ${size}`).toBeInstanceOf(S3Error);
          const h = await b.headObject(bucket, 'cut-short');
          expect([how, size, h?.size, h?.etag]).toEqual([how, size, current.length, put.etag]);
        }
        expect((await b.getBuffer(bucket, 'cut-short')).data.equals(current)).toBe(true);
      });

      it('overwrite replaces data, etag and metadata', async () => {
        const a = Buffer.from('first');
        const c = Buffer.from('second version');
        await b.putObject(bucket, 'ow', a, { size: a.length, meta: { one: '1' } });
        const r = await b.putObject(bucket, 'ow', c, { size: c.length, meta: { two: '2' } });
        const h = await b.headObject(bucket, 'ow');
        expect(h!.etag).toBe(r.etag);
        expect(h!.size).toBe(c.length);
        expect(h!.meta.two).toBe('2');
        expect(h!.meta.one).toBeUndefined();
        expect((await b.getBuffer(bucket, 'ow')).data.toString()).toBe('second version');
      });

      it('range reads (inclusive, clamped, open-ended; info.size is the whole object)', async () => {
        const data = randomBytes(10_000);
        await b.putObject(bucket, 'range', data, { size: data.length });
        const cases: [number, number | undefined, number, number][] = [
          [0, 9, 0, 10],
          [5, 5, 5, 6],
          [9990, undefined, 9990, 10_000],
          [9000, 20_000, 9000, 10_000],
          [0, undefined, 0, 10_000],
          [1234, 5678, 1234, 5679],
        ];
        for (const [start, end, s, e] of cases) {
          const g = await b.getObject(bucket, 'range', { start, end });
          expect((await readAll(g.body)).equals(data.subarray(s, e))).toBe(true);
          expect(g.info.size).toBe(10_000);
          expect(g.info.etag).toBe(md5(data));
        }
        await expectCode(b.getObject(bucket, 'range', { start: 10_000 }), 'InvalidRange');
        await expectCode(b.getObject(bucket, 'range', { start: 20_000, end: 30_000 }), 'InvalidRange');
        await expectCode(b.getObject(bucket, 'missing', { start: 0, end: 1 }), 'NoSuchKey');
      });

      it('range read of a large object streams (does not need the whole object)', async () => {
        const data = randomBytes(8 * MiB);
        await b.putObject(bucket, 'big', data, { size: data.length });
        const g = await b.getObject(bucket, 'big', { start: 7 * MiB, end: 7 * MiB + 99 });
        expect(g.body).toBeInstanceOf(Readable);
        expect((await readAll(g.body)).equals(data.subarray(7 * MiB, 7 * MiB + 100))).toBe(true);
      });

      it('copy: server-side, metadata replaced, source untouched, ifMatch on the source', async () => {
        const data = randomBytes(5000);
        const src = await b.putObject(bucket, 'copy/src', data, { size: data.length, meta: { a: '1' } });
        const r = await b.copyObject(bucket, 'copy/src', bucket, 'copy/dst', { meta: { b: '2' } });
        expect(r.etag).toBe(md5(data));
        const d = await b.getBuffer(bucket, 'copy/dst');
        expect(d.data.equals(data)).toBe(true);
        expect(d.info.meta.b).toBe('2');
        expect(d.info.meta.a).toBeUndefined();
        expect((await b.headObject(bucket, 'copy/src'))!.meta.a).toBe('1');
        // conditional on the source etag
        await b.copyObject(bucket, 'copy/src', bucket, 'copy/dst2', { meta: {}, ifMatch: src.etag });
        await b.copyObject(bucket, 'copy/src', bucket, 'copy/dst3', { meta: {}, ifMatch: `"${src.etag}"` });
        await expectCode(b.copyObject(bucket, 'copy/src', bucket, 'copy/dst4', { meta: {}, ifMatch: md5(Buffer.from('x')) }), 'PreconditionFailed');
        expect(await b.headObject(bucket, 'copy/dst4')).toBeNull();
        await expectCode(b.copyObject(bucket, 'copy/nope', bucket, 'copy/dst5', { meta: {} }), 'NoSuchKey');
        // across buckets, and onto itself with new metadata
        const other = await newBucket('cp2');
        await b.copyObject(bucket, 'copy/src', other, 'x', { meta: { c: '3' } });
        expect((await b.getBuffer(other, 'x')).data.equals(data)).toBe(true);
        await b.copyObject(bucket, 'copy/src', bucket, 'copy/src', { meta: { self: 'y' } });
        const self = await b.getBuffer(bucket, 'copy/src');
        expect(self.data.equals(data)).toBe(true);
        expect(self.info.meta.self).toBe('y');
      });
    });

    // ------------------------------------------------------------------------------------------ odd keys
    describe('keys a file-path store would resolve', () => {
      // '.', '..' and empty path segments: versitygw stores 'x/../y' as 'y', 'a//d' as 'a/d'; MinIO refuses them but
      // drops a leading '/'. A key is kept as itself (fs) or refused (s3), never stored as another key.
      // (each beside the key it would become; no victim is a prefix of another: versitygw cannot hold 'a' and 'a/d')
      const odd = ['x1/../y1', 'x2/./y2', 'a3//d3', '/lead4', '//lead5', 'f6/.', 'g7/..', '.', '..', 'e8//'];
      const victims = ['y1', 'x2/y2', 'a3/d3', 'lead4', 'lead5', 'f6'];

      it('each is kept as itself or refused with InvalidArgument on every call; no other key is touched', async () => {
        const bucket = await newBucket('odd');
        for (const v of victims) await b.putObject(bucket, v, Buffer.from(`victim:${v}`), { size: Buffer.byteLength(`victim:${v}`) });
        const kept: string[] = [];
        for (const k of odd) {
          const body = Buffer.from(`odd:${k}`);
          const put = await b.putObject(bucket, k, body, { size: body.length }).then(() => null, (e: unknown) => e as S3Error);
          if (put === null) {
            kept.push(k);
            expect((await b.getBuffer(bucket, k)).data.toString(), k).toBe(`odd:${k}`);
            continue;
          }
          expect(put, k).toBeInstanceOf(S3Error);
          expect(put.code, k).toBe('InvalidArgument');
          expect(put.status, k).toBe(400);
          // every other call on it is refused as well, before it reaches the store
          await expectCode(b.getObject(bucket, k), 'InvalidArgument');
          await expectCode(b.headObject(bucket, k), 'InvalidArgument');
          await expectCode(b.deleteObject(bucket, k), 'InvalidArgument');
          await expectCode(b.copyObject(bucket, victims[0], bucket, k, { meta: {} }), 'InvalidArgument');
          await expectCode(b.copyObject(bucket, k, bucket, 'copy-dst', { meta: {} }), 'InvalidArgument');
          await expectCode(b.createMultipart(bucket, k, {}), 'InvalidArgument');
          await expectCode(b.uploadPart(bucket, k, 'no-such-upload', 1, Buffer.from('p'), 1), 'InvalidArgument');
          await expectCode(b.completeMultipart(bucket, k, 'no-such-upload', [{ partNumber: 1, etag: md5(Buffer.from('p')) }]), 'InvalidArgument');
          await expectCode(b.abortMultipart(bucket, k, 'no-such-upload'), 'InvalidArgument');
        }
        if (b.kind === 's3') expect(kept).toEqual([]);
        else expect(kept).toEqual(odd);
        for (const v of victims) expect((await b.getBuffer(bucket, v)).data.toString(), v).toBe(`victim:${v}`);
        const listed = (await b.listObjects(bucket, {})).objects.map((o) => o.key);
        expect(listed).toEqual([...victims, ...kept].sort(byteOrder));
        for (const k of kept) await b.deleteObject(bucket, k);
        for (const v of victims) expect((await b.getBuffer(bucket, v)).data.toString(), v).toBe(`victim:${v}`);
      });

      it(`a key that is also the prefix of another, and a '/'-ended key with data: ${traits.nestedKeys ?? 'kept'}`, async () => {
        const bucket = await newBucket('nest');
        const put = (k: string) => b.putObject(bucket, k, Buffer.from(`v:${k}`), { size: Buffer.byteLength(`v:${k}`) }).then(() => null, (e: unknown) => e as S3Error);
        const answers = { 'p/q': await put('p/q'), p: await put('p'), r: await put('r'), 'r/s': await put('r/s'), 'dir/': await put('dir/') };
        const refused = Object.entries(answers).filter(([, e]) => e !== null).map(([k, e]) => [k, e!.code]);
        const readable = [];
        for (const k of Object.keys(answers)) if ((await b.headObject(bucket, k))?.size === Buffer.byteLength(`v:${k}`)) readable.push(k);
        const listed = (await b.listObjects(bucket, {})).objects.map((o) => o.key);
        const mode = traits.nestedKeys ?? 'kept';
        if (mode === 'refused') {
          expect(refused).toEqual([['p', 'InvalidArgument'], ['r/s', 'InvalidArgument'], ['dir/', 'InvalidArgument']]);
          expect(answers.p!.message).toMatch(/keeps objects as files/);
          expect(readable).toEqual(['p/q', 'r']);
          expect(listed).toEqual(['p/q', 'r']);
        } else {
          expect(refused).toEqual([]);
          expect(readable).toEqual(['p/q', 'p', 'r', 'r/s', 'dir/']);
          expect(listed).toEqual(mode === 'kept' ? ['dir/', 'p', 'p/q', 'r', 'r/s'] : ['dir/', 'p', 'r']);
        }
      });

      it("a trailing '/' (a directory marker) and '...' or '.x' segments are ordinary keys", async () => {
        const bucket = await newBucket('oddok');
        for (const k of ['dir/', 'a/...', '...', 'a/.b']) {
          await b.putObject(bucket, k, Buffer.alloc(0), { size: 0 });
          expect((await b.headObject(bucket, k))?.size, k).toBe(0);
        }
        expect((await b.listObjects(bucket, {})).objects.map((o) => o.key)).toEqual(['...', 'a/...', 'a/.b', 'dir/']);
      });
    });

    // ------------------------------------------------------------------------------------------ conditional writes
    describe('conditional puts', () => {
      let bucket: string;
      beforeAll(async () => {
        bucket = await newBucket('cond');
      });

      it('ifNoneMatch "*" creates only when absent', async () => {
        const a = Buffer.from('a');
        await b.putObject(bucket, 'inm', a, { size: 1, ifNoneMatch: '*' });
        await expectCode(b.putObject(bucket, 'inm', Buffer.from('b'), { size: 1, ifNoneMatch: '*' }), 'PreconditionFailed');
        expect((await b.getBuffer(bucket, 'inm')).data.toString()).toBe('a');
      });

      it('10 concurrent ifNoneMatch "*" puts: exactly one wins', async () => {
        for (let round = 0; round < 3; round++) {
          const key = `race-${round}`;
          const results = await Promise.allSettled(
            Array.from({ length: 10 }, (_, i) => {
              const body = Buffer.from(`writer-${i}`);
              return b.putObject(bucket, key, body, { size: body.length, ifNoneMatch: '*' });
            }),
          );
          const won = results.filter((r) => r.status === 'fulfilled');
          const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
          expect(won).toHaveLength(1);
          for (const l of lost) expect((l.reason as S3Error).code).toBe('PreconditionFailed');
          const winnerEtag = (won[0] as PromiseFulfilledResult<{ etag: string }>).value.etag;
          expect((await b.headObject(bucket, key))!.etag).toBe(winnerEtag);
        }
      });

      it('a streamed body (sent once, unsigned payload) is held to the condition too: nothing replaced when it fails', async () => {
        const first = randomBytes(2 * MiB);
        const put = await b.putObject(bucket, 'cond-stream', streamOf(first), { size: first.length, ifNoneMatch: '*' });
        const second = randomBytes(2 * MiB);
        await expectCode(b.putObject(bucket, 'cond-stream', streamOf(second), { size: second.length, ifNoneMatch: '*' }), 'PreconditionFailed');
        await expectCode(b.putObject(bucket, 'cond-stream', streamOf(second), { size: second.length, ifMatch: md5(second) }), 'PreconditionFailed');
        const g = await b.getBuffer(bucket, 'cond-stream');
        expect(g.info.etag).toBe(put.etag);
        expect(g.data.equals(first)).toBe(true);
        const swapped = await b.putObject(bucket, 'cond-stream', streamOf(second), { size: second.length, ifMatch: put.etag });
        expect(swapped.etag).toBe(md5(second));
        expect((await b.getBuffer(bucket, 'cond-stream')).data.equals(second)).toBe(true);
      });

      it('ifMatch: current etag succeeds, stale etag fails', async () => {
        const v1 = await b.putObject(bucket, 'im', Buffer.from('v1'), { size: 2 });
        const v2 = await b.putObject(bucket, 'im', Buffer.from('v2'), { size: 2, ifMatch: v1.etag });
        await expectCode(b.putObject(bucket, 'im', Buffer.from('v3'), { size: 2, ifMatch: v1.etag }), 'PreconditionFailed');
        expect((await b.getBuffer(bucket, 'im')).data.toString()).toBe('v2');
        await b.putObject(bucket, 'im', Buffer.from('v4'), { size: 2, ifMatch: `"${v2.etag}"` });
        expect((await b.getBuffer(bucket, 'im')).data.toString()).toBe('v4');
        // ifMatch on an absent key never creates it
        await expectCode(b.putObject(bucket, 'im-absent', Buffer.from('x'), { size: 1, ifMatch: v1.etag }), ['NoSuchKey', 'PreconditionFailed']);
        expect(await b.headObject(bucket, 'im-absent')).toBeNull();
      });

      it('10 concurrent ifMatch puts on the same etag: exactly one wins (compare-and-swap)', async () => {
        const base = await b.putObject(bucket, 'cas', Buffer.from('base'), { size: 4 });
        const results = await Promise.allSettled(
          Array.from({ length: 10 }, (_, i) => {
            const body = Buffer.from(`cas-writer-${i}`);
            return b.putObject(bucket, 'cas', body, { size: body.length, ifMatch: base.etag });
          }),
        );
        const won = results.filter((r) => r.status === 'fulfilled');
        expect(won).toHaveLength(1);
        for (const r of results) if (r.status === 'rejected') expect((r.reason as S3Error).code).toBe('PreconditionFailed');
      });
    });

    // ------------------------------------------------------------------------------------------ listing
    describe('listing', () => {
      let bucket: string;
      const tree = [
        'photos/2020/a.jpg',
        'photos/2020/b.jpg',
        'photos/2021/c.jpg',
        'photos/x.jpg',
        'docs/readme.md',
        'root.txt',
        'zeta',
        'Zeta',
        'a-b',
        'a.b',
        'a0',
        'ä-umlaut',
        'émoji-\u{1F600}',
        'cjk-\u{FF5A}',
        '\u{1F600}',
        '\u{FF5A}',
        '\u{E000}',
        '~tilde',
        'space key',
        'plus+key',
        'pct%2Fkey',
        'x/y/z',
        'x/w',
        'nfc-\u00e9',
        'nfc-e\u0301',
      ];
      beforeAll(async () => {
        bucket = await newBucket('ls');
        await putMany(b, bucket, tree);
      });

      it('lists every key in UTF-8 byte order with size and etag', async () => {
        const r = await b.listObjects(bucket, {});
        expect(r.isTruncated).toBe(false);
        expect(r.commonPrefixes).toEqual([]);
        expect(r.objects.map((o) => o.key)).toEqual([...tree].sort(byteOrder));
        for (const o of r.objects) {
          expect(o.size).toBe(Buffer.byteLength(`v:${o.key}`));
          expect(o.etag).toBe(md5(Buffer.from(`v:${o.key}`)));
          expect(o.lastModified).toBeInstanceOf(Date);
        }
      });

      it('prefix', async () => {
        const r = await b.listObjects(bucket, { prefix: 'photos/' });
        expect(r.objects.map((o) => o.key)).toEqual(['photos/2020/a.jpg', 'photos/2020/b.jpg', 'photos/2021/c.jpg', 'photos/x.jpg']);
        expect((await b.listObjects(bucket, { prefix: 'nfc-' })).objects.map((o) => o.key)).toEqual(['nfc-e\u0301', 'nfc-\u00e9']);
        expect((await b.listObjects(bucket, { prefix: 'nope/' })).objects).toEqual([]);
        expect((await b.listObjects(bucket, { prefix: 'a' })).objects.map((o) => o.key)).toEqual(['a-b', 'a.b', 'a0']);
        expect((await b.listObjects(bucket, { prefix: '\u{1F600}' })).objects.map((o) => o.key)).toEqual(['\u{1F600}']);
      });

      it('delimiter and common prefixes', async () => {
        const top = await b.listObjects(bucket, { delimiter: '/' });
        expect(top.commonPrefixes).toEqual(['docs/', 'photos/', 'x/']);
        expect(top.objects.map((o) => o.key)).toEqual(tree.filter((k) => !k.includes('/')).sort(byteOrder));
        const photos = await b.listObjects(bucket, { prefix: 'photos/', delimiter: '/' });
        expect(photos.commonPrefixes).toEqual(['photos/2020/', 'photos/2021/']);
        expect(photos.objects.map((o) => o.key)).toEqual(['photos/x.jpg']);
        const y = await b.listObjects(bucket, { prefix: 'x/', delimiter: '/' });
        expect(y.commonPrefixes).toEqual(['x/y/']);
        expect(y.objects.map((o) => o.key)).toEqual(['x/w']);
        const noSlash = await b.listObjects(bucket, { prefix: 'photos', delimiter: '/' });
        expect(noSlash.commonPrefixes).toEqual(['photos/']);
        expect(noSlash.objects).toEqual([]);
      });

      it('startAfter (exclusive), alone and with prefix/delimiter', async () => {
        const sorted = [...tree].sort(byteOrder);
        const r = await b.listObjects(bucket, { startAfter: 'photos/2020/a.jpg' });
        expect(r.objects.map((o) => o.key)).toEqual(sorted.filter((k) => byteOrder(k, 'photos/2020/a.jpg') > 0));
        const r2 = await b.listObjects(bucket, { startAfter: 'photos/2020/zzz', prefix: 'photos/', delimiter: '/' });
        expect(r2.commonPrefixes).toEqual(['photos/2021/']);
        expect(r2.objects.map((o) => o.key)).toEqual(['photos/x.jpg']);
        const r3 = await b.listObjects(bucket, { startAfter: 'nonexistent-but-between' });
        expect(r3.objects.map((o) => o.key)).toEqual(sorted.filter((k) => byteOrder(k, 'nonexistent-but-between') > 0));
        const r4 = await b.listObjects(bucket, { startAfter: '\u{1F600}' });
        expect(r4.objects).toEqual([]);
      });

      it('paging with small maxKeys yields the same sequence, with and without delimiter', async () => {
        const full = await b.listObjects(bucket, { delimiter: '/' });
        for (const maxKeys of [1, 2, 3, 7]) {
          const paged = await listAll(b, bucket, { delimiter: '/', maxKeys });
          expect(paged.keys).toEqual(full.objects.map((o) => o.key));
          expect(paged.prefixes).toEqual(full.commonPrefixes);
          const flat = await listAll(b, bucket, { maxKeys });
          expect(flat.keys).toEqual([...tree].sort(byteOrder));
        }
      });

      it('2,500 keys: pages of 1000/1000/500, small pages, startAfter in the middle', async () => {
        const big = await newBucket('big');
        const keys = Array.from({ length: 2500 }, (_, i) => `k/${String(i).padStart(5, '0')}`);
        await putMany(b, big, keys, 48);
        const p1000 = await listAll(b, big, { maxKeys: 1000 });
        expect(p1000.pages).toEqual([1000, 1000, 500]);
        expect(p1000.keys).toEqual(keys);
        const dflt = await b.listObjects(big, {});
        expect(dflt.objects).toHaveLength(1000);
        expect(dflt.isTruncated).toBe(true);
        const p97 = await listAll(b, big, { maxKeys: 97, prefix: 'k/' });
        expect(p97.keys).toEqual(keys);
        expect(p97.pages).toHaveLength(Math.ceil(2500 / 97));
        const mid = await listAll(b, big, { startAfter: 'k/01233', maxKeys: 500 });
        expect(mid.keys).toEqual(keys.slice(1234));
        const cp = await b.listObjects(big, { delimiter: '/' });
        expect(cp.commonPrefixes).toEqual(['k/']);
        expect(cp.objects).toEqual([]);
        expect(cp.isTruncated).toBe(false);
        const exact = await b.listObjects(big, { prefix: 'k/0249', maxKeys: 10 });
        expect(exact.objects.map((o) => o.key)).toEqual(keys.slice(2490));
        expect(exact.isTruncated).toBe(false);
      });
    });

    // ------------------------------------------------------------------------------------------ listing withMeta
    describe('listing withMeta', () => {
      let bucket: string;
      const oddKeys = ['space key', 'plus+key', 'pct%2Fkey', '100%', 'amp&<lt>', 'ä-umlaut', 'émoji-\u{1F600}', '\u{FF5A}', 'dir/sub key+%/leaf'];
      const metaOf = (k: string) => ({ 'lc-oid': createHash('sha256').update(k).digest('hex').slice(0, 32), 'lc-fmt': '1' });
      const expected = new Map<string, Record<string, string>>();

      beforeAll(async () => {
        bucket = await newBucket('lsm');
        // putObject: Buffer and stream bodies, with metadata, and one without any
        for (const k of oddKeys) {
          const body = Buffer.from(`v:${k}`);
          await b.putObject(bucket, k, body, { size: body.length, meta: metaOf(k) });
          expected.set(k, metaOf(k));
        }
        const big = randomBytes(2 * MiB + 1);
        await b.putObject(bucket, 'streamed', streamOf(big), { size: big.length, meta: { 'lc-oid': 'feed', 'lc-fmt': '1' } });
        expected.set('streamed', { 'lc-oid': 'feed', 'lc-fmt': '1' });
        await b.putObject(bucket, 'no-meta', Buffer.from('x'), { size: 1 });
        expected.set('no-meta', {});
        await b.putObject(bucket, 'empty-meta', Buffer.from('x'), { size: 1, meta: {} });
        expected.set('empty-meta', {});
        // copyObject: metadata replaced
        await b.copyObject(bucket, 'space key', bucket, 'copied key+', { meta: { 'lc-oid': 'c0ffee', 'lc-fmt': '1' } });
        expected.set('copied key+', { 'lc-oid': 'c0ffee', 'lc-fmt': '1' });
        // multipart: metadata from createMultipart
        const id = await b.createMultipart(bucket, 'mpu key%+', { 'lc-oid': 'aa55', 'lc-fmt': '1' });
        const p1 = await b.uploadPart(bucket, 'mpu key%+', id, 1, Buffer.from('part-one'), 8);
        await b.completeMultipart(bucket, 'mpu key%+', id, [{ partNumber: 1, etag: p1.etag }]);
        expected.set('mpu key%+', { 'lc-oid': 'aa55', 'lc-fmt': '1' });
      });

      /** What a listing withMeta must say of `key`: its metadata, or undefined (not known: HEAD it) on a store that cannot list it. */
      const listedMeta = (key: string) => (traits.listsMetadata ? expected.get(key) : undefined);

      it(`returns the metadata written by putObject / copyObject / createMultipart+complete ({} when none)${traits.listsMetadata ? '' : ': undefined (not known) on this store, HEAD has it'}`, async () => {
        const r = await b.listObjects(bucket, { withMeta: true });
        expect(r.isTruncated).toBe(false);
        expect(r.objects.map((o) => o.key)).toEqual([...expected.keys()].sort(byteOrder));
        for (const o of r.objects) {
          expect(o.meta, o.key).toEqual(listedMeta(o.key));
          expect('meta' in o, o.key).toBe(true);
          const h = await b.headObject(bucket, o.key);
          expect(o.size, o.key).toBe(h!.size);
          expect(o.etag, o.key).toBe(h!.etag);
          // what the gateway falls back to where the listing cannot say
          expect(h!.meta, o.key).toEqual(expected.get(o.key));
        }
        expect(r.objects.find((o) => o.key === 'mpu key%+')!.etag).toMatch(/-1$/);
      });

      it('without withMeta: no meta on listed objects, same keys, sizes and etags', async () => {
        const plain = await b.listObjects(bucket, {});
        const rich = await b.listObjects(bucket, { withMeta: true });
        for (const o of plain.objects) expect('meta' in o, o.key).toBe(false);
        expect(plain.objects).toEqual(rich.objects.map(({ meta: _m, ...rest }) => rest));
        const no = await b.listObjects(bucket, { withMeta: false });
        for (const o of no.objects) expect('meta' in o, o.key).toBe(false);
      });

      it('keys with spaces, unicode, +, %, & list correctly with metadata (prefix, delimiter, startAfter)', async () => {
        for (const k of oddKeys) {
          const r = await b.listObjects(bucket, { prefix: k, withMeta: true });
          const o = r.objects.find((x) => x.key === k);
          expect(o, k).toBeDefined();
          expect(o!.meta).toEqual(listedMeta(k));
          expect(o!.size).toBe(Buffer.byteLength(`v:${k}`));
        }
        const d = await b.listObjects(bucket, { delimiter: '/', withMeta: true });
        expect(d.commonPrefixes).toEqual(['dir/']);
        const sub = await b.listObjects(bucket, { prefix: 'dir/', delimiter: '/', withMeta: true });
        expect(sub.commonPrefixes).toEqual(['dir/sub key+%/']);
        expect(sub.objects).toEqual([]);
        const leaf = await b.listObjects(bucket, { prefix: 'dir/sub key+%/', withMeta: true });
        expect(leaf.objects.map((o) => [o.key, o.meta])).toEqual([['dir/sub key+%/leaf', listedMeta('dir/sub key+%/leaf')]]);
        const after = await b.listObjects(bucket, { startAfter: 'plus+key', withMeta: true });
        const want = [...expected.keys()].sort(byteOrder).filter((k) => byteOrder(k, 'plus+key') > 0);
        expect(after.objects.map((o) => o.key)).toEqual(want);
        for (const o of after.objects) expect(o.meta).toEqual(listedMeta(o.key));
      });

      it('paging with continuation tokens, with and without a delimiter', async () => {
        for (const maxKeys of [1, 2, 5]) {
          for (const delimiter of [undefined, '/']) {
            const seen: string[] = [];
            const prefixes: string[] = [];
            let token: string | undefined;
            for (let guard = 0; guard < 100; guard++) {
              const r = await b.listObjects(bucket, { maxKeys, delimiter, continuationToken: token, withMeta: true });
              expect(r.objects.length + r.commonPrefixes.length).toBeLessThanOrEqual(maxKeys);
              for (const o of r.objects) expect(o.meta, o.key).toEqual(listedMeta(o.key));
              seen.push(...r.objects.map((o) => o.key));
              prefixes.push(...r.commonPrefixes);
              if (!r.isTruncated) break;
              expect(r.nextContinuationToken).toBeTruthy();
              token = r.nextContinuationToken;
            }
            const all = [...expected.keys()].sort(byteOrder);
            expect(seen).toEqual(delimiter ? all.filter((k) => !k.includes('/')) : all);
            expect(prefixes).toEqual(delimiter ? ['dir/'] : []);
          }
        }
      });
    });

    // ------------------------------------------------------------------------------------------ multipart
    describe('multipart', () => {
      let bucket: string;
      beforeAll(async () => {
        bucket = await newBucket('mpu');
      });

      it('out-of-order parts, stream and Buffer bodies, S3 multipart etag, metadata kept', async () => {
        const p1 = randomBytes(5 * MiB);
        const p2 = randomBytes(5 * MiB + 3);
        const p3 = randomBytes(1234);
        const id = await b.createMultipart(bucket, 'mp/obj', { 'lc-oid': 'feed', 'lc-fmt': '1' });
        expect(typeof id).toBe('string');
        const open = await b.listMultipartUploads(bucket);
        expect(open.find((u) => u.uploadId === id)).toMatchObject({ key: 'mp/obj' });
        expect(open.find((u) => u.uploadId === id)!.initiated).toBeInstanceOf(Date);
        const e3 = await b.uploadPart(bucket, 'mp/obj', id, 3, p3, p3.length);
        const e1 = await b.uploadPart(bucket, 'mp/obj', id, 1, streamOf(p1), p1.length);
        const e2 = await b.uploadPart(bucket, 'mp/obj', id, 2, p2, p2.length);
        expect(e1.etag).toBe(md5(p1));
        expect(e2.etag).toBe(md5(p2));
        expect(e3.etag).toBe(md5(p3));
        const expected =
          createHash('md5')
            .update(Buffer.concat([p1, p2, p3].map((p) => createHash('md5').update(p).digest())))
            .digest('hex') + '-3';
        const done = await b.completeMultipart(bucket, 'mp/obj', id, [
          { partNumber: 1, etag: e1.etag },
          { partNumber: 2, etag: `"${e2.etag}"` },
          { partNumber: 3, etag: e3.etag },
        ]);
        expect(done.etag).toBe(expected);
        const g = await b.getBuffer(bucket, 'mp/obj');
        expect(g.data.equals(Buffer.concat([p1, p2, p3]))).toBe(true);
        expect(g.info.etag).toBe(expected);
        expect(g.info.size).toBe(p1.length + p2.length + p3.length);
        expect(g.info.meta).toMatchObject({ 'lc-oid': 'feed', 'lc-fmt': '1' });
        const listed = await b.listObjects(bucket, { prefix: 'mp/' });
        expect(listed.objects[0]).toMatchObject({ key: 'mp/obj', etag: expected, size: g.info.size });
        expect((await b.listMultipartUploads(bucket)).find((u) => u.uploadId === id)).toBeUndefined();
        // a range across the part boundary
        const r = await b.getObject(bucket, 'mp/obj', { start: 5 * MiB - 10, end: 5 * MiB + 9 });
        expect((await readAll(r.body)).equals(Buffer.concat([p1, p2]).subarray(5 * MiB - 10, 5 * MiB + 10))).toBe(true);
      });

      it('re-uploading a part replaces it; a subset of parts can be completed', async () => {
        const id = await b.createMultipart(bucket, 'mp/re', {});
        await b.uploadPart(bucket, 'mp/re', id, 1, Buffer.from('old'), 3);
        const e1 = await b.uploadPart(bucket, 'mp/re', id, 1, Buffer.from('new!'), 4);
        const e2 = await b.uploadPart(bucket, 'mp/re', id, 2, Buffer.from('unused'), 6);
        // the store's own ListParts (where the backend has one): the attempt it kept of each part
        if (b.listParts) expect(await b.listParts(bucket, 'mp/re', id)).toEqual([{ partNumber: 1, etag: e1.etag }, { partNumber: 2, etag: e2.etag }]);
        const done = await b.completeMultipart(bucket, 'mp/re', id, [{ partNumber: 1, etag: e1.etag }]);
        expect(done.etag).toMatch(/-1$/);
        expect((await b.getBuffer(bucket, 'mp/re')).data.toString()).toBe('new!');
      });

      it('a conditional complete: ifNoneMatch / ifMatch refused with PreconditionFailed, the upload stays open', async () => {
        const cur = await b.putObject(bucket, 'mp/cond', Buffer.from('there'), { size: 5 });
        const id = await b.createMultipart(bucket, 'mp/cond', {});
        const e1 = await b.uploadPart(bucket, 'mp/cond', id, 1, Buffer.from('mpu'), 3);
        const parts = [{ partNumber: 1, etag: e1.etag }];
        await expectCode(b.completeMultipart(bucket, 'mp/cond', id, parts, { ifNoneMatch: '*' }), 'PreconditionFailed');
        await expectCode(b.completeMultipart(bucket, 'mp/cond', id, parts, { ifMatch: md5(Buffer.from('not it')) }), 'PreconditionFailed');
        expect((await b.getBuffer(bucket, 'mp/cond')).data.toString()).toBe('there');
        expect((await b.listMultipartUploads(bucket)).some((u) => u.uploadId === id)).toBe(true);
        await b.completeMultipart(bucket, 'mp/cond', id, parts, { ifMatch: cur.etag });
        expect((await b.getBuffer(bucket, 'mp/cond')).data.toString()).toBe('mpu');
      });

      it('errors: InvalidPart, EntityTooSmall, NoSuchUpload after abort/complete', async () => {
        const id = await b.createMultipart(bucket, 'mp/err', {});
        const small = Buffer.from('tiny');
        const e1 = await b.uploadPart(bucket, 'mp/err', id, 1, small, small.length);
        const e2 = await b.uploadPart(bucket, 'mp/err', id, 2, small, small.length);
        await expectCode(b.completeMultipart(bucket, 'mp/err', id, [{ partNumber: 1, etag: md5(Buffer.from('other')) }]), 'InvalidPart');
        await expectCode(
          b.completeMultipart(bucket, 'mp/err', id, [
            { partNumber: 1, etag: e1.etag },
            { partNumber: 5, etag: e1.etag },
          ]),
          traits.partSizeBeforeLaterParts ? 'EntityTooSmall' : 'InvalidPart',
        );
        // a part never uploaded, alone: InvalidPart on every store
        await expectCode(b.completeMultipart(bucket, 'mp/err', id, [{ partNumber: 5, etag: e1.etag }]), 'InvalidPart');
        await expectCode(
          b.completeMultipart(bucket, 'mp/err', id, [
            { partNumber: 1, etag: e1.etag },
            { partNumber: 2, etag: e2.etag },
          ]),
          'EntityTooSmall',
        );
        await b.abortMultipart(bucket, 'mp/err', id);
        expect((await b.listMultipartUploads(bucket)).find((u) => u.uploadId === id)).toBeUndefined();
        await expectCode(b.uploadPart(bucket, 'mp/err', id, 3, small, small.length), 'NoSuchUpload');
        const large = randomBytes(6 * MiB);
        await expectCode(b.uploadPart(bucket, 'mp/err', id, 3, streamOf(large), large.length), 'NoSuchUpload');
        await expectCode(b.completeMultipart(bucket, 'mp/err', id, [{ partNumber: 1, etag: e1.etag }]), ['NoSuchUpload', 'InvalidPart']);
        expect(await b.headObject(bucket, 'mp/err')).toBeNull();
        const id2 = await b.createMultipart(bucket, 'mp/err2', {});
        const p = await b.uploadPart(bucket, 'mp/err2', id2, 1, small, small.length);
        await b.completeMultipart(bucket, 'mp/err2', id2, [{ partNumber: 1, etag: p.etag }]);
        // After complete, S3 answers NoSuchUpload for the id while MinIO still accepts uploadPart/abort on it
        // for a while: either way the completed object must stay intact.
        await b.abortMultipart(bucket, 'mp/err2', id2).catch((e) => expect((e as S3Error).code).toBe('NoSuchUpload'));
        expect((await b.getBuffer(bucket, 'mp/err2')).data.toString()).toBe('tiny');
      });

      it('lists several open uploads for a bucket', async () => {
        const other = await newBucket('mpl');
        const ids = [await b.createMultipart(other, 'b-key', {}), await b.createMultipart(other, 'a-key', {}), await b.createMultipart(other, 'a-key', {})];
        const list = await b.listMultipartUploads(other);
        expect(list.map((u) => u.uploadId).sort()).toEqual([...ids].sort());
        expect(list.map((u) => u.key)).toEqual(['a-key', 'a-key', 'b-key']);
        for (const u of list) await b.abortMultipart(other, u.key, u.uploadId);
        expect(await b.listMultipartUploads(other)).toEqual([]);
      });

      it('lists open uploads under keys that need encoding in a listing (space, +, %, &, unicode) as those keys', async () => {
        const other = await newBucket('mpk');
        const keys = ['a b', 'a+b', 'a%2Bb', '50%', 'r&d/\u00fc', 'x\u{1F600}', 'a<b>'];
        const byId = new Map<string, string>();
        for (const k of keys) byId.set(await b.createMultipart(other, k, {}), k);
        const list = await b.listMultipartUploads(other);
        expect(list.map((u) => [u.key, u.uploadId])).toEqual([...byId].map(([id, k]) => [k, id]).sort((x, y) => byteOrder(x[0], y[0])));
        // each listed key names its upload
        for (const u of list) await b.abortMultipart(other, u.key, u.uploadId);
        expect(await b.listMultipartUploads(other)).toEqual([]);
      });

      it("the store's ListParts past its first page: 1002 parts in order, each with its ETag (a backend without ListParts: fs)", async () => {
        if (!b.listParts) {
          expect(b.kind).toBe('fs');
          return;
        }
        const id = await b.createMultipart(bucket, 'mp/many parts+', {});
        try {
          const bodies = Array.from({ length: 1002 }, (_, i) => Buffer.from(`part ${i + 1}`));
          await inParallel(bodies, 16, (body, i) => b.uploadPart(bucket, 'mp/many parts+', id, i + 1, body, body.length));
          expect(await b.listParts(bucket, 'mp/many parts+', id)).toEqual(bodies.map((body, i) => ({ partNumber: i + 1, etag: md5(body) })));
        } finally {
          await b.abortMultipart(bucket, 'mp/many parts+', id);
        }
      }, 120_000);
    });
  });
}

/**
 * Object versions (bucket versioning), for a store that keeps them (s3: MinIO; versitygw only with its
 * versioning directory): version ids on put/head/get/copy, delete markers, delete by version, the version listing
 * in S3's order with its markers. Run by versions-s3.test.ts; a store without versions (fs) has none of the
 * optional calls, which versions-s3.test.ts checks too.
 */
export function versionsContract(name: string, makeTarget: () => Promise<ContractTarget>) {
  describe(`Backend contract, object versions: ${name}`, () => {
    let t: ContractTarget;
    let b: Backend;
    let bucket: string;
    beforeAll(async () => {
      t = await makeTarget();
      b = t.backend;
      bucket = uniqueBucketName('ver');
      await b.createBucket(bucket);
    });
    afterAll(async () => {
      try {
        for (;;) {
          const r = await b.listObjectVersions!(bucket, {});
          await Promise.all(r.entries.map((e) => b.deleteObject(bucket, e.key, e.versionId)));
          if (!r.isTruncated) break;
        }
        await b.deleteBucket(bucket);
      } catch {
        /* best effort */
      }
      await b?.close();
      await t?.cleanup?.();
    });

    it('getBucketVersioning / putBucketVersioning', async () => {
      expect(await b.getBucketVersioning!(bucket)).toBeUndefined();
      await b.putBucketVersioning!(bucket, 'Enabled');
      expect(await b.getBucketVersioning!(bucket)).toBe('Enabled');
    });

    it('versions by id: put/head/get/copy name them, a delete makes a marker, a delete by id removes one version', async () => {
      const ids: string[] = [];
      for (const v of ['one', 'two', 'three']) {
        const put = await b.putObject(bucket, 'k', Buffer.from(v), { size: v.length, meta: { n: v } });
        expect(put.versionId).toBeTruthy();
        ids.push(put.versionId!);
      }
      expect(new Set(ids).size).toBe(3);
      const head = await b.headObject(bucket, 'k', ids[0]);
      expect(head).toMatchObject({ size: 3, versionId: ids[0], meta: { n: 'one' } });
      expect((await b.headObject(bucket, 'k'))?.versionId).toBe(ids[2]);
      const got = await b.getObject(bucket, 'k', { start: 1, end: 2 }, ids[1]);
      expect((await readAll(got.body)).toString()).toBe('wo');
      expect(got.info.versionId).toBe(ids[1]);
      const copy = await b.copyObject(bucket, 'k', bucket, 'copy', { meta: { c: '1' }, srcVersionId: ids[0] });
      expect(copy.versionId).toBeTruthy();
      expect((await b.getBuffer(bucket, 'copy')).data.toString()).toBe('one');

      const marker = await b.deleteObject(bucket, 'k');
      expect(marker).toMatchObject({ deleteMarker: true });
      expect(marker!.versionId).toBeTruthy();
      expect(await b.headObject(bucket, 'k')).toBeNull();
      await expectCode(b.headObject(bucket, 'k', marker!.versionId), 'MethodNotAllowed');
      await expectCode(b.getObject(bucket, 'k'), 'NoSuchKey');

      const gone = await b.deleteObject(bucket, 'k', ids[1]);
      expect(gone).toMatchObject({ versionId: ids[1] });
      await expectCode(b.getObject(bucket, 'k', undefined, ids[1]), 'NoSuchVersion');
      expect(await b.headObject(bucket, 'k', ids[1])).toBeNull();

      const l = await b.listObjectVersions!(bucket, { prefix: 'k' });
      expect(l.entries.map((e) => [e.key, e.versionId, e.isLatest, e.deleteMarker, e.size])).toEqual([
        ['k', marker!.versionId, true, true, 0],
        ['k', ids[2], false, false, 5],
        ['k', ids[0], false, false, 3],
      ]);
      expect(l.entries[1].etag).toBe(md5(Buffer.from('three')));
      // paging one entry at a time gives the same sequence
      const paged: string[] = [];
      let keyMarker: string | undefined;
      let versionIdMarker: string | undefined;
      for (let guard = 0; guard < 20; guard++) {
        const p = await b.listObjectVersions!(bucket, { prefix: 'k', maxKeys: 1, keyMarker, versionIdMarker });
        paged.push(...p.entries.map((e) => e.versionId));
        if (!p.isTruncated) break;
        keyMarker = p.nextKeyMarker;
        versionIdMarker = p.nextVersionIdMarker;
      }
      expect(paged).toEqual(l.entries.map((e) => e.versionId));
    });

    it('conditions compare with the current version; a delete by id of the latest makes the next newest current; Suspended replaces the null version; versions keep a bucket non-empty', async () => {
      const vb = uniqueBucketName('ver2');
      await b.createBucket(vb);
      try {
        const old = await b.putObject(vb, 'n', Buffer.from('before'), { size: 6 }); // written before versioning: the null version
        await b.putBucketVersioning!(vb, 'Enabled');
        await expectCode(b.putObject(vb, 'n', Buffer.from('x'), { size: 1, ifNoneMatch: '*' }), 'PreconditionFailed');
        const v1 = await b.putObject(vb, 'n', Buffer.from('one'), { size: 3, ifMatch: old.etag });
        await expectCode(b.putObject(vb, 'n', Buffer.from('x'), { size: 1, ifMatch: old.etag }), 'PreconditionFailed');
        const v2 = await b.putObject(vb, 'n', Buffer.from('two'), { size: 3, ifMatch: v1.etag });
        expect((await b.getBuffer(vb, 'n')).data.toString()).toBe('two');
        expect((await b.headObject(vb, 'n', 'null'))?.size).toBe(6);
        await b.deleteObject(vb, 'n', v2.versionId);
        expect((await b.getBuffer(vb, 'n')).data.toString()).toBe('one');
        expect((await b.headObject(vb, 'n'))?.versionId).toBe(v1.versionId);

        await b.putBucketVersioning!(vb, 'Suspended');
        expect(await b.getBucketVersioning!(vb)).toBe('Suspended');
        for (const body of ['s1', 's2']) {
          const p = await b.putObject(vb, 'n', Buffer.from(body), { size: body.length });
          expect(p.versionId ?? 'null').toBe('null');
        }
        const l = await b.listObjectVersions!(vb, {});
        expect(l.entries.map((e) => [e.versionId, e.isLatest, e.size])).toEqual([
          ['null', true, 2],
          [v1.versionId, false, 3],
        ]);
        expect((await b.getBuffer(vb, 'n')).data.toString()).toBe('s2');

        await b.deleteObject(vb, 'n', 'null');
        expect((await b.getBuffer(vb, 'n')).data.toString()).toBe('one');
        await b.deleteObject(vb, 'n');
        await expectCode(b.getObject(vb, 'n'), 'NoSuchKey');
        expect((await b.listObjects(vb, {})).objects).toEqual([]);
        await expectCode(b.deleteBucket(vb), 'BucketNotEmpty');
        const kept = await b.getObject(vb, 'n', undefined, v1.versionId);
        expect([(await readAll(kept.body)).toString(), kept.info.versionId]).toEqual(['one', v1.versionId]);
      } finally {
        for (;;) {
          const r = await b.listObjectVersions!(vb, {});
          for (const e of r.entries) await b.deleteObject(vb, e.key, e.versionId);
          if (!r.isTruncated) break;
        }
        await b.deleteBucket(vb);
      }
    });

    it('keys with spaces, unicode and + list decoded, with a delimiter', async () => {
      for (const k of ['d/sp ace', 'd/été+x', 'top']) await b.putObject(bucket, k, Buffer.from('x'), { size: 1 });
      const l = await b.listObjectVersions!(bucket, { prefix: 'd/', delimiter: '/' });
      expect(l.entries.map((e) => e.key)).toEqual(['d/sp ace', 'd/été+x']);
      const top = await b.listObjectVersions!(bucket, { delimiter: '/' });
      expect(top.commonPrefixes).toEqual(['d/']);
    });
  });
}
