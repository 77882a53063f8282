/**
 * What the second hop costs a small GET, apart from what lakecrypt does in it. One MinIO, one client (the
 * benchmark's own), sequential 4 KiB GETs through:
 *   minio        direct;
 *   tcp-relay    a process that only pipes sockets (bench/lib/relay.ts tcp): the floor of any extra process;
 *   null-gateway node:http server + the gateway's own backend client, no auth, no crypto (relay.ts http): the
 *                floor of a Node gateway built on this I/O stack;
 *   lakecrypt    the gateway (SigV4 check, header cache, key checks, decryption).
 * Rounds interleaved, the starting target rotated each round so no target always runs first; per round p50/p99
 * and the middle process's CPU per GET (from /proc). Reports medians over rounds.
 *
 *   node --import tsx bench/hop.ts [--rounds 16] [--gets 300] [--out FILE]   -> bench/results/hop.json
 * (rounds: a multiple of 4, so every target starts a round equally often)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { bodyBuffer, KiB, makeClient, type Endpoint } from './lib/s3.ts';
import { median, percentile } from './lib/stats.ts';
import { cpuSecondsOf, machineBusySeconds, startGatewayProcess, startPlainMinio, startRelay } from './lib/targets.ts';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '16' }, gets: { type: 'string', default: '300' }, out: { type: 'string' } } });
const ROUNDS = Number(args.rounds);
const GETS = Number(args.gets);
const SIZE = 4 * KiB;
const CONTENT = bodyBuffer(SIZE);

// a SIGTERM (the smoke test's time-out) still runs the exit hooks that kill MinIO, the relays and the gateway
process.once('SIGTERM', () => process.exit(143));
const minio = await startPlainMinio();
const be: Endpoint = { endpoint: minio.endpoint, accessKey: minio.accessKey, secretKey: minio.secretKey };
const tcp = await startRelay('tcp', be);
const nul = await startRelay('http', be);
const gw = await startGatewayProcess(be);

const direct = makeClient(be);
await direct.send(new CreateBucketCommand({ Bucket: 'hopdirect' }));
await direct.send(new PutObjectCommand({ Bucket: 'hopdirect', Key: 'o', Body: CONTENT }));
const viaGateway = makeClient(gw);
await viaGateway.send(new CreateBucketCommand({ Bucket: 'hopgw' }));
await viaGateway.send(new PutObjectCommand({ Bucket: 'hopgw', Key: 'o', Body: CONTENT }));

interface Way {
  name: string;
  client: S3Client;
  bucket: string;
  /** The process in the middle, whose CPU is counted (none for direct). */
  pid?: number;
}
const ways: Way[] = [
  { name: 'minio', client: direct, bucket: 'hopdirect' },
  { name: 'tcp-relay', client: makeClient({ ...be, endpoint: tcp.endpoint }), bucket: 'hopdirect', pid: tcp.child.pid },
  { name: 'null-gateway', client: makeClient({ ...be, endpoint: nul.endpoint }), bucket: 'hopdirect', pid: nul.child.pid },
  { name: 'lakecrypt', client: viaGateway, bucket: 'hopgw', pid: gw.pid },
];

const samples: Record<string, { p50: number[]; p99: number[]; middleCpuMs: number[]; machineCpuMs: number[] }> = {};
for (const w of ways) samples[w.name] = { p50: [], p99: [], middleCpuMs: [], machineCpuMs: [] };

async function measure(w: Way): Promise<void> {
  const get = async () => {
    const o = await w.client.send(new GetObjectCommand({ Bucket: w.bucket, Key: 'o' }));
    const got = Buffer.from(await o.Body!.transformToByteArray());
    if (!got.equals(CONTENT)) throw new Error(`${w.name}: ${got.length} bytes that differ from the object's ${SIZE}`);
  };
  for (let i = 0; i < 20; i++) await get(); // warm the connections and caches
  const lat: number[] = [];
  const cpu0 = w.pid ? cpuSecondsOf(w.pid) : 0;
  const busy0 = machineBusySeconds();
  for (let i = 0; i < GETS; i++) {
    const t = performance.now();
    await get();
    lat.push(performance.now() - t);
  }
  const s = samples[w.name]!;
  s.p50.push(percentile(lat, 50));
  s.p99.push(percentile(lat, 99));
  if (w.pid) s.middleCpuMs.push(((cpuSecondsOf(w.pid) - cpu0) * 1000) / GETS);
  s.machineCpuMs.push(((machineBusySeconds() - busy0) * 1000) / GETS);
}

for (let round = 0; round < ROUNDS; round++) {
  for (let k = 0; k < ways.length; k++) await measure(ways[(round + k) % ways.length]!);
}

const r2 = (x: number) => Math.round(x * 100) / 100;
// /proc counts CPU in 10 ms ticks: about 10 ticks a round for the relays, so one decimal is what it resolves
const r1 = (x: number) => Math.round(x * 10) / 10;
const result = Object.fromEntries(
  ways.map((w) => {
    const s = samples[w.name]!;
    return [w.name, { p50Ms: r2(median(s.p50)), p99Ms: r2(median(s.p99)), middleCpuMsPerGet: w.pid ? r1(median(s.middleCpuMs)) : null, machineCpuMsPerGet: r1(median(s.machineCpuMs)) }];
  }),
);
const base = result.minio!.p50Ms;
for (const [name, r] of Object.entries(result)) {
  console.log(`${name.padEnd(13)} p50 ${r.p50Ms.toFixed(2)} ms (+${(r.p50Ms - base).toFixed(2)})  p99 ${r.p99Ms.toFixed(2)}  middle CPU ${r.middleCpuMsPerGet ?? '-'} ms/GET  machine ${r.machineCpuMsPerGet} CPU-ms/GET`);
}
const out = path.resolve(args.out ?? path.join(import.meta.dirname, 'results', 'hop.json'));
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify({ at: new Date().toISOString(), objectBytes: SIZE, rounds: ROUNDS, getsPerRound: GETS, result }, null, 2) + '\n');

await gw.stop();
tcp.child.kill();
nul.child.kill();
await minio.stop();
process.exit(0);
