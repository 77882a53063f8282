/**
 * A/B of two versions of the gateway on one MinIO: this checkout (B) and another one (A, e.g. made with
 * `git worktree add /tmp/old <rev> && ln -s $PWD/node_modules /tmp/old/node_modules`). Each round runs the
 * scenario on MinIO direct, then A, then B (or B then A with --order ba: whichever goes second after a large
 * transfer pays for MinIO's background work, so run both orders); medians over rounds, gateway CPU from /proc.
 *
 *   node --import tsx bench/ab.ts --other /tmp/old [--scenario get-large|put-large|get-small|range] [--rounds 6] [--order ab|ba]
 */
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { bodyBuffer, getDrain, makeClient, MiB, putStream, type Endpoint } from './lib/s3.ts';
import { cpuSecondsOf, startGatewayProcess, startPlainMinio, type Gateway } from './lib/targets.ts';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';

const argv = process.argv.slice(2);
const opt = (f: string, d?: string) => {
  const i = argv.indexOf(f);
  return i >= 0 ? argv[i + 1]! : d;
};
const other = opt('--other');
if (!other) throw new Error('--other DIR (a checkout of the version to compare with) is required');
const scenario = opt('--scenario', 'get-large')!;
const rounds = Number(opt('--rounds', '6'));
const order = opt('--order', 'ab');

const { startGatewayProcess: startOther } = (await import(pathToFileURL(path.resolve(other, 'bench/lib/targets.ts')).href)) as {
  startGatewayProcess: (b: Endpoint) => Promise<Gateway>;
};
const minio = await startPlainMinio();
const be: Endpoint = { endpoint: minio.endpoint, accessKey: minio.accessKey, secretKey: minio.secretKey };
const gwA = await startOther(be);
const gwB = await startGatewayProcess(be);

interface Side {
  name: string;
  client: S3Client;
  bucket: string;
  pid: number;
}
const sides: Side[] = [
  { name: 'minio', client: makeClient(be), bucket: 'ab-direct', pid: 0 },
  { name: 'A', client: makeClient(gwA), bucket: 'ab-a', pid: gwA.pid },
  { name: 'B', client: makeClient(gwB), bucket: 'ab-b', pid: gwB.pid },
];
if (order === 'ba') sides.splice(1, 2, sides[2]!, sides[1]!);

const LARGE = 256 * MiB;
const SMALL_RANGE = 64 * MiB;
const HUGE_RANGE = 4096 * MiB;
for (const s of sides) {
  await s.client.send(new CreateBucketCommand({ Bucket: s.bucket })).catch(() => {});
  if (scenario === 'get-large') await putStream(s.client, s.bucket, 'large', LARGE);
  if (scenario === 'get-small') for (let k = 0; k < 10; k++) await s.client.send(new PutObjectCommand({ Bucket: s.bucket, Key: `s${k}`, Body: bodyBuffer(4096, k) }));
  if (scenario === 'range') {
    await putStream(s.client, s.bucket, 'range-small', SMALL_RANGE);
    await putStream(s.client, s.bucket, 'range-huge', HUGE_RANGE);
  }
}

/** One measurement: figures (name -> value) and the units of work done (for CPU per unit). */
async function once(s: Side, round: number): Promise<{ figures: Record<string, number>; units: number }> {
  const t0 = performance.now();
  if (scenario === 'get-large' || scenario === 'put-large') {
    if (scenario === 'get-large') await getDrain(s.client, s.bucket, 'large');
    else await putStream(s.client, s.bucket, `put-${round}`, LARGE);
    return { figures: { 'MiB/s': LARGE / MiB / ((performance.now() - t0) / 1000) }, units: LARGE / MiB };
  }
  if (scenario === 'get-small') {
    const lat: number[] = [];
    for (let i = 0; i < 300; i++) {
      const t = performance.now();
      if ((await getDrain(s.client, s.bucket, `s${i % 10}`)) !== 4096) throw new Error(`${s.name}: short GET`);
      lat.push(performance.now() - t);
    }
    return { figures: { 'p50 ms': median(lat) }, units: 300 };
  }
  const figures: Record<string, number> = {};
  for (const [label, key, size] of [['small', 'range-small', SMALL_RANGE], ['huge', 'range-huge', HUGE_RANGE]] as const) {
    const lat: number[] = [];
    for (let i = 0; i < 40; i++) {
      const a = Math.floor(Math.random() * (size - MiB));
      const t = performance.now();
      await getDrain(s.client, s.bucket, key, `bytes=${a}-${a + MiB - 1}`);
      lat.push(performance.now() - t);
    }
    figures[`${label} p50 ms`] = median(lat);
  }
  return { figures, units: 80 };
}

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)]!;
}

const results = new Map<string, Record<string, number[]>>();
for (let round = 0; round < rounds; round++) {
  for (const s of sides) {
    const c0 = s.pid ? cpuSecondsOf(s.pid) : 0;
    const { figures, units } = await once(s, round);
    const r = results.get(s.name) ?? {};
    for (const [k, v] of Object.entries(figures)) (r[k] ??= []).push(v);
    if (s.pid) (r[`gateway CPU-ms per ${scenario.endsWith('large') ? 'MiB' : 'request'}`] ??= []).push(((cpuSecondsOf(s.pid) - c0) * 1000) / units);
    results.set(s.name, r);
  }
}
console.log(`${scenario}, ${rounds} rounds, order minio ${sides.slice(1).map((s) => s.name).join(' ')}; medians (A = ${other}, B = this checkout):`);
for (const [name, r] of results) console.log(`  ${name.padEnd(6)} ${Object.entries(r).map(([k, v]) => `${k} ${median(v).toFixed(2)}`).join('  ')}`);
await gwA.stop();
await gwB.stop();
await minio.stop();
process.exit(0);
