/**
 * What reading a backend response body costs the gateway, by HTTP client: node:http (IncomingMessage), the
 * gateway's raw reader (src/backend/raw-http.ts: one reused read buffer, each read copied out), and two
 * reference points — a plain socket with a fresh buffer per read and no HTTP parsing, and the reused buffer with
 * no copy at all. CPU of this process per MiB of a 256 MiB GET from a private MinIO, 3 rounds, interleaved.
 *
 *   node --import tsx bench/backend-read.ts        -> bench/results/backend-read.json
 */
import http from 'node:http';
import net from 'node:net';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { makeClient, putStream, MiB } from './lib/s3.ts';
import { startPlainMinio } from './lib/targets.ts';
import { FastS3 } from '../src/backend/s3-fast.ts';
import { RawHttpPool } from '../src/backend/raw-http.ts';
import { EMPTY_SHA256 } from '../src/s3/sigv4.ts';

const SIZE = 256 * MiB;
const minio = await startPlainMinio();
const be = { endpoint: minio.endpoint, accessKey: minio.accessKey, secretKey: minio.secretKey };
await makeClient(be).send(new CreateBucketCommand({ Bucket: 'big' }));
await putStream(makeClient(be), 'big', 'o', SIZE);
const url = new URL(be.endpoint);
const agent = new http.Agent({ keepAlive: true });
const viaHttpClient = new FastS3(be.endpoint, be.accessKey, be.secretKey, 'us-east-1', agent);
const pool = new RawHttpPool(url.hostname, Number(url.port), 4, 60_000);
const viaRawReader = new FastS3(be.endpoint, be.accessKey, be.secretKey, 'us-east-1', agent, 5, pool);
// the signed request head, for the two socket-level reference points
const signed = (viaHttpClient as unknown as { sign(m: string, p: string, q: string, h: string, e: object): Record<string, string> }).sign('GET', '/big/o', '', EMPTY_SHA256, {});
const head = `GET /big/o HTTP/1.1\r\n${Object.entries(signed).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`;

async function drain(c: FastS3): Promise<number> {
  const r = await c.call('GET', 'big', 'o');
  let n = 0;
  for await (const d of r.body) n += (d as Buffer).length;
  return n;
}

/** Bytes after the response head, counted; `reuse` reads into one buffer (no copy), else a fresh one per read. */
function socketOnly(reuse: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    let n = -1;
    let length = -1;
    const seen = (d: Buffer, len: number) => {
      if (n < 0) {
        const i = d.subarray(0, len).indexOf('\r\n\r\n');
        length = Number(/content-length: (\d+)/i.exec(d.toString('latin1', 0, i))![1]);
        n = len - i - 4;
      } else n += len;
      if (n >= length) {
        s.destroy();
        resolve(n);
      }
    };
    const s = reuse
      ? net.connect({ host: url.hostname, port: Number(url.port), onread: { buffer: Buffer.allocUnsafe(256 * 1024), callback: (len: number, b: Buffer) => (seen(b, len), true) } } as net.NetConnectOpts)
      : net.connect(Number(url.port), url.hostname);
    if (!reuse) s.on('data', (d: Buffer) => seen(d, d.length));
    s.on('connect', () => s.write(head));
    s.on('error', reject);
  });
}

const ways: [string, () => Promise<number>][] = [
  ['node-http-client', () => drain(viaHttpClient)],
  ['raw-reader (gateway)', () => drain(viaRawReader)],
  ['socket, fresh buffer per read, no HTTP', () => socketOnly(false)],
  ['socket, one reused buffer, no copy', () => socketOnly(true)],
];
const cpu: Record<string, number[]> = {};
const speed: Record<string, number[]> = {};
for (let round = 0; round < 3; round++) {
  for (const [name, fn] of ways) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const n = await fn();
    if (n !== SIZE) throw new Error(`${name}: ${n} bytes, expected ${SIZE}`);
    const u = process.cpuUsage(c0);
    (cpu[name] ??= []).push((u.user + u.system) / 1000 / (SIZE / MiB));
    (speed[name] ??= []).push(SIZE / MiB / ((performance.now() - t0) / 1000));
  }
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const result = Object.fromEntries(ways.map(([name]) => [name, { cpuMsPerMiB: +med(cpu[name]!).toFixed(3), mibPerS: Math.round(med(speed[name]!)) }]));
for (const [name, r] of Object.entries(result)) console.log(`${name.padEnd(40)} ${String(r.cpuMsPerMiB).padStart(6)} CPU-ms/MiB  ${r.mibPerS} MiB/s`);
const dir = path.join(import.meta.dirname, 'results');
mkdirSync(dir, { recursive: true });
writeFileSync(path.join(dir, 'backend-read.json'), JSON.stringify({ at: new Date().toISOString(), sizeMiB: SIZE / MiB, rounds: 3, result }, null, 2) + '\n');
pool.close();
agent.destroy();
await minio.stop();
process.exit(0);
