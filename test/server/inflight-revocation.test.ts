/**
 * Issue #16: a GET that started before a revocation must stop once the revocation is seen, like a new request
 * would be refused — not run to the end on the key state it saw when it started. Two gateways share one fs
 * backend (and one local CMK); A serves a slow reader, B issues the revocation; A only learns of it through the
 * keystore epoch poll, as a separate gateway would.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { PassThrough, pipeline } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { revokeObject } from '../../src/admin/objects.ts';
import { createBackend, type Backend } from '../../src/backend/index.ts';
import { signHeaders, signedRequest } from '../../tools/sigv4.ts';
import { cloneHeaderKeys } from '../../src/store/index.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { pollUntil, sleep } from '../../tools/wait.ts';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';

const MiB = 1024 * 1024;
const BLOCK = MiB;
const SIZE = 40 * MiB; // 40 blocks
/** The reader stops reading after this many bytes. */
const PAUSE_AT = MiB;
/** Far beyond what the buffers between gateway and reader hold while it pauses (asserted below). */
const REVOKED_BLOCK = 24;

/** Bytes of data objects gateway A has read from the backend, per bucket: an upper bound of what it decrypted. */
const cipherRead = new Map<string, number>();

/** The fs backend with every data-object body counted on its way to the gateway. */
function countingBackend(inner: Backend): Backend {
  return new Proxy(inner, {
    get(t, p) {
      if (p === 'getObject') {
        return async (...args: Parameters<Backend['getObject']>) => {
          const r = await t.getObject(...args);
          const bucket = args[0];
          if (!bucket.startsWith('inflight-')) return r;
          const tap = new PassThrough({
            transform(c: Buffer, _e, cb) {
              cipherRead.set(bucket, (cipherRead.get(bucket) ?? 0) + c.length);
              cb(null, c);
            },
          });
          pipeline(r.body, tap, () => {});
          return { ...r, body: tap };
        };
      }
      const v = Reflect.get(t, p) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}

interface SlowRead {
  /** Resolves once PAUSE_AT bytes arrived and the reader stopped reading. */
  paused: Promise<void>;
  resume(): void;
  done: Promise<{ status: number; declared: number; body: Buffer; complete: boolean }>;
}

/** A plain GET that reads PAUSE_AT bytes, then stops reading until resume(). */
function slowGet(gw: TestGateway, bucket: string, key: string): SlowRead {
  const u = new URL(gw.url);
  const p = `/${bucket}/${key}`;
  const { headers } = signHeaders(gw, { method: 'GET', host: u.host, path: p, payload: 'UNSIGNED-PAYLOAD' });
  let onPaused!: () => void;
  let onFail!: (e: Error) => void;
  const paused = new Promise<void>((res, rej) => ((onPaused = res), (onFail = rej)));
  let res: http.IncomingMessage | undefined;
  const done = new Promise<{ status: number; declared: number; body: Buffer; complete: boolean }>((resolve) => {
    const req = http.request({ host: u.hostname, port: u.port, path: p, method: 'GET', headers, agent: false }, (r) => {
      res = r;
      const chunks: Buffer[] = [];
      let got = 0;
      let stopped = false;
      r.on('data', (c: Buffer) => {
        chunks.push(c);
        got += c.length;
        if (!stopped && got >= PAUSE_AT) {
          stopped = true;
          r.pause();
          onPaused();
        }
      });
      let settled = false;
      const finish = () => {
        if (settled) return;
        settled = true;
        if (!stopped) onFail(new Error(`response ended after ${got} bytes, status ${r.statusCode}`));
        resolve({ status: r.statusCode ?? 0, declared: Number(r.headers['content-length']), body: Buffer.concat(chunks), complete: r.complete });
      };
      r.on('end', finish);
      r.on('error', () => {});
      r.on('close', finish);
    });
    req.on('error', (e) => onFail(e));
    req.end();
  });
  return { paused, resume: () => res!.resume(), done };
}

describe('a GET in flight when its key is revoked stops within the revocation bound (issue #16)', () => {
  let a: TestGateway;
  let b: TestGateway;
  let backendA: Backend;
  let backendB: Backend;
  const objects = new Map<string, Buffer>();
  const tmp = makeTmpDir('lakecrypt-inflight-');

  beforeAll(async () => {
    // A: the gateway serving the read; B: another gateway on the same backend directory and CMK key files.
    const store = path.join(tmp.path, 'store');
    backendA = countingBackend(createBackend({ kind: 'fs', dataDir: store }));
    backendB = createBackend({ kind: 'fs', dataDir: store });
    a = await startTestGateway('fs', { blockSize: BLOCK, backend: backendA, dataDir: tmp.path });
    b = await startTestGateway('fs', { blockSize: BLOCK, backend: backendB, dataDir: tmp.path });
    const s3 = a.client();
    for (const bucket of ['inflight-ok', 'inflight-rekey', 'inflight-dek', 'inflight-kek', 'inflight-cmk']) {
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
      const data = randomBytes(SIZE);
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'big', Body: data }));
      objects.set(bucket, data);
    }
  }, 300_000);
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await backendA?.close();
    await backendB?.close();
    tmp.cleanup();
  });

  /** Start a slow read through A, pause it, let `act` happen through B, then read on to the end. */
  async function readAcross(bucket: string, act: () => Promise<void>, seen: () => Promise<boolean>) {
    cipherRead.set(bucket, 0);
    const r = slowGet(a, bucket, 'big');
    await r.paused;
    await sleep(1000); // every buffer between A's backend read and the reader fills up; A stalls
    const readBefore = cipherRead.get(bucket)!;
    await act();
    const t0 = Date.now();
    await pollUntil(seen, { timeoutMs: 15_000, retryErrors: false }); // A refuses (or serves) new requests as the change demands
    await sleep(Math.max(0, 1500 - (Date.now() - t0))); // the 1 s bound, and a margin
    r.resume();
    const out = await r.done;
    return { ...out, readBefore };
  }

  const statusThroughA = async (bucket: string, range: string): Promise<number> =>
    (await signedRequest(a.url, a, { method: 'GET', path: `/${bucket}/big`, headers: { range } })).status;

  const expectPrefix = (bucket: string, body: Buffer) => {
    const data = objects.get(bucket)!;
    expect(body.length).toBeGreaterThanOrEqual(PAUSE_AT);
    expect(body.equals(data.subarray(0, body.length)), 'every byte received is the plaintext at its offset').toBe(true);
  };

  it('control: without a revocation, and across an unrelated epoch change (a rotation), the slow read completes', async () => {
    const plain = await readAcross('inflight-ok', async () => {}, async () => true);
    expect(plain.status).toBe(200);
    expect(plain.complete).toBe(true);
    expect(plain.body.length).toBe(SIZE);
    expect(plain.body.equals(objects.get('inflight-ok')!)).toBe(true);

    const rotated = await readAcross(
      'inflight-ok',
      async () => void (await b.running.keys.rotate('inflight-ok')),
      async () => (await statusThroughA('inflight-ok', 'bytes=0-0')) === 206,
    );
    expect(rotated.complete).toBe(true);
    expect(rotated.body.equals(objects.get('inflight-ok')!)).toBe(true);
  });

  it('a re-key that resealed the header under a fresh key and retired the old one does not stop the read', async () => {
    // A new request opens the resealed header (same oid, same DEKs): the read in flight goes on as well.
    const bucket = 'inflight-rekey';
    const store = b.running.gateway.store;
    const keys = b.running.keys;
    const r = await readAcross(
      bucket,
      async () => {
        const oid = (await backendB.headObject(bucket, 'big'))!.meta['lc-oid']!;
        // own DEKs: starting the header key clears the caches, which wipes the cached header's
        const header = cloneHeaderKeys((await store.readHeader(bucket, 'big', oid)).header);
        const n = await keys.startHeaderKey(bucket);
        await store.writeHeader({ ...header, version: 2, keyNumber: n });
        expect(await keys.retireHeaderKeys(bucket, n, new Set(), 'test')).toEqual([header.keyNumber]);
      },
      async () => (await statusThroughA(bucket, 'bytes=0-0')) === 206,
    );
    expect(r.complete).toBe(true);
    expect(r.body.equals(objects.get(bucket)!)).toBe(true);
  });

  it('a block revoked far ahead of the reader: the stream is cut before any byte of it', async () => {
    const bucket = 'inflight-dek';
    const from = REVOKED_BLOCK * BLOCK;
    const r = await readAcross(
      bucket,
      async () => void (await revokeObject(b.running.gateway.store, b.running.keys, bucket, 'big', REVOKED_BLOCK, 'test')),
      async () => (await statusThroughA(bucket, `bytes=${from}-${from + 9}`)) === 403,
    );
    // The setup holds: while paused, A had not read as far as the revoked block.
    expect(r.readBefore).toBeLessThan(from);
    expect(r.status).toBe(200);
    expect(r.declared).toBe(SIZE);
    expect(r.complete, 'connection aborted').toBe(false);
    expect(r.body.length).toBeLessThanOrEqual(from);
    expectPrefix(bucket, r.body);
  });

  it('the whole dataset (its KEK versions) revoked: nothing past what A had already read is served', async () => {
    const bucket = 'inflight-kek';
    const r = await readAcross(
      bucket,
      async () => void (await b.running.keys.revoke(bucket)),
      async () => (await statusThroughA(bucket, 'bytes=0-0')) === 403,
    );
    await b.running.keys.restore(bucket);
    expect(r.status).toBe(200);
    expect(r.complete, 'connection aborted').toBe(false);
    // What A decrypted before it saw the revocation was buffered by then; nothing after it.
    expect(r.body.length).toBeLessThanOrEqual(r.readBefore);
    expect(r.body.length).toBeLessThan(SIZE);
    expectPrefix(bucket, r.body);
  });

  it('the CMK version disabled: nothing past what A had already read is served', async () => {
    const bucket = 'inflight-cmk';
    const keys = b.running.keys;
    try {
      const r = await readAcross(
        bucket,
        () => keys.cmkDisable('default', 1),
        async () => (await statusThroughA(bucket, 'bytes=0-0')) === 403,
      );
      expect(r.status).toBe(200);
      expect(r.complete, 'connection aborted').toBe(false);
      expect(r.body.length).toBeLessThanOrEqual(r.readBefore);
      expect(r.body.length).toBeLessThan(SIZE);
      expectPrefix(bucket, r.body);
    } finally {
      await keys.cmkEnable('default', 1);
    }
  });
});
