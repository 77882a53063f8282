/**
 * A/B of two versions of the gateway on one MinIO: this checkout (B) and another one (A, e.g. made with
 * `git worktree add /tmp/old <rev> && ln -s $PWD/node_modules /tmp/old/node_modules`), or of two settings of
 * this checkout (no --other; --a-env / --b-env set environment variables, e.g. LAKECRYPT_CRYPTO_THREADS=1,
 * for one side). Each round runs one
 * scenario of the full benchmark (bench/lib/scenarios.ts, its sizes) on MinIO direct, then A, then B (or B then
 * A with --order ba: whichever goes second after a large transfer pays for MinIO's background work, so run both
 * orders); medians over rounds, each gateway's CPU from its own process_cpu_seconds_total (microseconds, less the
 * scrapes' cost; /proc's 10 ms ticks before 2026-12-03).
 *
 *   node --import tsx bench/ab.ts [--other /tmp/old] [--a-env K=V,K=V] [--b-env K=V] [--b-node-args --flag,--flag] [--scenario get-large|put-large|put-sdk-stream|put-sdk-stream-agent|put-signed-trailer|get-large-c4|put-large-c4|get-small|put-small|multipart|get-multipart|range] [--rounds 6] [--order ab|ba]
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { FULL, gatewayCpuMeter, getLarge, getMultipart, multipart, putLarge, putSdkStream, putSignedTrailer, ranges, setupRangeObjects, small, smallPuts, type Figures } from './lib/scenarios.ts';
import { KiB, MiB, type Endpoint } from './lib/s3.ts';
import { makeTarget, startGatewayProcess, startPlainMinio, type Gateway, type Target } from './lib/targets.ts';

const argv = process.argv.slice(2);
const opt = (f: string, d?: string) => {
  const i = argv.indexOf(f);
  return i >= 0 ? argv[i + 1]! : d;
};
const other = opt('--other', path.resolve(import.meta.dirname, '..'))!;
const envOf = (f: string): Record<string, string> =>
  Object.fromEntries(
    (opt(f) ?? '').split(',').filter(Boolean).map((kv) => {
      const i = kv.indexOf('=');
      if (i <= 0) throw new Error(`${f}: expected NAME=VALUE[,NAME=VALUE...] (values without commas), got ${kv}`);
      return [kv.slice(0, i), kv.slice(i + 1)];
    }),
  );
const scenario = opt('--scenario', 'get-large')!;
const rounds = Number(opt('--rounds', '6'));
const order = opt('--order', 'ab');

const { startGatewayProcess: startOther } = (await import(pathToFileURL(path.resolve(other, 'bench/lib/targets.ts')).href)) as {
  startGatewayProcess: (b: Endpoint, opts?: { env?: Record<string, string> }) => Promise<Gateway>;
};
const minio = await startPlainMinio();
const be: Endpoint = { endpoint: minio.endpoint, accessKey: minio.accessKey, secretKey: minio.secretKey };
const gwA = await startOther(be, { env: envOf('--a-env') });
const gwB = await startGatewayProcess(be, { env: envOf('--b-env'), nodeArgs: (opt('--b-node-args') ?? '').split(',').filter(Boolean) });

// the full benchmark's scenarios and sizes (bench/lib/scenarios.ts), on MinIO direct, A and B
const s = FULL;
const sides: { label: string; t: Target }[] = [
  { label: 'minio', t: await makeTarget('minio', be, 0) },
  { label: 'A', t: await makeTarget('lakecrypt', gwA, gwA.pid) },
  { label: 'B', t: await makeTarget('lakecrypt', gwB, gwB.pid) },
];
if (order === 'ba') sides.splice(1, 2, sides[2]!, sides[1]!);

/** The scenario's figures, and the work it did for the gateway's CPU figure (MiB, or requests). */
const run: Record<string, { setup?: (t: Target) => Promise<unknown>; measure: (t: Target) => Promise<Figures>; work: number; unit: string }> = {
  'get-large': { setup: (t) => putLarge(t, s, 4), measure: (t) => getLarge(t, s, 1), work: s.large / MiB, unit: 'MiB' },
  'put-large': { measure: (t) => putLarge(t, s, 1), work: s.large / MiB, unit: 'MiB' },
  'put-sdk-stream': { measure: (t) => putSdkStream(t, s), work: s.large / MiB, unit: 'MiB' },
  'put-sdk-stream-agent': { measure: (t) => putSdkStream(t, s, true), work: s.large / MiB, unit: 'MiB' },
  'put-signed-trailer': { measure: (t) => putSignedTrailer(t, s), work: s.large / MiB, unit: 'MiB' },
  'get-large-c4': { setup: (t) => putLarge(t, s, 4), measure: (t) => getLarge(t, s, 4), work: (4 * s.large) / MiB, unit: 'MiB' },
  'put-large-c4': { measure: (t) => putLarge(t, s, 4), work: (4 * s.large) / MiB, unit: 'MiB' },
  'get-small': { measure: (t) => small(t, s, 4 * KiB), work: 3 * (s.smallLatencyOps + s.smallThroughputOps), unit: 'request' },
  'put-small': { measure: (t) => smallPuts(t, s), work: s.smallLatencyOps, unit: 'request' },
  multipart: { measure: (t) => multipart(t, s), work: (4 * s.mpuPart) / MiB, unit: 'MiB' },
  'get-multipart': { setup: (t) => multipart(t, s), measure: (t) => getMultipart(t, s), work: (4 * s.mpuPart) / MiB, unit: 'MiB' },
  range: { setup: (t) => setupRangeObjects(t, s), measure: (t) => ranges(t, s), work: 2 * s.rangeReads, unit: 'range read (incl. the warm-up reads)' },
};
const sc = run[scenario];
if (!sc) throw new Error(`--scenario: one of ${Object.keys(run).join(', ')}`);
for (const { t } of sides) await sc.setup?.(t);
// each gateway's CPU from its own microsecond counter, less the scrapes' (scenarios.ts gatewayCpuMeter)
const meters = new Map([['A', await gatewayCpuMeter(gwA.adminUrl)], ['B', await gatewayCpuMeter(gwB.adminUrl)]]);

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const results = new Map<string, Record<string, number[]>>();
for (let round = 0; round < rounds; round++) {
  for (const { label, t } of sides) {
    const meter = meters.get(label);
    const c0 = meter ? await meter.read() : 0;
    const figures = await sc.measure(t);
    const r = results.get(label) ?? {};
    for (const [k, v] of Object.entries(figures)) (r[k] ??= []).push(v);
    if (meter) (r[`gateway CPU-ms per ${sc.unit}`] ??= []).push((((await meter.read()) - c0) * 1000) / sc.work);
    results.set(label, r);
  }
}
console.log(`${scenario}, ${rounds} rounds, order minio ${sides.slice(1).map((x) => x.label).join(' ')}; medians (A = ${other} ${JSON.stringify(envOf('--a-env'))}, B = this checkout ${JSON.stringify(envOf('--b-env'))}):`);
for (const [label, r] of results) console.log(`  ${label.padEnd(6)} ${Object.entries(r).map(([k, v]) => `${k} ${median(v).toFixed(2)}`).join('  ')}`);
await gwA.stop();
await gwB.stop();
await minio.stop();
process.exit(0);
