/**
 * Scenario bodies. Each returns the figure(s) of one run against one target; run.ts interleaves targets
 * over rounds (A B C, B C A, C A B, ...) and reports medians across rounds.
 */
import {
  CompleteMultipartUploadCommand, CreateMultipartUploadCommand, DeleteObjectCommand, HeadObjectCommand,
  PutObjectCommand, UploadPartCommand,
} from '@aws-sdk/client-s3';
import { bodyBuffer, bodyStream, getDrain, KiB, makeDefaultClient, MiB, putStream } from './s3.ts';
import { percentile, runPool, sleep } from './stats.ts';
import { cpuSecondsOf, type Target } from './targets.ts';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { rawRequest } from '../../tools/sigv4.ts';
import { signedStreamingPut } from '../../test/s3/helpers.ts';

export interface Sizes {
  large: number;
  rangeSmall: number;
  rangeHuge: number;
  rssUpload: number;
  mpuPart: number;
  smallLatencyOps: number;
  smallThroughputOps: number;
  smallConcurrency: number;
  rangeReads: number;
  hotGets: number;
  rounds: number;
  mcSize: number;
  warpDuration: string;
}

export const FULL: Sizes = {
  large: 256 * MiB,
  rangeSmall: 64 * MiB,
  rangeHuge: 4096 * MiB,
  rssUpload: 5120 * MiB,
  mpuPart: 64 * MiB,
  smallLatencyOps: 300,
  smallThroughputOps: 1000,
  smallConcurrency: 8,
  rangeReads: 40,
  hotGets: 1000,
  rounds: 3,
  mcSize: 256 * MiB,
  warpDuration: '20s',
};

export const QUICK: Sizes = {
  large: 32 * MiB,
  rangeSmall: 64 * MiB,
  rangeHuge: 512 * MiB,
  rssUpload: 512 * MiB,
  mpuPart: 8 * MiB,
  smallLatencyOps: 60,
  smallThroughputOps: 200,
  smallConcurrency: 8,
  rangeReads: 12,
  hotGets: 300,
  rounds: 1,
  mcSize: 32 * MiB,
  warpDuration: '5s',
};

export type Figures = Record<string, number>;

const mibps = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);

export async function putLarge(t: Target, s: Sizes, conc: number): Promise<Figures> {
  const { wallMs } = await runPool(conc, conc, (i) => putStream(t.client, t.bucket, `large-c${conc}-${i}`, s.large));
  return { [`put-large-c${conc}`]: mibps(conc * s.large, wallMs) };
}

/**
 * One large stream PUT from the JavaScript SDK with its defaults (makeDefaultClient): the SDK's own stream upload;
 * `agent`: given an http.Agent (it then does not wait for 100 Continue).
 */
export async function putSdkStream(t: Target, s: Sizes, agent = false): Promise<Figures> {
  const c = makeDefaultClient(t, { agent });
  const t0 = performance.now();
  await c.send(new PutObjectCommand({ Bucket: t.bucket, Key: 'large-sdk-stream', Body: bodyStream(s.large), ContentLength: s.large }));
  const wallMs = performance.now() - t0;
  c.destroy();
  return { [agent ? 'put-large-sdk-stream-agent' : 'put-large-sdk-stream']: mibps(s.large, wallMs) };
}

/**
 * One large PUT framed as the AWS SDK for Java v2 sends it over http: signed 64 KiB aws-chunks and a signed CRC32
 * trailer (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER), encoded before the clock starts by the tests' independent
 * encoder (test/s3/helpers.ts) and sent whole (tools/sigv4.ts).
 */
export async function putSignedTrailer(t: Target, s: Sizes): Promise<Figures> {
  const body = Buffer.concat(Array.from({ length: Math.ceil(s.large / (4 * MiB)) }, (_, i) => bodyBuffer(4 * MiB, i))).subarray(0, s.large);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlibCrc32(body));
  const put = signedStreamingPut(t, t.endpoint, `/${t.bucket}/large-signed-trailer`, body, { trailers: [['x-amz-checksum-crc32', crc.toString('base64')]] });
  const t0 = performance.now();
  const r = await rawRequest(t.endpoint, { ...put, timeoutMs: 600_000 });
  const wallMs = performance.now() - t0;
  if (r.status !== 200) throw new Error(`${t.name}: signed-trailer PUT answered ${r.status}: ${r.body.toString().slice(0, 300)}`);
  return { 'put-large-signed-trailer': mibps(s.large, wallMs) };
}

export async function getLarge(t: Target, s: Sizes, conc: number): Promise<Figures> {
  let bytes = 0;
  const { wallMs } = await runPool(conc, conc, async (i) => {
    const n = await getDrain(t.client, t.bucket, `large-c4-${i}`);
    if (n !== s.large) throw new Error(`${t.name}: GET large-c4-${i} returned ${n} bytes, expected ${s.large}`);
    bytes += n;
  });
  return { [`get-large-c${conc}`]: mibps(bytes, wallMs) };
}

const SMALL_KEYS = 50;
const sizeTag = (size: number) => `${size / KiB}k`;

/** Sequential PUT/GET/HEAD latencies, then ops/s at `smallConcurrency`. */
export async function small(t: Target, s: Sizes, size: number, onError?: (what: string, e: Error) => void): Promise<Figures> {
  const tag = sizeTag(size);
  const bodies = Array.from({ length: SMALL_KEYS }, (_, i) => bodyBuffer(size, i));
  const key = (i: number) => `small-${tag}-${i % SMALL_KEYS}`;
  const put = (i: number) => t.client.send(new PutObjectCommand({ Bucket: t.bucket, Key: key(i), Body: bodies[i % SMALL_KEYS] })).then(() => undefined);
  const get = async (i: number) => {
    const n = await getDrain(t.client, t.bucket, key(i));
    if (n !== size) throw new Error(`${t.name}: GET ${key(i)} returned ${n} bytes, expected ${size}`);
  };
  const head = (i: number) => t.headClient.send(new HeadObjectCommand({ Bucket: t.bucket, Key: key(i) })).then(() => undefined);
  const f: Figures = {};
  const name = (op: string, what: string) => (size === 4 * KiB ? `${op}-small-${what}` : `${op}-small-${tag}-${what}`);
  // each operation on its own, so one failing operation (reported through onError) leaves the others' figures
  for (const [op, fn] of [['put', put], ['get', get], ['head', head]] as const) {
    try {
      const { lat } = await runPool(s.smallLatencyOps, 1, fn);
      f[name(op, 'p50-ms')] = percentile(lat, 50);
      f[name(op, 'p99-ms')] = percentile(lat, 99);
      const { wallMs } = await runPool(s.smallThroughputOps, s.smallConcurrency, fn);
      f[`${op}-small-${tag}-ops`] = s.smallThroughputOps / (wallMs / 1000);
    } catch (e) {
      onError?.(['p50-ms', 'p99-ms'].map((w) => name(op, w)).concat(`${op}-small-${tag}-ops`).join(', '), e as Error);
      await sleep(200); // let the client's agent see sockets the server closed
    }
  }
  return f;
}

/** Sequential 4 KiB PUTs alone (small()'s first step, without its concurrent ones): p50 / p99 (bench/ab.ts put-small). */
export async function smallPuts(t: Target, s: Sizes): Promise<Figures> {
  const body = bodyBuffer(4 * KiB);
  const { lat } = await runPool(s.smallLatencyOps, 1, (i) => t.client.send(new PutObjectCommand({ Bucket: t.bucket, Key: `small-puts-${i % SMALL_KEYS}`, Body: body })).then(() => undefined));
  return { 'put-small-p50-ms': percentile(lat, 50), 'put-small-p99-ms': percentile(lat, 99) };
}

export async function setupRangeObjects(t: Target, s: Sizes): Promise<void> {
  await putStream(t.client, t.bucket, 'range-small', s.rangeSmall);
  await putStream(t.client, t.bucket, 'range-huge', s.rangeHuge);
}

export async function ranges(t: Target, s: Sizes): Promise<Figures> {
  const f: Figures = {};
  for (const [label, key, size] of [['small', 'range-small', s.rangeSmall], ['huge', 'range-huge', s.rangeHuge]] as const) {
    // Read the object once first, through the target itself: the timed reads then measure the range path, not
    // whether this VM's page cache still held the object (it reclaims cold pages; the objects were written at
    // start-up, minutes of other large transfers ago). Every target is warmed alike.
    await getDrain(t.client, t.bucket, key);
    // the gateway's CPU over the timed reads only (not the whole read above): per range read
    const c0 = t.name === 'lakecrypt' ? cpuSecondsOf(t.pid) : NaN;
    const { lat } = await runPool(s.rangeReads, 1, async () => {
      const a = Math.floor(Math.random() * (size - MiB));
      const n = await getDrain(t.client, t.bucket, key, `bytes=${a}-${a + MiB - 1}`);
      if (n !== MiB) throw new Error(`${t.name}: range read of ${key} returned ${n} bytes`);
    });
    f[`range-1mib-${label}-object-ms`] = percentile(lat, 50);
    if (t.name === 'lakecrypt') f[`gateway-cpu-ms-per-range-1mib-${label}`] = ((cpuSecondsOf(t.pid) - c0) * 1000) / s.rangeReads;
  }
  return f;
}

/** A whole GET of the object multipart() wrote (4 parts of `mpuPart`). */
export async function getMultipart(t: Target, s: Sizes): Promise<Figures> {
  const t0 = performance.now();
  const n = await getDrain(t.client, t.bucket, 'mpu-4x');
  if (n !== 4 * s.mpuPart) throw new Error(`${t.name}: GET mpu-4x returned ${n} bytes, expected ${4 * s.mpuPart}`);
  return { 'multipart-get-MiBps': mibps(n, performance.now() - t0) };
}
export async function multipart(t: Target, s: Sizes): Promise<Figures> {
  const key = 'mpu-4x';
  const t0 = performance.now();
  const { UploadId } = await t.client.send(new CreateMultipartUploadCommand({ Bucket: t.bucket, Key: key }));
  const parts = await Promise.all([1, 2, 3, 4].map(async (PartNumber) => {
    const r = await t.client.send(new UploadPartCommand({ Bucket: t.bucket, Key: key, UploadId, PartNumber, Body: bodyStream(s.mpuPart), ContentLength: s.mpuPart }));
    return { PartNumber, ETag: r.ETag };
  }));
  await t.client.send(new CompleteMultipartUploadCommand({ Bucket: t.bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }));
  return { 'multipart-4x-MBps': mibps(4 * s.mpuPart, performance.now() - t0) };
}

export async function deleteKey(t: Target, key: string): Promise<void> {
  await t.client.send(new DeleteObjectCommand({ Bucket: t.bucket, Key: key })).catch(() => undefined);
}

/** Read the Prometheus counters the gateway exposes on its admin port. */
export async function scrape(adminUrl: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    const name = line.slice(0, sp).replace(/\{.*\}$/, '');
    m.set(name, (m.get(name) ?? 0) + Number(line.slice(sp + 1)));
  }
  return m;
}

/**
 * The gateway's own CPU seconds, read from its `process_cpu_seconds_total` (prom-client: process.cpuUsage(), i.e.
 * getrusage over every thread, the native pump's exited ones included, to the microsecond). /proc/PID/stat counts
 * 10 ms ticks: one 256 MiB transfer at ≈ 0.7 CPU-ms per MiB is ≈ 18 ticks, so the c1 and c4 rows could differ by
 * their rounding alone. A scrape costs the gateway CPU of its own, and an interval between two readings holds one
 * scrape's worth for every reading taken (the tail of the first, the head of the last, all of any in between);
 * `read` subtracts that many times the least cost seen over a few back-to-back pairs at the start.
 */
export async function gatewayCpuMeter(adminUrl: string): Promise<{ read(): Promise<number>; scrapeMs: number }> {
  const raw = async () => {
    const v = (await scrape(adminUrl)).get('process_cpu_seconds_total');
    if (v === undefined || !Number.isFinite(v)) throw new Error('the gateway exposes no process_cpu_seconds_total');
    return v;
  };
  let prev = await raw();
  let cost = Infinity;
  for (let i = 0; i < 6; i++) {
    const v = await raw();
    cost = Math.min(cost, v - prev);
    prev = v;
  }
  let reads = 0;
  return {
    scrapeMs: cost * 1000,
    async read() {
      const v = await raw();
      return v - ++reads * cost;
    },
  };
}
