/**
 * What any gateway in lakecrypt's place can reach on this machine for one large PUT or GET stream: the same
 * client, the same 256 MiB object, through
 *   minio            direct (plain MinIO, which is also everyone else's backend);
 *   minio_sse        direct, MinIO with its own SSE-S3 (the second reference of the targets);
 *   tcp-relay        a process that only pipes sockets to MinIO (bench/lib/relay.ts tcp): the cost of a second
 *                    hop, nothing more;
 *   tcp-relay-aes    the same plus one AES-256-GCM pass on node:crypto over every byte (a fresh cipher per 64 KiB,
 *                    as the engine): the floor of any process that must encrypt or decrypt in between;
 *   null-gateway     node:http server + the gateway's own backend client, no auth, no crypto (relay.ts http);
 *   null-gateway-aes the same plus the AES pass: a Node gateway with nothing but the crypto;
 *   lakecrypt        the gateway.
 * Rounds interleaved with the first target rotated; per transfer MiB/s, the middle process's CPU and the whole
 * machine's CPU per MiB (from /proc); dirty page cache is written out (sync, untimed) before each transfer. Reports medians over rounds and each target's ratio to minio and minio_sse.
 *
 *   node --import tsx bench/floor.ts [--rounds 7] [--mib 256] [--out FILE]   -> bench/results/floor.json
 * (rounds: a multiple of 7, so every target starts a round equally often)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { CreateBucketCommand, GetObjectCommand, PutBucketEncryptionCommand, type S3Client } from '@aws-sdk/client-s3';
import { bodyStream, getDrain, makeClient, MiB, putStream, type Endpoint } from './lib/s3.ts';
import { median } from './lib/stats.ts';
import { cpuSecondsOf, machineBusySeconds, startGatewayProcess, startPlainMinio, startRelay, startSseMinio } from './lib/targets.ts';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '7' }, mib: { type: 'string', default: '256' }, out: { type: 'string' } } });
const ROUNDS = Number(args.rounds);
const SIZE = Number(args.mib) * MiB;

// a SIGTERM (the smoke test's time-out) still runs the exit hooks that kill MinIO, the relays and the gateway
process.once('SIGTERM', () => process.exit(143));
const minio = await startPlainMinio();
const sse = await startSseMinio();
const be: Endpoint = { endpoint: minio.endpoint, accessKey: minio.accessKey, secretKey: minio.secretKey };
const sseEp: Endpoint = { endpoint: sse.endpoint, accessKey: sse.accessKey, secretKey: sse.secretKey };
const relays = {
  'tcp-relay': await startRelay('tcp', be),
  'tcp-relay-aes': await startRelay('tcp-aes', be),
  'null-gateway': await startRelay('http', be),
  'null-gateway-aes': await startRelay('http-aes', be),
};
const gw = await startGatewayProcess(be);

interface Way {
  name: string;
  client: S3Client;
  bucket: string;
  /** The process in the middle, whose CPU is counted (none for direct). */
  pid?: number;
}
const direct = makeClient(be);
await direct.send(new CreateBucketCommand({ Bucket: 'floor' }));
const sseClient = makeClient(sseEp);
await sseClient.send(new CreateBucketCommand({ Bucket: 'floor' }));
await sseClient.send(new PutBucketEncryptionCommand({
  Bucket: 'floor',
  ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
}));
const viaGateway = makeClient(gw);
await viaGateway.send(new CreateBucketCommand({ Bucket: 'floorgw' }));
const ways: Way[] = [
  { name: 'minio', client: direct, bucket: 'floor' },
  { name: 'minio_sse', client: sseClient, bucket: 'floor' },
  ...Object.entries(relays).map(([name, r]) => ({ name, client: makeClient({ ...be, endpoint: r.endpoint }), bucket: 'floor', pid: r.child.pid })),
  { name: 'lakecrypt', client: viaGateway, bucket: 'floorgw', pid: gw.pid },
];

async function sha256Of(body: Readable): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of body) h.update(chunk as Buffer);
  return h.digest('hex');
}

type Op = 'put' | 'get';
interface Sample { mibps: number[]; middleCpuMsPerMib: number[]; machineCpuMsPerMib: number[] }
const samples: Record<Op, Record<string, Sample>> = { put: {}, get: {} };
for (const op of ['put', 'get'] as const) for (const w of ways) samples[op][w.name] = { mibps: [], middleCpuMsPerMib: [], machineCpuMsPerMib: [] };

async function measure(op: Op, w: Way): Promise<void> {
  execFileSync('sync'); // untimed: no way pays for the disk writes an earlier PUT left in the page cache
  const cpu0 = w.pid ? cpuSecondsOf(w.pid) : 0;
  const busy0 = machineBusySeconds();
  const t = performance.now();
  if (op === 'put') await putStream(w.client, w.bucket, 'o', SIZE);
  else {
    const n = await getDrain(w.client, w.bucket, 'o');
    if (n !== SIZE) throw new Error(`${w.name}: GET returned ${n} bytes, not ${SIZE}`);
  }
  const s = (performance.now() - t) / 1000;
  const mib = SIZE / MiB;
  const sample = samples[op][w.name]!;
  sample.mibps.push(mib / s);
  if (w.pid) sample.middleCpuMsPerMib.push(((cpuSecondsOf(w.pid) - cpu0) * 1000) / mib);
  sample.machineCpuMsPerMib.push(((machineBusySeconds() - busy0) * 1000) / mib);
}

// every way's object, written through that way (the relays share plain MinIO's object), then read back whole
// and compared, untimed: every way must move the object's exact bytes
const expected = await sha256Of(bodyStream(SIZE));
for (const w of ways) {
  await measure('put', w);
  const o = await w.client.send(new GetObjectCommand({ Bucket: w.bucket, Key: 'o' }));
  const got = await sha256Of(o.Body as Readable);
  if (got !== expected) throw new Error(`${w.name}: the object read back differs from the one written`);
}
for (const w of ways) samples.put[w.name] = { mibps: [], middleCpuMsPerMib: [], machineCpuMsPerMib: [] };
for (let round = 0; round < ROUNDS; round++) {
  for (const op of ['put', 'get'] as const) {
    for (let k = 0; k < ways.length; k++) await measure(op, ways[(round + k) % ways.length]!);
  }
  console.error(`[floor] round ${round + 1}/${ROUNDS} done`);
}

const r2 = (x: number) => Math.round(x * 100) / 100;
const r1 = (x: number) => Math.round(x * 10) / 10;
const result = Object.fromEntries(
  (['put', 'get'] as const).map((op) => {
    const med = Object.fromEntries(ways.map((w) => [w.name, median(samples[op][w.name]!.mibps)]));
    return [op, Object.fromEntries(ways.map((w) => {
      const s = samples[op][w.name]!;
      return [w.name, {
        mibps: r1(med[w.name]!),
        vsMinio: r2(med[w.name]! / med.minio!),
        vsMinioSse: r2(med[w.name]! / med.minio_sse!),
        middleCpuMsPerMib: w.pid ? r2(median(s.middleCpuMsPerMib)) : null,
        machineCpuMsPerMib: r2(median(s.machineCpuMsPerMib)),
      }];
    }))];
  }),
);
for (const op of ['put', 'get'] as const) {
  for (const [name, r] of Object.entries(result[op]!)) {
    console.log(`${op} ${name.padEnd(17)} ${String(r.mibps).padStart(6)} MiB/s  ${r.vsMinio.toFixed(2)}x minio  ${r.vsMinioSse.toFixed(2)}x sse  middle ${r.middleCpuMsPerMib ?? '-'} CPU-ms/MiB  machine ${r.machineCpuMsPerMib}`);
  }
}
const out = path.resolve(args.out ?? path.join(import.meta.dirname, 'results', 'floor.json'));
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify({ at: new Date().toISOString(), objectBytes: SIZE, rounds: ROUNDS, result }, null, 2) + '\n');

await gw.stop();
for (const r of Object.values(relays)) r.child.kill();
await minio.stop();
await sse.stop();
process.exit(0);
