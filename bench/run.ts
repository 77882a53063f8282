/**
 * lakecrypt end-to-end benchmark: lakecrypt vs plain MinIO vs MinIO with its own SSE, on loopback.
 *
 *   npm run bench               full run (256 MiB objects, 4 GiB range object, 5 GiB RSS upload, 3 rounds)
 *   npm run bench -- --quick    short run (CI runs it via test/bench/quick.test.ts to keep it working)
 *   options: --out DIR (default bench/results), --rounds N, --profile (always profile the gateway),
 *            --no-profile, --no-warp, --render-only (re-render latest.md and the SVGs from DIR/latest.json)
 *
 * Writes DIR/latest.json, DIR/latest.md, DIR/{throughput,latency,ops}.svg (and DIR/profile.md when profiling).
 */
import { cpus, availableParallelism, loadavg, totalmem, release, tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { describeTwoPartMiss, evaluateTargets, GB_IN_MIB, writeReport, type Row, type Col } from './lib/report.ts';
import { FULL, getMultipart, QUICK, deleteKey, getLarge, multipart, putLarge, ranges, scrape, gatewayCpuMeter, setupRangeObjects, small, type Figures, type Sizes } from './lib/scenarios.ts';
import { getDrain, KiB, MiB, putStream } from './lib/s3.ts';
import { median, runPool, sleep } from './lib/stats.ts';
import {
  cpuSecondsOf, machineBusySeconds, makeTarget, memOf, probeSse, REPO, rssSampler, startGatewayProcess, startPlainMinio, startSseMinio, TARGETS,
  type Gateway, type Target, type TargetName,
} from './lib/targets.ts';
import { cryptoFigures, mcFigures, rewrapFigures, warpBinary, warpFigures } from './lib/tools.ts';
import { profileMarkdown, summariseProfile } from './lib/profile.ts';
import { STARTUP_SCENARIOS, startupRows } from './lib/startup-figures.ts';

const argv = process.argv.slice(2);
const flag = (f: string) => argv.includes(f);
const opt = (f: string) => {
  const i = argv.indexOf(f);
  return i >= 0 ? argv[i + 1] : undefined;
};
const quick = flag('--quick');
const sizes: Sizes = { ...(quick ? QUICK : FULL) };
if (opt('--rounds')) sizes.rounds = Number(opt('--rounds'));
const outDir = path.resolve(opt('--out') ?? path.join(REPO, 'bench', 'results'));
mkdirSync(outDir, { recursive: true });

if (flag('--render-only')) {
  // re-render latest.md and the charts from DIR/latest.json (after a change to the report code)
  const { readFileSync } = await import('node:fs');
  const prev = JSON.parse(readFileSync(path.join(outDir, 'latest.json'), 'utf8')) as Parameters<typeof writeReport>[1];
  for (const r of prev.results) describeTwoPartMiss(r);
  writeReport(outDir, prev);
  process.exit(0);
}

const log = (s: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
const notes: string[] = [];
const t0 = Date.now();
const loadBefore = loadavg()[0];

// scenario -> target -> per-round values
const samples = new Map<string, Partial<Record<TargetName, number[]>>>();
const units = new Map<string, string>();
const add = (t: TargetName, f: Figures) => {
  for (const [k, v] of Object.entries(f)) {
    const m = samples.get(k) ?? {};
    (m[t] ??= []).push(v);
    samples.set(k, m);
  }
};
let unwrapsAllowedPer1000: number | null = null;
const unitOf = (s: string) => (s.startsWith('gateway-cpu-ms-per-range') ? 'CPU ms' : s.endsWith('-ms') ? 'ms' : s.endsWith('-ops') ? 'ops/s' : 'MiB/s');

/** Write out dirty page cache (untimed) so the next measurement does not pay for earlier writes. */
function settle(): void {
  execFileSync('sync');
}

function note(msg: string): void {
  log(msg);
  if (!notes.includes(msg)) notes.push(msg);
}
const smallError = (t: Target) => (what: string, e: Error) => note(`${what} on ${t.name}: no figure, a request failed: ${e.message.split('\n')[0]}`);

async function guarded(what: string, t: TargetName, fn: () => Promise<Figures>): Promise<void> {
  try {
    add(t, await fn());
  } catch (e) {
    const msg = `${what} on ${t} failed: ${(e as Error).message.split('\n')[0]}`;
    log(msg);
    if (!notes.includes(msg)) notes.push(msg);
  }
}

// A socket error on a streamed request can surface as an unhandled 'error' event in the SDK: note it, keep going.
process.on('uncaughtException', (e) => note(`uncaught error (run continues): ${e.message.split('\n')[0]}`));

log(`starting (${quick ? 'quick' : 'full'}; ${sizes.rounds} round(s))`);
const minio = await startPlainMinio();
const minioSse = await startSseMinio();
let gw: Gateway = await startGatewayProcess(minio);
const stopAll: (() => Promise<void>)[] = [() => gw.stop(), () => minio.stop(), () => minioSse.stop()];
const byName: Record<TargetName, Target> = {
  lakecrypt: await makeTarget('lakecrypt', gw, gw.pid),
  minio: await makeTarget('minio', minio, 0),
  minio_sse: await makeTarget('minio_sse', minioSse, 0),
};
const targets = TARGETS.map((n) => byName[n]);
// the gateway's CPU for the rows issue #22 names, to the microsecond (scenarios.ts gatewayCpuMeter)
const gwCpu = await gatewayCpuMeter(gw.adminUrl);
notes.push(`gateway-cpu-*: the gateway's process_cpu_seconds_total (getrusage, every thread, to the microsecond; /proc's 10 ms ticks before 2026-12-03), less one scrape's cost per reading (${gwCpu.scrapeMs.toFixed(2)} CPU-ms, the least of six back-to-back pairs).`);

try {
  // --- what each target really does to the bytes
  const sse = await probeSse(byName.minio_sse);
  notes.push(sse ? `minio_sse: HEAD of a new object shows x-amz-server-side-encryption: ${sse} (MINIO_KMS_SECRET_KEY static key, MINIO_KMS_AUTO_ENCRYPTION=on, bucket default encryption SSE-S3).`
    : 'minio_sse: WARNING HEAD shows no x-amz-server-side-encryption: the minio_sse column may be unencrypted.');
  const plainSse = await probeSse(byName.minio);
  if (plainSse) notes.push(`minio: unexpectedly reports SSE ${plainSse}.`);
  await probeSse(byName.lakecrypt);
  const raw = await byName.minio.client.send(new GetObjectCommand({ Bucket: byName.lakecrypt.bucket, Key: 'sse-probe' }));
  const rawBytes = Buffer.from(await raw.Body!.transformToByteArray());
  notes.push(rawBytes.includes(Buffer.from('probe'))
    ? 'lakecrypt: WARNING the backend object contains the plaintext.'
    : `lakecrypt: the backend object of a 5-byte PUT is ${rawBytes.length} bytes of ciphertext (plaintext not found in it); metadata lc-oid=${raw.Metadata?.['lc-oid'] ? 'set' : 'missing'}.`);

  // --- warm-up (JIT, connections) and objects for the range reads
  for (const t of targets) {
    log(`warm-up + setup on ${t.name}`);
    await runPool(40, 4, async (i) => {
      await putStream(t.client, t.bucket, `warm-${i % 8}`, 64 * KiB);
      await getDrain(t.client, t.bucket, `warm-${i % 8}`);
    });
    await putStream(t.client, t.bucket, 'warm-large', 16 * MiB);
    await getDrain(t.client, t.bucket, 'warm-large');
    await setupRangeObjects(t, sizes);
  }

  // --- interleaved rounds: every scenario runs on A, B, C before the next scenario
  const scenarios: [string, (t: Target) => Promise<Figures>][] = [
    ['put-large-c1', (t) => putLarge(t, sizes, 1)],
    ['put-large-c4', (t) => putLarge(t, sizes, 4)],
    ['get-large-c1', (t) => getLarge(t, sizes, 1)],
    ['get-large-c4', (t) => getLarge(t, sizes, 4)],
    ['small-4k', (t) => small(t, sizes, 4 * KiB, smallError(t))],
    ['small-64k', (t) => small(t, sizes, 64 * KiB, smallError(t))],
    ['range', (t) => ranges(t, sizes)],
    ['multipart', (t) => multipart(t, sizes)],
    // the object multipart just wrote, read whole (a multipart object: one native pump per part)
    ['multipart-get', (t) => getMultipart(t, sizes)],
  ];
  // Round r starts with target r (A B C, B C A, C A B, ...): whoever runs right after a large transfer shares the
  // machine with its after-effects (the backend's background work), and with a fixed order that was always the
  // same target. Each measurement also starts with the page cache's dirty data written out (sync, untimed), so no
  // target pays for the disk writes another one's PUTs left behind.
  for (let round = 1; round <= sizes.rounds; round++) {
    for (const [name, fn] of scenarios) {
      for (let k = 0; k < targets.length; k++) {
        const t = targets[(round - 1 + k) % targets.length]!;
        log(`round ${round}/${sizes.rounds} ${name} on ${t.name}`);
        settle();
        // the gateway process's own CPU per MiB beside each large-transfer throughput (issue #22's rows)
        const large = /^(put|get)-large-c(\d+)$/.exec(name);
        const moved = large ? Number(large[2]) * sizes.large : name.startsWith('multipart') ? 4 * sizes.mpuPart : 0;
        const g0 = moved && t.name === 'lakecrypt' ? await gwCpu.read() : NaN;
        const m0 = machineBusySeconds();
        const w0 = performance.now();
        await guarded(name, t.name, async () => {
          const f = await fn(t);
          if (name === 'get-large-c4' && Object.keys(f).length > 0) {
            // with four transfers at once the two cores are close to busy whoever serves them (client, MinIO and
            // gateway share them), so what each target costs the whole machine per MiB bounds its throughput here
            const machine = machineBusySeconds() - m0;
            units.set('cpu-ms-per-mib-get-large-c4', 'CPU ms/MiB');
            units.set('machine-busy-pct-get-large-c4', `% of ${availableParallelism()} cores`);
            f['cpu-ms-per-mib-get-large-c4'] = (machine * 1000) / (moved / MiB);
            f['machine-busy-pct-get-large-c4'] = (machine / ((performance.now() - w0) / 1000) / availableParallelism()) * 100;
          }
          if (moved && t.name === 'lakecrypt' && Object.keys(f).length > 0) {
            const mib = moved / MiB;
            const row = `gateway-cpu-ms-per-mib-${name}`;
            units.set(row, 'CPU ms/MiB');
            return { ...f, [row]: (((await gwCpu.read()) - g0) * 1000) / mib };
          }
          return f;
        });
      }
    }
  }

  // --- key unwraps per 1,000 GETs of hot objects (lakecrypt only)
  {
    const lc = byName.lakecrypt;
    const UNWRAPS = 'lakecrypt_key_unwraps_total';
    const m0 = await scrape(gw.adminUrl);
    if (!m0.has(UNWRAPS)) {
      notes.push(`key-unwraps-per-1000-gets: ${UNWRAPS} is not exposed on the admin /metrics, so no figure (not wired yet).`);
    } else {
      for (let i = 0; i < 10; i++) await putStream(lc.client, lc.bucket, `hot-${i}`, 4 * KiB);
      await sleep(700); // main.ts mirrors the cache counters into Prometheus every 500 ms
      const a = await scrape(gw.adminUrl);
      const w0 = Date.now();
      const cpu0 = await gwCpu.read();
      await runPool(sizes.hotGets, 8, async (i) => void (await getDrain(lc.client, lc.bucket, `hot-${i % 10}`)));
      const cpuMsPerGet = (((await gwCpu.read()) - cpu0) * 1000) / sizes.hotGets;
      const windowMs = Date.now() - w0;
      add('lakecrypt', { 'gateway-cpu-ms-per-get-4k': cpuMsPerGet });
      units.set('gateway-cpu-ms-per-get-4k', 'CPU ms');
      await sleep(700);
      const b = await scrape(gw.adminUrl);
      const d = (k: string) => (b.get(k) ?? 0) - (a.get(k) ?? 0);
      const per1000 = (d(UNWRAPS) * 1000) / sizes.hotGets;
      const ttl = 60_000; // LAKECRYPT_KEY_CACHE_TTL_MS default (not overridden here)
      const kekVersions = 1; // one bucket = one dataset, one active KEK version
      unwrapsAllowedPer1000 = (kekVersions * Math.ceil(windowMs / ttl) * 1000) / sizes.hotGets;
      add('lakecrypt', { 'key-unwraps-per-1000-gets': per1000 });
      units.set('key-unwraps-per-1000-gets', 'unwraps');
      notes.push(`key-unwraps-per-1000-gets: ${d(UNWRAPS)} unwraps over ${sizes.hotGets} GETs of 10 hot 4 KiB objects in ${windowMs} ms (cache TTL ${ttl} ms, ${kekVersions} KEK version); key cache hits +${d('lakecrypt_key_cache_hits_total')}, misses +${d('lakecrypt_key_cache_misses_total')}; unwraps since gateway start: ${b.get(UNWRAPS)}.`);
    }
  }

  // --- where the CPU goes in one large transfer, per process: client, MinIO and gateway share the 2 cores, so
  // the work each target costs per MiB, all processes together, is what bounds its throughput here
  {
    const serverPid: Record<TargetName, number | undefined> = { lakecrypt: minio.pid, minio: minio.pid, minio_sse: minioSse.pid };
    const mib = sizes.large / MiB;
    const split: string[] = [];
    for (const [label, run] of [
      ['get-large-c1', (t: Target) => getLarge(t, sizes, 1)],
      ['put-large-c1', (t: Target) => putLarge(t, sizes, 1)],
    ] as const) {
      for (const t of targets) {
        const sp = serverPid[t.name];
        settle();
        const m0 = machineBusySeconds();
        const c0 = process.cpuUsage();
        const s0 = sp ? cpuSecondsOf(sp) : NaN;
        const g0 = t.name === 'lakecrypt' ? await gwCpu.read() : 0;
        const w0 = performance.now();
        try {
          await run(t); // its throughput figure is not added to the rounds' medians
        } catch (e) {
          note(`cpu split ${label} on ${t.name}: no figure, ${(e as Error).message.split('\n')[0]}`);
          continue;
        }
        const wall = (performance.now() - w0) / 1000;
        const machine = machineBusySeconds() - m0;
        const cu = process.cpuUsage(c0);
        const client = (cu.user + cu.system) / 1e6;
        const server = sp ? cpuSecondsOf(sp) - s0 : NaN;
        const gateway = t.name === 'lakecrypt' ? (await gwCpu.read()) - g0 : 0;
        const perMib = (sec: number) => ((sec * 1000) / mib).toFixed(2);
        const pct = (sec: number) => `${Math.round((sec / wall) * 100)}%`;
        add(t.name, { [`cpu-ms-per-mib-${label}`]: (machine * 1000) / mib });
        units.set(`cpu-ms-per-mib-${label}`, 'CPU ms/MiB');
        split.push(
          `${label} on ${t.name}: ${(mib / wall).toFixed(0)} MiB/s, machine ${pct(machine)} busy of 200%; CPU-ms per MiB: client ${perMib(client)}, MinIO ${perMib(server)}` +
            (t.name === 'lakecrypt' ? `, gateway ${perMib(gateway)}` : '') +
            `, whole machine ${perMib(machine)}`,
        );
      }
    }
    notes.push(`cpu-ms-per-mib-*: one more ${sizes.large / MiB} MiB transfer per target after the rounds, CPU of each process from /proc (the bench client is this process: @aws-sdk/client-s3 on node:http) and of the whole machine from /proc/stat. ${split.join('; ')}.`);
  }

  // --- peak RSS of the gateway during a streamed upload (5 GiB; quick 512 MiB)
  {
    const lc = byName.lakecrypt;
    const before = memOf(gw.pid);
    const sampler = rssSampler(gw.pid, 100);
    const w0 = performance.now();
    const cpu0 = cpuSecondsOf(gw.pid);
    let ok = true;
    try {
      await putStream(lc.client, lc.bucket, 'rss-upload', sizes.rssUpload);
    } catch (e) {
      ok = false;
      notes.push(`rss-peak-mib-5gib-upload: null: the upload failed: ${(e as Error).message.split('\n')[0]}`);
    }
    const s = sampler.stop();
    const secs = (performance.now() - w0) / 1000;
    const cpuPerGiB = (cpuSecondsOf(gw.pid) - cpu0) / (sizes.rssUpload / 2 ** 30);
    if (ok) {
      add('lakecrypt', { 'gateway-cpu-s-per-gib-put': cpuPerGiB });
      units.set('gateway-cpu-s-per-gib-put', 'CPU s');
      add('lakecrypt', { 'rss-peak-mib-5gib-upload': s.peak });
      units.set('rss-peak-mib-5gib-upload', 'MiB');
      notes.push(`rss-peak-mib-5gib-upload: ${sizes.rssUpload / MiB} MiB single streamed PUT in ${secs.toFixed(1)} s (${(sizes.rssUpload / MiB / secs).toFixed(0)} MiB/s); VmRSS sampled every 100 ms (${s.samples} samples), before ${before?.rss.toFixed(0)} MiB, peak ${s.peak.toFixed(0)} MiB; VmHWM since gateway start ${s.hwm.toFixed(0)} MiB (includes the earlier scenarios).`);
    }
    await deleteKey(lc, 'rss-upload');
  }

  // --- independent client: mc (Go, minio-go; streaming-signed uploads over http)
  for (const t of targets) {
    log(`mc on ${t.name}`);
    const r = await mcFigures(t, sizes.mcSize);
    if (typeof r === 'string') notes.push(`mc-put-large, mc-get-large on ${t.name}: null: ${r}`);
    else {
      add(t.name, { 'mc-put-large': r.put, 'mc-get-large': r.get });
      if (t.name === 'lakecrypt') notes.push(`mc on lakecrypt: cp ${r.put.toFixed(0)} MiB/s, cat ${r.get.toFixed(0)} MiB/s; the gateway's CPU-ms per MiB: cp ${r.serverCpuMsPerMib.put.toFixed(2)}, cat ${r.serverCpuMsPerMib.get.toFixed(2)}`);
    }
  }

  // --- warp
  if (!flag('--no-warp')) {
    const w = warpBinary(!quick);
    if (!w.bin) {
      notes.push(`warp-mixed-MiBps: null: ${w.why}. The runner (bench/lib/tools.ts warpFigures/parseWarp) uses a warp binary from $WARP_BIN or the cache dir when present.`);
    } else {
      for (const t of targets) {
        log(`warp on ${t.name}`);
        const r = await warpFigures(w.bin, t, sizes.warpDuration);
        if (typeof r === 'string') notes.push(`warp-mixed-MiBps on ${t.name}: null: ${r}`);
        else add(t.name, { 'warp-mixed-MiBps': r.mibps, 'warp-mixed-ops': r.objps });
      }
    }
  } else {
    notes.push('warp-mixed-MiBps: null: skipped (--no-warp).');
  }
} catch (e) {
  for (const stop of stopAll) await stop().catch(() => undefined);
  throw e;
}

// --- rows
const rows: Row[] = [];
for (const [scenario, m] of samples) {
  const col = (c: Col) => (m[c] && m[c]!.length ? median(m[c]!) : null);
  rows.push({ scenario, unit: units.get(scenario) ?? unitOf(scenario), lakecrypt: col('lakecrypt'), minio: col('minio'), minio_sse: col('minio_sse') });
}
// The share of MinIO's c4 GET a gateway in the path can reach while the cores are busy: throughput there is about
// cores / whole-machine CPU per MiB for every target, so the ratio of those per-MiB costs bounds the ratio of speeds.
{
  const c4 = rows.find((r) => r.scenario === 'cpu-ms-per-mib-get-large-c4');
  const busy = rows.find((r) => r.scenario === 'machine-busy-pct-get-large-c4');
  if (c4?.minio && c4.lakecrypt) {
    rows.push({ scenario: 'machine-bound-x-get-large-c4', unit: 'x minio', lakecrypt: c4.minio / c4.lakecrypt, minio: null, minio_sse: null });
    notes.push(`machine-bound-x-get-large-c4: MinIO's whole-machine CPU per MiB over lakecrypt's in the get-large-c4 rounds (medians ${c4.minio.toFixed(2)} / ${c4.lakecrypt.toFixed(2)} CPU-ms; the machine ${busy?.minio?.toFixed(0)}% / ${busy?.lakecrypt?.toFixed(0)}% busy): while the cores are busy, about the share of MinIO's c4 GET throughput the path through a gateway can reach whatever the gateway does with its time; the 0.8x goal needs it at 0.8 or more. It bounds the speed only as far as the machine is busy in both.`);
  }
}
notes.unshift(
  `Medians over ${sizes.rounds} round(s); each round runs every scenario on lakecrypt, minio, minio_sse in turn, round r starting with the r-th of them (A B C, B C A, C A B) to cancel drift and position effects; dirty page cache written out (sync, untimed) before each measurement. Large objects ${sizes.large / MiB} MiB; small-object latencies from ${sizes.smallLatencyOps} sequential requests per round, ops/s from ${sizes.smallThroughputOps} requests at concurrency ${sizes.smallConcurrency}; range reads: ${sizes.rangeReads} x 1 MiB at random byte offsets in ${sizes.rangeSmall / MiB} MiB and ${sizes.rangeHuge / MiB} MiB objects (p50), each object read whole once just before its range reads (page cache warm alike for every target); multipart: 4 parts of ${sizes.mpuPart / MiB} MiB uploaded in parallel (create to complete).`,
  'Client: one @aws-sdk/client-s3 (same version and settings for every target), keep-alive agent, requestChecksumCalculation/responseChecksumValidation WHEN_REQUIRED so the client computes no CRC over the payload (streamed bodies go as UNSIGNED-PAYLOAD; small Buffer bodies are SHA-256 signed by the SDK for every target alike).',
  `Everything runs on one ${availableParallelism()}-core machine over loopback: client, gateway and MinIO compete for the same cores, with whatever else runs on the machine (load avg 1 min: ${loadBefore.toFixed(2)} at start). Treat the figures as relative, not absolute.`,
  'gateway-cpu-*: CPU time (user+system, all threads) the gateway process spent per MiB of each large-transfer round, per 4 KiB GET (during the hot-GET phase) — both from its own process_cpu_seconds_total, see below — and per GiB of streamed PUT (during the RSS upload, from /proc/<pid>/stat): steadier than wall time, but on this VM the host\'s load inflates CPU time too (the same code measured up to 2x apart in different runs).',
  'gateway-cpu-ms-per-range-1mib-<object>: the gateway process\'s CPU time over the timed 1 MiB range reads of that object divided by their number (median over rounds).',
  'gateway-cpu-ms-per-mib-<scenario>: the gateway process\'s CPU time during each round of that large-transfer scenario divided by the MiB it moved (median over rounds), beside the scenario\'s throughput; issue #22 sets 2.0 CPU ms/MiB (the closest Go peer\'s figure) as the goal, and c4 not worse than c1.',
  'lakecrypt runs as its own process (the compiled build, node --max-semi-space-size=4 --min-semi-space-size=4 --interrupt-budget=16384 --expose-gc dist/src/main.js as every launcher starts it, LAKECRYPT_BACKEND=s3 on the plain MinIO, access log off, log level warn, other settings default); its column includes a full second HTTP hop to MinIO.',
);

// --- crypto pipeline (bench/crypto.ts) beside openssl speed
{
  const c = cryptoFigures(!quick);
  if (typeof c === 'string') {
    notes.push(`crypto-pipeline-encrypt, crypto-pipeline-decrypt: null: ${c}.`);
    for (const s of ['crypto-pipeline-encrypt', 'crypto-pipeline-decrypt']) rows.push({ scenario: s, unit: 'MiB/s', lakecrypt: null, minio: null, minio_sse: null });
  } else {
    rows.push({ scenario: 'crypto-pipeline-encrypt', unit: 'MiB/s', lakecrypt: c.encryptBest, minio: null, minio_sse: null });
    rows.push({ scenario: 'crypto-pipeline-decrypt', unit: 'MiB/s', lakecrypt: c.decryptBest, minio: null, minio_sse: null });
    rows.push({ scenario: 'crypto-pipeline-encrypt-2t', unit: 'MiB/s', lakecrypt: c.encrypt2t, minio: null, minio_sse: null });
    rows.push({ scenario: 'crypto-pipeline-decrypt-2t', unit: 'MiB/s', lakecrypt: c.decrypt2t, minio: null, minio_sse: null });
    rows.push({ scenario: 'crypto-pipeline-encrypt-inline', unit: 'MiB/s', lakecrypt: c.encryptInline, minio: null, minio_sse: null });
    rows.push({ scenario: 'crypto-pipeline-decrypt-inline', unit: 'MiB/s', lakecrypt: c.decryptInline, minio: null, minio_sse: null });
    rows.push({ scenario: 'openssl-speed-aes-256-gcm-16k', unit: 'MiB/s', lakecrypt: c.openssl16k, minio: null, minio_sse: null });
    notes.push(`crypto-pipeline-*: from ${c.source}, not re-measured here (512 MiB encrypt / 256 MiB decrypt through the stream path). crypto-pipeline-encrypt/-decrypt = the best configuration using at most 2 threads (encrypt: ${c.encryptBestConfig}, decrypt: ${c.decryptBestConfig}); -2t = worker pool with 2 threads; -inline = the default (no pool, main thread); openssl-speed-aes-256-gcm-16k is \`openssl speed -evp aes-256-gcm\` at 16 KiB blocks on one core, the ceiling for comparison. 1 GB/s = ${GB_IN_MIB.toFixed(1)} MiB/s.`);
  }
}

// --- re-wrap (bench/rewrap.ts, another engineer's)
{
  const r = rewrapFigures();
  if (typeof r === 'string') notes.push(`rewrap-headers-per-s, rewrap-data-bytes-read: null: ${r}.`);
  else notes.push(`rewrap-*: from ${r.source}.`);
  rows.push({ scenario: 'rewrap-headers-per-s', unit: 'headers/s', lakecrypt: typeof r === 'string' ? null : r.headersPerS, minio: null, minio_sse: null });
  rows.push({ scenario: 'rewrap-data-bytes-read', unit: 'bytes', lakecrypt: typeof r === 'string' ? null : r.dataBytesRead, minio: null, minio_sse: null });
}
// --- gateway start-up and the CLI's answer time (bench/startup.ts), run when missing on a full run
{
  const file = path.join(REPO, 'bench', 'results', 'startup.json');
  if (!existsSync(file) && !quick) execFileSync(process.execPath, ['--import', 'tsx', 'bench/startup.ts'], { cwd: REPO, stdio: 'inherit', timeout: 1_800_000 });
  const q = startupRows(file);
  if (typeof q === 'string') {
    notes.push(`${STARTUP_SCENARIOS.join(', ')}: null: ${q}.`);
    for (const sc of STARTUP_SCENARIOS) rows.push({ scenario: sc, unit: 'ms', lakecrypt: null, minio: null, minio_sse: null });
  } else {
    rows.push(...q.rows);
    notes.push(q.note);
  }
}
// --- the floor of a second hop for small GETs (bench/hop.ts), quoted beside get-small-p50-ms
{
  const file = path.join(REPO, 'bench', 'results', 'hop.json');
  const h = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { at: string; result: Record<string, { p50Ms: number; middleCpuMsPerGet: number | null }> }) : null;
  if (h?.result.minio) {
    const base = h.result.minio.p50Ms;
    const part = (n: string) => {
      const x = h.result[n];
      return x ? `${n} +${(x.p50Ms - base).toFixed(2)} ms${x.middleCpuMsPerGet === null ? '' : ` (${x.middleCpuMsPerGet} CPU-ms per GET in the middle process)`}` : `${n} not measured`;
    };
    notes.push(`get-small-p50-ms beside the floor of a second hop (from bench/hop.ts run separately at ${h.at}, not in this run; 4 KiB GETs over MinIO's p50 of ${base} ms): ${['tcp-relay', 'null-gateway', 'lakecrypt'].map(part).join('; ')}.`);
  }
}
// --- what any process between client and MinIO can reach for one large stream (bench/floor.ts), quoted beside
// put-large-c1 and get-large-c1
{
  const file = path.join(REPO, 'bench', 'results', 'floor.json');
  type Row = { mibps: number; vsMinio: number; vsMinioSse: number; middleCpuMsPerMib: number | null };
  const f = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { at: string; objectBytes: number; result: Record<'put' | 'get', Record<string, Row>> }) : null;
  if (f?.result.get?.minio && f.result.put?.minio) {
    const line = (op: 'put' | 'get') =>
      ['tcp-relay', 'tcp-relay-aes', 'null-gateway', 'null-gateway-aes', 'lakecrypt']
        .map((n) => {
          const x = f.result[op][n];
          return x ? `${n} ${x.vsMinio.toFixed(2)}x / ${x.vsMinioSse.toFixed(2)}x` : `${n} not measured`;
        })
        .join(', ');
    notes.push(`put-large-c1 and get-large-c1 beside the floor of a second hop (from bench/floor.ts run separately at ${f.at}, not in this run; one ${f.objectBytes / MiB} MiB stream, ratio to minio / minio_sse): PUT ${line('put')}; GET ${line('get')}. tcp-relay only pipes sockets; -aes adds one AES-256-GCM pass on node:crypto; null-gateway is node:http with the gateway's backend client and no logic.`);
  }
}
if (!samples.has('key-unwraps-per-1000-gets')) rows.push({ scenario: 'key-unwraps-per-1000-gets', unit: 'unwraps', lakecrypt: null, minio: null, minio_sse: null });
if (!samples.has('rss-peak-mib-5gib-upload')) rows.push({ scenario: 'rss-peak-mib-5gib-upload', unit: 'MiB', lakecrypt: null, minio: null, minio_sse: null });
if (!samples.has('warp-mixed-MiBps')) rows.push({ scenario: 'warp-mixed-MiBps', unit: 'MiB/s', lakecrypt: null, minio: null, minio_sse: null });

const order = (s: string) => {
  const prefixes = ['put-large', 'get-large', 'multipart', 'get-small', 'put-small', 'head-small', 'range', 'key-unwraps', 'rss', 'gateway-cpu', 'cpu-ms', 'rewrap', 'crypto', 'openssl', 'mc-', 'warp'];
  const i = prefixes.findIndex((p) => s.startsWith(p));
  return i < 0 ? prefixes.length : i;
};
rows.sort((a, b) => order(a.scenario) - order(b.scenario));
evaluateTargets(rows, { unwrapsAllowedPer1000 });
for (const r of rows) {
  if (r.met === false) log(`target missed: ${r.scenario} (${r.target})`);
}

// --- profile the gateway where a target is missed (full runs; --profile forces it, --no-profile skips it)
const missed = rows.filter((r) => r.met === false).map((r) => r.scenario);
if (!flag('--no-profile') && (flag('--profile') || (!quick && missed.length > 0))) {
  const workloads: [string, (t: Target) => Promise<unknown>][] = [
    ['large PUT (put-large-c1 x2)', async (t) => { await putLarge(t, sizes, 1); await putLarge(t, sizes, 1); }],
    ['large GET (get-large-c1 x2)', async (t) => { await getLarge(t, sizes, 1); await getLarge(t, sizes, 1); }],
    ['small objects 4 KiB (PUT/GET/HEAD)', (t) => small(t, sizes, 4 * KiB)],
  ];
  const md: string[] = ['# Gateway CPU profiles', '', `Where targets were missed (${missed.join(', ') || 'none: forced with --profile'}), the gateway was run under \`node --cpu-prof dist/src/main.js\` for each workload below and the .cpuprofile summarised by self time.`, ''];
  await gw.stop();
  const profDir = path.join(tmpdir(), 'lakecrypt-bench-profiles'); // raw .cpuprofile files stay here (not committed)
  rmSync(profDir, { recursive: true, force: true });
  for (const [i, [title, fn]] of workloads.entries()) {
    const dir = path.join(profDir, String(i));
    mkdirSync(dir, { recursive: true });
    log(`profiling: ${title}`);
    gw = await startGatewayProcess(minio, { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`] });
    const up = performance.now();
    const t = await makeTarget('lakecrypt', gw, gw.pid);
    let skipMs = gw.startupMs;
    try {
      if (i === 1) await putLarge(t, sizes, 4); // objects to read; not part of the summary
      skipMs = gw.startupMs + (performance.now() - up);
      await fn(t);
    } catch (e) {
      md.push(`(${title}: workload failed: ${(e as Error).message.split('\n')[0]})`, '');
    }
    await gw.stop();
    // one file per thread: CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile; thread 0 is the main thread
    const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort();
    if (files.length === 0) md.push(`### ${title}`, '', 'no .cpuprofile written', '');
    for (const f of files) {
      const thread = f.split('.').at(-3);
      const sum = summariseProfile(path.join(dir, f), thread === '0' ? 20 : 8, skipMs);
      if (thread !== '0' && sum.totalMs - sum.idleMs < 200) continue; // loader thread, idle workers
      md.push(profileMarkdown(`${title}: ${thread === '0' ? 'main thread' : `thread ${thread}`}`, sum));
    }
  }
  writeFileSync(path.join(outDir, 'profile.md'), md.join('\n'));
  log(`raw CPU profiles in ${profDir}`);
  notes.push('Gateway CPU profiles of the large PUT, large GET and small-object workloads: profile.md.');
}

for (const stop of stopAll) await stop().catch(() => undefined);

const machine = {
  cpu: cpus()[0]?.model ?? '?',
  cores: availableParallelism(),
  memGiB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  kernel: release(),
  openssl: (() => {
    try {
      return execFileSync('openssl', ['version'], { encoding: 'utf8' }).trim();
    } catch {
      return null;
    }
  })(),
  loadBefore: Math.round(loadBefore * 100) / 100,
  loadAfter: Math.round(loadavg()[0] * 100) / 100,
  durationS: Math.round((Date.now() - t0) / 1000),
};
const files = writeReport(outDir, { date: new Date().toISOString(), machine, quick, results: rows, notes });
log(`done in ${machine.durationS} s: ${files.map((f) => path.relative(process.cwd(), f)).join(', ')}`);
process.exit(0);
