/**
 * Where a middle process's CPU goes (issue #22): one plain MinIO, one relay per mode of bench/lib/relay.ts in front
 * of it (or the gateway itself: mode `gateway`, the compiled build as bench/lib/targets.ts starts it; `gateway:DIR`
 * the gateway of another checkout in DIR, for an A/B of a change to src/), the
 * benchmark's client (bench/lib/s3.ts), and the middle process's own CPU per MiB from /proc for each PUT/GET at
 * each concurrency of --conc (c streams of --mib each at once) — optionally with a tool attached to it for one
 * transfer (at --tool-conc, default the first of --conc):
 *   --strace DIR        `strace -c -f -p` (syscall counts and time), DIR/<mode>-<op>.strace-c.txt
 *   --strace-sizes DIR  `strace -f -e trace=<io calls>` on one transfer, histogram of bytes per call (log2 bins)
 *                       in DIR/<mode>-<op>.sizes.txt (raw trace beside it, deleted unless --keep-trace)
 *   --perf DIR          `perf record -g` (relay started with --perf-basic-prof), DIR/<mode>-<op>.perf.txt
 *   --cpu-prof DIR      relay started with `node --cpu-prof`, one .cpuprofile per relay at its exit; summarised
 *                       by self time per function and area (bench/lib/profile.ts) in DIR/<mode>.cpu.md
 *   --relay-output DIR  each relay's stdout at its exit in DIR/<mode>.log (e.g. with NODE_ARGS=--trace-gc, below)
 * The traced/profiled transfer runs after the measured rounds and is not counted in the figures.
 * Every mode first writes the object through itself and reads it back through itself, compared (untimed).
 *
 * A mode may carry environment for its process (relay.ts's knobs, the gateway's settings):
 * `tcp-lean-aes@RELAY_AES_CHUNK_KIB=1024+RELAY_SLAB_KIB=4096`, `gateway@LAKECRYPT_CRYPTO_THREADS=2`, and node/V8
 * flags (not allowed in NODE_OPTIONS) as NODE_ARGS, `;` between them: `tcp@NODE_ARGS=--trace-gc`.
 *
 *   node --import tsx bench/relay-probe.ts --modes tcp,tcp-lean,gateway [--ops put,get] [--conc 1,4] [--mib 256] [--rounds 3] [--tool-mib 64]
 *        [--strace DIR] [--strace-sizes DIR] [--perf DIR] [--cpu-prof DIR]
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { Readable } from 'node:stream';
import { CreateBucketCommand, GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { bodyStream, getDrain, makeClient, MiB, putStream, type Endpoint } from './lib/s3.ts';
import { median } from './lib/stats.ts';
import { cpuSecondsOf, startGatewayProcess, startPlainMinio } from './lib/targets.ts';
import { runPool } from './lib/stats.ts';
import { ROOT, startProcess } from '../tools/process.ts';
import { profileMarkdown, summariseProfile } from './lib/profile.ts';

const { values: args } = parseArgs({
  options: {
    modes: { type: 'string', default: 'tcp' },
    ops: { type: 'string', default: 'put,get' },
    conc: { type: 'string', default: '1' },
    'tool-conc': { type: 'string' },
    mib: { type: 'string', default: '256' },
    'tool-mib': { type: 'string' },
    rounds: { type: 'string', default: '3' },
    strace: { type: 'string' },
    'strace-sizes': { type: 'string' },
    'keep-trace': { type: 'boolean', default: false },
    perf: { type: 'string' },
    'cpu-prof': { type: 'string' },
    'relay-output': { type: 'string' },
  },
});
const modes = args.modes.split(',').filter(Boolean);
const ops = args.ops.split(',').filter(Boolean) as ('put' | 'get')[];
const SIZE = Number(args.mib) * MiB;
const TOOL_SIZE = Number(args['tool-mib'] ?? args.mib) * MiB;
const ROUNDS = Number(args.rounds);
const CONCS = args.conc.split(',').map(Number);
const MAXC = Math.max(...CONCS);
for (const d of [args.strace, args['strace-sizes'], args.perf, args['cpu-prof'], args['relay-output']]) if (d) mkdirSync(d, { recursive: true });

process.once('SIGTERM', () => process.exit(143));
const minio = await startPlainMinio();
const be: Endpoint = { endpoint: minio.endpoint, accessKey: minio.accessKey, secretKey: minio.secretKey };
await makeClient(be).send(new CreateBucketCommand({ Bucket: 'probe' }));

interface Relay { mode: string; pid: number; endpoint: string; bucket: string; client: S3Client; adminUrl?: string; stop(): Promise<void>; output(): string }

/** The gateway's main-thread GC time so far by kind (prom-client's nodejs_gc_duration_seconds on its admin /metrics), seconds and count. */
async function gcSoFar(adminUrl: string): Promise<Map<string, { s: number; n: number }>> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const m = new Map<string, { s: number; n: number }>();
  for (const x of text.matchAll(/^nodejs_gc_duration_seconds_(sum|count)\{kind="(\w+)"\} (\S+)$/gm)) {
    const e = m.get(x[2]) ?? { s: 0, n: 0 };
    if (x[1] === 'sum') e.s = Number(x[3]);
    else e.n = Number(x[3]);
    m.set(x[2], e);
  }
  return m;
}
let gateways = 0;
async function startRelay(mode: string): Promise<Relay> {
  const nodeArgs = ['--import', 'tsx'];
  if (args['cpu-prof']) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${path.resolve(args['cpu-prof'], mode)}`);
  // --perf-basic-prof also turns on V8's code-event log, one isolate-*.log per isolate in the cwd: not wanted
  if (args.perf) nodeArgs.push('--perf-basic-prof', '--no-logfile-per-isolate', '--logfile=/dev/null');
  const [relayMode, envSpec = ''] = mode.split('@');
  const extra: Record<string, string> = {};
  for (const kv of envSpec.split('+').filter(Boolean)) extra[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
  if (extra.NODE_ARGS) nodeArgs.unshift(...extra.NODE_ARGS.split(';'));
  delete extra.NODE_ARGS;
  if (relayMode === 'gateway' || relayMode.startsWith('gateway:')) {
    // gateway:<dir>: the gateway of another checkout (e.g. `git archive HEAD | tar -x -C DIR` plus one change, with
    // node_modules linked), started by that checkout's own bench/lib/targets.ts, as bench/ab.ts --other does
    const dir = relayMode.slice('gateway:'.length);
    const start = dir
      ? ((await import(pathToFileURL(path.resolve(dir, 'bench/lib/targets.ts')).href)) as { startGatewayProcess: typeof startGatewayProcess }).startGatewayProcess
      : startGatewayProcess;
    const gw = await start(be, { env: extra, nodeArgs: nodeArgs.filter((a) => a !== '--import' && a !== 'tsx') });
    const client = makeClient(gw);
    const bucket = `probegw-${++gateways}`; // one bucket per gateway: they share the backend's namespace
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    return { mode, pid: gw.pid, endpoint: gw.endpoint, bucket, client, adminUrl: gw.adminUrl, output: () => gw.logs(), stop: () => gw.stop() };
  }
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  const p = startProcess(process.execPath, [...nodeArgs, 'bench/lib/relay.ts', relayMode, be.endpoint, be.accessKey, be.secretKey], { cwd: ROOT, env, inheritStderr: true });
  const [, port] = await p.waitForOutput(/listening (\d+)/, { timeoutMs: 30_000, what: `relay ${mode}` });
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    mode, pid: p.pid, endpoint, bucket: 'probe', client: makeClient({ ...be, endpoint }), output: () => p.output(),
    async stop() {
      const exited = new Promise((res) => p.child.once('exit', res));
      p.child.kill('SIGTERM'); // relay.ts exits cleanly on SIGTERM, so --cpu-prof writes its profile
      await exited;
    },
  };
}

async function sha256Of(body: Readable): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of body) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** `conc` streams at once, of keys `${key}-0`.. */
async function transfer(op: 'put' | 'get', r: Relay, size: number, key: string, conc = 1): Promise<void> {
  await runPool(conc, conc, async (i) => {
    if (op === 'put') await putStream(r.client, r.bucket, `${key}-${i}`, size);
    else {
      const n = await getDrain(r.client, r.bucket, `${key}-${i}`);
      if (n !== size) throw new Error(`${r.mode}: GET returned ${n} bytes, not ${size}`);
    }
  });
}

/** Run `cmd` attached to the relay while `fn` runs; SIGINT detaches it (strace and perf both write their output then). */
async function attached(cmd: string, cmdArgs: string[], fn: () => Promise<void>): Promise<void> {
  const t = spawn(cmd, cmdArgs, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  t.stderr.on('data', (d: Buffer) => (err += d.toString()));
  await new Promise((res) => setTimeout(res, 1500)); // attaching to every thread takes a moment
  try {
    await fn();
  } finally {
    const done = new Promise((res) => t.once('exit', res));
    t.kill('SIGINT');
    await done;
  }
  if (err.trim()) console.error(`[probe] ${cmd}: ${err.trim().split('\n').slice(-3).join(' | ')}`);
}

/** Bytes per I/O call from an `strace -e trace=...` log: per call name, count, total and a log2 histogram. */
function sizeHistogram(trace: string): string {
  const calls = new Map<string, { n: number; bytes: number; bins: Map<number, number>; eagain: number }>();
  for (const line of trace.split('\n')) {
    const m = /\b(read|write|readv|writev|recvfrom|sendto|epoll_wait)\(.*\)\s+=\s+(-?\d+)/.exec(line);
    if (!m) continue;
    const name = m[1];
    const ret = Number(m[2]);
    const c = calls.get(name) ?? { n: 0, bytes: 0, bins: new Map(), eagain: 0 };
    c.n++;
    if (ret < 0) c.eagain++;
    else if (name !== 'epoll_wait') {
      c.bytes += ret;
      const bin = ret === 0 ? 0 : 2 ** Math.floor(Math.log2(ret));
      c.bins.set(bin, (c.bins.get(bin) ?? 0) + 1);
    } else c.bins.set(ret, (c.bins.get(ret) ?? 0) + 1); // epoll_wait: events returned
    calls.set(name, c);
  }
  const fmt = (b: number) => (b >= MiB ? `${b / MiB}M` : b >= 1024 ? `${b / 1024}K` : String(b));
  const out: string[] = [];
  for (const [name, c] of calls) {
    out.push(`${name}: ${c.n} calls, ${c.eagain} errors (EAGAIN), ${(c.bytes / MiB).toFixed(1)} MiB, mean ${c.n - c.eagain ? Math.round(c.bytes / (c.n - c.eagain)) : 0} B`);
    for (const [bin, n] of [...c.bins].sort((a, b) => a[0] - b[0])) out.push(`  ${name === 'epoll_wait' ? `${bin} events` : `>= ${fmt(bin)}`}: ${n}`);
  }
  return out.join('\n') + '\n';
}

const relays: Relay[] = [];
for (const m of modes) relays.push(await startRelay(m));

// every mode moves the object's exact bytes: written through it, read back through it, compared; then the other
// objects the GETs at the highest concurrency read (untimed)
const expected = await sha256Of(bodyStream(SIZE));
for (const r of relays) {
  await transfer('put', r, SIZE, `o-${r.mode}`, MAXC);
  const o = await r.client.send(new GetObjectCommand({ Bucket: r.bucket, Key: `o-${r.mode}-0` }));
  if ((await sha256Of(o.Body as Readable)) !== expected) throw new Error(`${r.mode}: the object read back differs from the one written`);
}

const cpu: Record<string, number[]> = {};
const mibps: Record<string, number[]> = {};
const gc: Record<string, Record<string, { msPerMib: number; perGib: number }[]>> = {};
for (let round = 0; round < ROUNDS; round++) {
  for (const op of ops) {
    for (const conc of CONCS) {
      for (let k = 0; k < relays.length; k++) {
        const r = relays[(round + k) % relays.length];
        execFileSync('sync');
        const g0 = r.adminUrl ? await gcSoFar(r.adminUrl) : null;
        const c0 = cpuSecondsOf(r.pid);
        const t = performance.now();
        await transfer(op, r, SIZE, `o-${r.mode}`, conc);
        const s = (performance.now() - t) / 1000;
        const c1 = cpuSecondsOf(r.pid);
        const mib = (conc * SIZE) / MiB;
        const key = `${op} c${conc} ${r.mode}`;
        (cpu[key] ??= []).push(((c1 - c0) * 1000) / mib);
        (mibps[key] ??= []).push(mib / s);
        if (g0) {
          // the scrape itself runs after the CPU reading: it is not counted in the transfer's CPU
          for (const [kind, e] of await gcSoFar(r.adminUrl!)) {
            const before = g0.get(kind) ?? { s: 0, n: 0 };
            ((gc[key] ??= {})[kind] ??= []).push({ msPerMib: ((e.s - before.s) * 1000) / mib, perGib: ((e.n - before.n) * 1024) / mib });
          }
        }
      }
    }
  }
}
for (const k of Object.keys(cpu)) {
  const all = cpu[k].map((x) => x.toFixed(2)).join(' ');
  console.log(`${k.padEnd(25)} middle CPU ${median(cpu[k]).toFixed(2)} ms/MiB (${all})  ${median(mibps[k]).toFixed(0)} MiB/s`);
  for (const [kind, v] of Object.entries(gc[k] ?? {})) {
    console.log(`${''.padEnd(27)}main-thread GC ${kind}: ${median(v.map((x) => x.msPerMib)).toFixed(3)} ms/MiB, ${median(v.map((x) => x.perGib)).toFixed(1)} per GiB (${v.map((x) => x.msPerMib.toFixed(2)).join(' ')})`);
  }
}

// the tools, one transfer each (TOOL_SIZE; a GET reads a TOOL_SIZE object written untraced first)
for (const r of relays) {
  for (const op of ops) {
    const key = `t-${r.mode}`;
    const c = Number(args['tool-conc'] ?? CONCS[0]);
    if (op === 'get') await transfer('put', r, TOOL_SIZE, key, c); // the objects this GET reads
    const base = `${r.mode}-${op}-c${c}`;
    if (args.strace) {
      const f = path.join(args.strace, `${base}.strace-c.txt`);
      await attached('strace', ['-c', '-f', '-p', String(r.pid), '-o', f], () => transfer(op, r, TOOL_SIZE, key, c));
    }
    if (args['strace-sizes']) {
      const f = path.join(args['strace-sizes'], `${base}.trace`);
      await attached('strace', ['-f', '-e', 'trace=read,write,readv,writev,recvfrom,sendto,epoll_wait', '-p', String(r.pid), '-o', f], () => transfer(op, r, TOOL_SIZE, key, c));
      writeFileSync(path.join(args['strace-sizes'], `${base}.sizes.txt`), `${r.mode} ${op} ${TOOL_SIZE / MiB} MiB\n` + sizeHistogram(readFileSync(f, 'utf8')));
      if (!args['keep-trace']) rmSync(f);
    }
    if (args.perf) {
      const f = path.join(args.perf, `${base}.perf.data`);
      await attached('perf', ['record', '-F', '1999', '-g', '-p', String(r.pid), '-o', f], () => transfer(op, r, TOOL_SIZE, key, c));
      const rep = execFileSync('perf', ['report', '-i', f, '--stdio', '--no-children', '--sort', 'dso,sym', '--percent-limit', '0.7', '-g', 'none'], { maxBuffer: 64 << 20 }).toString();
      writeFileSync(path.join(args.perf, `${base}.perf.txt`), rep);
      const dso = execFileSync('perf', ['report', '-i', f, '--stdio', '--no-children', '--sort', 'dso', '-g', 'none'], { maxBuffer: 64 << 20 }).toString();
      writeFileSync(path.join(args.perf, `${base}.perf-dso.txt`), dso);
    }
  }
}

for (const r of relays) {
  await r.stop();
  if (args['relay-output']) writeFileSync(path.join(args['relay-output'], `${r.mode}.log`), r.output());
  if (args['cpu-prof']) {
    const dir = path.resolve(args['cpu-prof'], r.mode);
    const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')) : [];
    // one profile per thread (tsx's loader runs in a worker): the summary is of the busiest, the main thread
    const busiest = files.map((f) => summariseProfile(path.join(dir, f), 25, 3000)).sort((a, b) => b.totalMs - b.idleMs - (a.totalMs - a.idleMs))[0];
    if (busiest) writeFileSync(path.join(args['cpu-prof'], `${r.mode}.cpu.md`), profileMarkdown(`${r.mode}, main thread`, busiest));
  }
}
await minio.stop();
process.exit(0);
