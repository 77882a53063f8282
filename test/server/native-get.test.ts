/**
 * Large whole-object GETs through the native data plane (src/store/native-read.ts, native/dataplane.c) on a gateway
 * over the shared MinIO: the bytes, the keep-alive connection reused before and after, a tampered chunk (the client
 * gets verified bytes only, then a cut connection), a DEK revoked while a slow reader streams (stopped before that
 * block), and dataPlane 'node' taking the Node path. `nativeTransfers.get` (lakecrypt_native_transfers_total)
 * proves which path served each read, so these fail if the native path broke or silently fell back.
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompleteMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { nativeDataplane, nativeTransfers, pumpsRunning } from '../../src/engine/dataplane.ts';
import { META_OID } from '../../src/store/index.ts';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { errorCode, rawRequest, signHeaders, type RawResponse } from '../../tools/sigv4.ts';
import { pollUntil } from '../../tools/wait.ts';
import { uniqueBucket } from '../helpers/s3.ts';
import { nativeClient, streamOf } from '../helpers/native-client.ts';

const MiB = 1024 * 1024;
const BLOCK = 8 * MiB;
const SEALED_CHUNK = 65536 + 16;
const PREFIX = 32;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let gw: TestGateway;
let nodeGw: TestGateway;
const bucket = uniqueBucket('native-get');
const creds = () => ({ accessKey: gw.accessKey, secretKey: gw.secretKey });

/** One signed request on `agent` (a keep-alive connection when given). */
function request(g: TestGateway, method: string, key: string, o: { body?: Buffer; agent?: http.Agent; range?: string; query?: string } = {}): Promise<RawResponse> {
  const host = new URL(g.url).host;
  const extra: Record<string, string> = o.body ? { 'content-length': String(o.body.length) } : {};
  if (o.range) extra.range = o.range;
  const path = `/${bucket}/${key}`;
  const { headers } = signHeaders({ accessKey: g.accessKey, secretKey: g.secretKey }, { method, host, path, query: o.query, headers: extra, payload: 'UNSIGNED-PAYLOAD' });
  return rawRequest(g.url, { method, path: o.query ? `${path}?${o.query}` : path, headers, body: o.body, agent: o.agent, timeoutMs: 120_000 });
}

/** A keep-alive agent of one socket that counts the connections it opened. */
function oneConnection(): { agent: http.Agent; connections: () => number } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let n = 0;
  const a = agent as unknown as { createConnection: (...args: unknown[]) => net.Socket };
  const orig = a.createConnection.bind(agent);
  a.createConnection = (...args: unknown[]) => {
    n++;
    return orig(...args);
  };
  return { agent, connections: () => n };
}

/** A GET read slowly: paused at its first body bytes until resume(); resolves with what arrived and how it ended. */
function slowGet(key: string) {
  const u = new URL(gw.url);
  const { headers } = signHeaders(creds(), { method: 'GET', host: u.host, path: `/${bucket}/${key}`, payload: 'UNSIGNED-PAYLOAD' });
  let resume = () => {};
  let destroy = () => {};
  let onPaused = () => {};
  const paused = new Promise<void>((r) => (onPaused = r));
  const done = new Promise<{ status: number; body: Buffer; complete: boolean }>((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method: 'GET', path: `/${bucket}/${key}`, headers }, (res) => {
      const chunks: Buffer[] = [];
      let first = true;
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        if (first) {
          first = false;
          res.pause();
          resume = () => res.resume();
          destroy = () => req.destroy();
          onPaused();
        }
      });
      const end = () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), complete: res.complete });
      res.on('end', end);
      res.on('close', end);
      res.on('error', end);
    });
    req.on('error', reject);
    req.end();
  });
  return { paused, done, resume: () => resume(), destroy: () => destroy() };
}

/**
 * A slow GET of `key` paused at its first body bytes while `block` is revoked; resumed once the gateway saw the
 * revocation. What arrived: a 200 whose body was cut (not complete) after some bytes.
 */
async function revokedWhileSlow(key: string, block: { part: number; block: number }) {
  const stream = slowGet(key);
  await stream.paused;
  const keys = gw.running.keys;
  const gen = keys.cacheGeneration;
  const oid = (await gw.backend.headObject(bucket, key))!.meta[META_OID];
  await keys.revokeBlocks(keys.datasetFor(bucket, key), oid, [block], 'test');
  await pollUntil(() => keys.cacheGeneration !== gen, { timeoutMs: 30_000, what: 'the gateway saw the revocation' });
  stream.resume();
  const s = await stream.done;
  expect(s.status).toBe(200);
  expect(s.complete).toBe(false);
  expect(s.body.length).toBeGreaterThan(0);
  return s;
}

/** A multipart upload of `bodies` as parts 1..n (or `numbers`) through the gateway (the SDK, UNSIGNED-PAYLOAD parts). */
async function multipartPut(key: string, bodies: Buffer[], numbers = bodies.map((_, i) => i + 1)): Promise<void> {
  const c = nativeClient(gw);
  try {
    const { UploadId } = await c.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    const parts = [];
    for (const [i, b] of bodies.entries()) {
      const r = await c.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: numbers[i], Body: streamOf(b), ContentLength: b.length }));
      parts.push({ PartNumber: numbers[i], ETag: r.ETag });
    }
    await c.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }));
  } finally {
    c.destroy();
  }
}

async function put(key: string, body: Buffer): Promise<void> {
  const r = await request(gw, 'PUT', key, { body });
  expect(r.status, r.body.toString()).toBe(200);
}

beforeAll(async () => {
  // built by the test setup (test/helpers/global-setup.ts): without it, nothing here could tell the paths apart
  expect(nativeDataplane(), 'native/build/dataplane.node must load (gcc and node headers)').not.toBeNull();
  gw = await startTestGateway('s3', { blockSize: BLOCK });
  // the same keystore and CMK (its data dir): it reads what gw wrote
  nodeGw = await startTestGateway('s3', { blockSize: BLOCK, dataPlane: 'node', metaBucket: gw.running.gateway.metaBucket, dataDir: gw.dataDir });
  await gw.client().send(new CreateBucketCommand({ Bucket: bucket }));
}, 120_000);

afterAll(async () => {
  await nodeGw?.close();
  await gw?.close();
});

describe('native data plane GET', () => {
  it('serves a 20 MiB object byte for byte, several times on one keep-alive connection between small GETs and PUTs', async () => {
    const big = randomBytes(20 * MiB);
    await put('big', big);
    const { agent, connections } = oneConnection();
    const before = nativeTransfers.get;
    try {
      for (let i = 0; i < 3; i++) {
        const small = Buffer.from(`small ${i} ${randomBytes(8).toString('hex')}`);
        const p = await request(gw, 'PUT', `small-${i}`, { body: small, agent });
        expect(p.status, p.body.toString()).toBe(200);
        const r = await request(gw, 'GET', 'big', { agent });
        expect(r.status, r.body.subarray(0, 300).toString()).toBe(200);
        expect(r.aborted).toBe(false);
        expect(r.body.length).toBe(big.length);
        expect(sha(r.body)).toBe(sha(big));
        const s = await request(gw, 'GET', `small-${i}`, { agent });
        expect(s.status).toBe(200);
        expect(s.body.equals(small)).toBe(true);
      }
    } finally {
      agent.destroy();
    }
    expect(nativeTransfers.get - before).toBe(3);
    expect(connections()).toBe(1);
  });

  it('a flipped ciphertext byte in block 2: the verified bytes before that chunk, then a cut connection, never wrong bytes', async () => {
    const plain = randomBytes(20 * MiB);
    await put('tampered', plain);
    const info = (await gw.backend.headObject(bucket, 'tampered'))!;
    const { data } = await gw.backend.getBuffer(bucket, 'tampered');
    // chunk 3 of block 2: plaintext from 2 * BLOCK + 3 * 64 KiB on is never released
    const chunk = (2 * BLOCK) / 65536 + 3;
    const at = PREFIX + chunk * SEALED_CHUNK + 1000;
    data[at] ^= 0x01;
    await gw.backend.putObject(bucket, 'tampered', data, { size: data.length, meta: info.meta });
    expect((await gw.backend.headObject(bucket, 'tampered'))!.meta[META_OID]).toBe(info.meta[META_OID]);
    const before = nativeTransfers.get;
    const r = await request(gw, 'GET', 'tampered');
    expect(r.status).toBe(200); // the status line went out before the failed chunk was reached
    expect(r.aborted).toBe(true);
    expect(r.body.length).toBeLessThanOrEqual(chunk * 65536);
    console.log(`[native-get] tampered: ${r.body.length} of ${plain.length} bytes before the cut (failed chunk at ${chunk * 65536})`);
    expect(r.body.equals(plain.subarray(0, r.body.length))).toBe(true);
    expect(nativeTransfers.get - before).toBe(1);
    // the process is up and serves the next request
    const ok = await request(gw, 'GET', 'big');
    expect(ok.status, ok.body.subarray(0, 300).toString()).toBe(200);
    expect(ok.body.length).toBe(20 * MiB);
  });

  it('a DEK revoked while a slow reader streams: the stream stops before that block, and a new GET is refused', async () => {
    const plain = randomBytes(40 * MiB);
    await put('revoked', plain);
    const before = nativeTransfers.get;
    const s = await revokedWhileSlow('revoked', { part: 1, block: 3 });
    expect(s.body.length).toBeLessThanOrEqual(3 * BLOCK);
    console.log(`[native-get] revoked block 3: ${s.body.length} of ${plain.length} bytes before the cut (block 3 at ${3 * BLOCK})`);
    expect(s.body.equals(plain.subarray(0, s.body.length))).toBe(true);
    expect(nativeTransfers.get - before).toBe(1);
    const again = await request(gw, 'GET', 'revoked');
    expect(again.status).toBe(403);
    expect(errorCode(again.body)).toBe('KeyRevoked');
    expect(nativeTransfers.get - before).toBe(1);
  });

  it('a client gone mid-body: its pump ends, the gateway serves on (the backend connection was not handed back mid-body)', async () => {
    const plain = randomBytes(40 * MiB);
    await put('abandoned', plain);
    const before = nativeTransfers.get;
    const stream = slowGet('abandoned');
    await stream.paused;
    stream.destroy();
    await stream.done;
    await pollUntil(() => pumpsRunning() === 0, { timeoutMs: 30_000, what: 'the pump ended' });
    expect(nativeTransfers.get - before).toBe(1);
    // the pooled backend connections carry whole answers: several reads in a row, byte for byte
    for (let i = 0; i < 3; i++) {
      const r = await request(gw, 'GET', 'abandoned');
      expect(r.status, r.body.subarray(0, 300).toString()).toBe(200);
      expect(r.aborted).toBe(false);
      expect(sha(r.body)).toBe(sha(plain));
    }
    expect(nativeTransfers.get - before).toBe(4);
    await pollUntil(() => pumpsRunning() === 0, { timeoutMs: 30_000, what: 'every pump ended' });
  });

  it("dataPlane 'node' serves the same object through the Node path", async () => {
    const before = nativeTransfers.get;
    const r = await request(nodeGw, 'GET', 'big');
    expect(r.status, r.body.subarray(0, 300).toString()).toBe(200);
    expect(r.aborted).toBe(false);
    expect(r.body.length).toBe(20 * MiB);
    const viaNative = await request(gw, 'GET', 'big');
    expect(viaNative.status, viaNative.body.subarray(0, 300).toString()).toBe(200);
    expect(viaNative.aborted).toBe(false);
    expect(viaNative.body.length).toBe(20 * MiB);
    expect(sha(r.body)).toBe(sha(viaNative.body));
    expect(nativeTransfers.get - before).toBe(1); // the second one only
  });

  it('a multipart object: one pump per part, byte for byte; a flipped byte in part 2 cuts after the verified bytes', async () => {
    const bodies = [randomBytes(6 * MiB), randomBytes(6 * MiB), randomBytes(3 * MiB + 5)];
    const plain = Buffer.concat(bodies);
    await multipartPut('mp', bodies);
    const before = nativeTransfers.get;
    const r = await request(gw, 'GET', 'mp');
    expect(r.status).toBe(200);
    expect(r.aborted).toBe(false);
    expect(sha(r.body)).toBe(sha(plain));
    expect(nativeTransfers.get - before).toBe(1);
    // chunk 5 of part 2: the plaintext from 6 MiB + 5 * 64 KiB on is never released
    const info = (await gw.backend.headObject(bucket, 'mp'))!;
    const { data } = await gw.backend.getBuffer(bucket, 'mp');
    data[PREFIX + (6 * MiB) / 65536 * SEALED_CHUNK + 5 * SEALED_CHUNK + 100] ^= 0x01;
    await gw.backend.putObject(bucket, 'mp', data, { size: data.length, meta: info.meta });
    const t = await request(gw, 'GET', 'mp');
    expect(t.status).toBe(200);
    expect(t.aborted).toBe(true);
    expect(t.body.length).toBeLessThanOrEqual(6 * MiB + 5 * 65536);
    expect(t.body.equals(plain.subarray(0, t.body.length))).toBe(true);
    expect(nativeTransfers.get - before).toBe(2);
  });

  it('a DEK of part 3 revoked while a slow reader streams part 1: parts 1 and 2 at most, then the cut; a new GET is refused', async () => {
    const bodies = [randomBytes(BLOCK), randomBytes(BLOCK), randomBytes(BLOCK + 3)];
    const plain = Buffer.concat(bodies);
    await multipartPut('mp-revoked', bodies);
    const before = nativeTransfers.get;
    const s = await revokedWhileSlow('mp-revoked', { part: 3, block: 0 });
    expect(s.body.length).toBeLessThanOrEqual(2 * BLOCK);
    expect(s.body.equals(plain.subarray(0, s.body.length))).toBe(true);
    expect(nativeTransfers.get - before).toBe(1);
    const again = await request(gw, 'GET', 'mp-revoked');
    expect(again.status).toBe(403);
    expect(errorCode(again.body)).toBe('KeyRevoked');
  });
});

describe('native data plane ranged GET', () => {
  /** GET `range` of `key`: a 206 of exactly `plain`'s bytes start..end, whole (not cut). */
  async function expectRange(key: string, plain: Buffer, range: string, start: number, end: number, agent?: http.Agent): Promise<void> {
    const r = await request(gw, 'GET', key, { range, agent });
    expect(r.status, `${range}: ${r.body.subarray(0, 300).toString()}`).toBe(206);
    expect(r.aborted, range).toBe(false);
    expect(r.headers['content-range'], range).toBe(`bytes ${start}-${end}/${plain.length}`);
    expect(r.body.length, range).toBe(end - start + 1);
    expect(r.body.equals(plain.subarray(start, end + 1)), range).toBe(true);
  }

  it('ranges of 1 MiB or more go through the pump byte for byte (inside a block, across blocks, with the prefix, suffix, open-ended), on one keep-alive connection', async () => {
    const plain = randomBytes(20 * MiB + 777);
    await put('ranged', plain);
    const { agent, connections } = oneConnection();
    const before = nativeTransfers.get;
    const cases: [string, number, number][] = [
      [`bytes=12345-${12345 + MiB - 1}`, 12345, 12345 + MiB - 1], // inside block 0, chunk-unaligned both ends
      [`bytes=${BLOCK - 100}-${2 * BLOCK + 99}`, BLOCK - 100, 2 * BLOCK + 99], // three blocks, three DEKs
      [`bytes=0-${MiB - 1}`, 0, MiB - 1], // begins with the prefix
      ['bytes=-1500000', plain.length - 1500000, plain.length - 1], // the last, partial chunk (final flag)
      [`bytes=${19 * MiB}-`, 19 * MiB, plain.length - 1],
      [`bytes=${2 * BLOCK + 3 * 65536}-${2 * BLOCK + 3 * 65536 + MiB - 1}`, 2 * BLOCK + 3 * 65536, 2 * BLOCK + 3 * 65536 + MiB - 1], // starts mid-block on a chunk boundary
    ];
    try {
      for (const [range, start, end] of cases) await expectRange('ranged', plain, range, start, end, agent);
      expect(nativeTransfers.get - before).toBe(cases.length);
      // below NATIVE_MIN_BYTES: the Node path, same bytes
      await expectRange('ranged', plain, 'bytes=100-5000', 100, 5000, agent);
      expect(nativeTransfers.get - before).toBe(cases.length);
    } finally {
      agent.destroy();
    }
    expect(connections()).toBe(1);
    // the Node path's answer to the same range is the same
    const viaNode = await request(nodeGw, 'GET', 'ranged', { range: cases[1][0] });
    expect(viaNode.body.equals(plain.subarray(cases[1][1], cases[1][2] + 1))).toBe(true);
  });

  it('a multipart object: a range across three parts and ?partNumber=2 through pumps', async () => {
    // parts of whole chunks but the last: stored as uploaded (a part ending mid-chunk would be re-sealed into one)
    const bodies = [randomBytes(6 * MiB), randomBytes(5 * MiB), randomBytes(3 * MiB + 5)];
    const plain = Buffer.concat(bodies);
    await multipartPut('mp-ranged', bodies);
    const before = nativeTransfers.get;
    await expectRange('mp-ranged', plain, `bytes=${6 * MiB - 70_000}-${11 * MiB + 70_000}`, 6 * MiB - 70_000, 11 * MiB + 70_000);
    const p2 = await request(gw, 'GET', 'mp-ranged', { query: 'partNumber=2' });
    expect(p2.status).toBe(206);
    expect(p2.headers['x-amz-mp-parts-count']).toBe('3');
    expect(p2.body.equals(bodies[1])).toBe(true);
    expect(nativeTransfers.get - before).toBe(2);

  });

  it('a flipped byte inside the range cuts after the verified bytes; outside the range it is never read', async () => {
    const plain = randomBytes(12 * MiB);
    await put('range-tampered', plain);
    const info = (await gw.backend.headObject(bucket, 'range-tampered'))!;
    const { data } = await gw.backend.getBuffer(bucket, 'range-tampered');
    const chunk = 100; // plaintext from 100 x 64 KiB (6.25 MiB) on
    data[PREFIX + chunk * SEALED_CHUNK + 7] ^= 0x01;
    await gw.backend.putObject(bucket, 'range-tampered', data, { size: data.length, meta: info.meta });
    const before = nativeTransfers.get;
    const start = 5 * MiB + 1234;
    const r = await request(gw, 'GET', 'range-tampered', { range: `bytes=${start}-${start + 3 * MiB}` });
    expect(r.status).toBe(206);
    expect(r.aborted).toBe(true);
    expect(r.body.length).toBeLessThanOrEqual(chunk * 65536 - start);
    expect(r.body.equals(plain.subarray(start, start + r.body.length))).toBe(true);
    // a range that ends before the bad chunk, and one that starts after it, are whole
    await expectRange('range-tampered', plain, `bytes=0-${chunk * 65536 - 1}`, 0, chunk * 65536 - 1);
    await expectRange('range-tampered', plain, `bytes=${(chunk + 1) * 65536}-`, (chunk + 1) * 65536, plain.length - 1);
    expect(nativeTransfers.get - before).toBe(3);
  });

  it('a revoked block denies exactly the ranges that touch it: 403 before any byte for those, whole answers for the others', async () => {
    const plain = randomBytes(4 * BLOCK);
    await put('range-revoked', plain);
    const keys = gw.running.keys;
    const oid = (await gw.backend.headObject(bucket, 'range-revoked'))!.meta[META_OID];
    await keys.revokeBlocks(keys.datasetFor(bucket, 'range-revoked'), oid, [{ part: 1, block: 2 }], 'test');
    const before = nativeTransfers.get;
    await expectRange('range-revoked', plain, `bytes=${BLOCK}-${2 * BLOCK - 1}`, BLOCK, 2 * BLOCK - 1); // block 1 only
    await expectRange('range-revoked', plain, `bytes=${3 * BLOCK}-`, 3 * BLOCK, plain.length - 1); // block 3 only
    for (const range of [`bytes=${2 * BLOCK - MiB}-${2 * BLOCK + 10}`, `bytes=${BLOCK}-`]) {
      const r = await request(gw, 'GET', 'range-revoked', { range });
      expect(r.status, range).toBe(403);
      expect(errorCode(r.body), range).toBe('KeyRevoked');
    }
    expect(nativeTransfers.get - before).toBe(2);
  });
});
