/**
 * Where a relay process's CPU goes (issue #22): one plain MinIO, one relay per mode of bench/lib/relay.ts in front
 * of it, the benchmark's client (bench/lib/s3.ts), and the relay's own CPU per MiB from /proc for each PUT/GET —
 * optionally with a tool attached to the relay for exactly one transfer:
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
 * A mode may carry environment for its relay (relay.ts's knobs): `tcp-lean-aes@RELAY_AES_CHUNK_KIB=1024+RELAY_SLAB_KIB=4096`,
 * and node/V8 flags (not allowed in NODE_OPTIONS) as NODE_ARGS, `;` between them: `tcp@NODE_ARGS=--trace-gc`.
 *
 *   node --import tsx bench/relay-probe.ts --modes tcp,tcp-lean [--ops put,get] [--mib 256] [--rounds 3] [--tool-mib 64]
 *        [--strace DIR] [--strace-sizes DIR] [--perf DIR] [--cpu-prof DIR]
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Readable } from 'node:stream';
import { CreateBucketCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { bodyStream, getDrain, makeClient, MiB, putStream, type Endpoint } from './lib/s3.ts';
import { median } from './lib/stats.ts';
import { cpuSecondsOf, startPlainMinio } from './lib/targets.ts';
import { ROOT, startProcess } from '../tools/process.ts';
import { profileMarkdown, summariseProfile } from './lib/profile.ts';

const { values: args } = parseArgs({
  options: {
    modes: { type: 'string', default: 'tcp' },
    ops: { type: 'string', default: 'put,get' },
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
for (const d of [args.strace, args['strace-sizes'], args.perf, args['cpu-prof'], args['relay-output']]) if (d) mkdirSync(d, { recursive: true });

process.once('SIGTERM', () => process.exit(143));
const minio = await startPlainMinio();
const be: Endpoint = { endpoint: minio.endpoint, accessKey: minio.accessKey, secretKey: minio.secretKey };
await makeClient(be).send(new CreateBucketCommand({ Bucket: 'probe' }));

interface Relay { mode: string; pid: number; child: ChildProcess; endpoint: string; output(): string }
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
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  const p = startProcess(process.execPath, [...nodeArgs, 'bench/lib/relay.ts', relayMode, be.endpoint, be.accessKey, be.secretKey], { cwd: ROOT, env, inheritStderr: true });
  const [, port] = await p.waitForOutput(/listening (\d+)/, { timeoutMs: 30_000, what: `relay ${mode}` });
  return { mode, pid: p.pid, child: p.child, endpoint: `http://127.0.0.1:${port}`, output: () => p.output() };
}

async function sha256Of(body: Readable): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of body) h.update(chunk as Buffer);
  return h.digest('hex');
}

async function transfer(op: 'put' | 'get', r: Relay, size: number, key: string): Promise<void> {
  const c = clients.get(r.mode)!;
  if (op === 'put') await putStream(c, 'probe', key, size);
  else {
    const n = await getDrain(c, 'probe', key);
    if (n !== size) throw new Error(`${r.mode}: GET returned ${n} bytes, not ${size}`);
  }
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
const clients = new Map(relays.map((r) => [r.mode, makeClient({ ...be, endpoint: r.endpoint })]));

// every mode moves the object's exact bytes: written through it, read back through it, compared
const expected = await sha256Of(bodyStream(SIZE));
for (const r of relays) {
  await transfer('put', r, SIZE, `o-${r.mode}`);
  const o = await clients.get(r.mode)!.send(new GetObjectCommand({ Bucket: 'probe', Key: `o-${r.mode}` }));
  if ((await sha256Of(o.Body as Readable)) !== expected) throw new Error(`${r.mode}: the object read back differs from the one written`);
}

const cpu: Record<string, number[]> = {};
const mibps: Record<string, number[]> = {};
for (let round = 0; round < ROUNDS; round++) {
  for (const op of ops) {
    for (let k = 0; k < relays.length; k++) {
      const r = relays[(round + k) % relays.length];
      execFileSync('sync');
      const c0 = cpuSecondsOf(r.pid);
      const t = performance.now();
      await transfer(op, r, SIZE, `o-${r.mode}`);
      const s = (performance.now() - t) / 1000;
      (cpu[`${op} ${r.mode}`] ??= []).push(((cpuSecondsOf(r.pid) - c0) * 1000) / (SIZE / MiB));
      (mibps[`${op} ${r.mode}`] ??= []).push(SIZE / MiB / s);
    }
  }
}
for (const k of Object.keys(cpu)) {
  const all = cpu[k].map((x) => x.toFixed(2)).join(' ');
  console.log(`${k.padEnd(22)} relay CPU ${median(cpu[k]).toFixed(2)} ms/MiB (${all})  ${median(mibps[k]).toFixed(0)} MiB/s`);
}

// the tools, one transfer each (TOOL_SIZE; a GET reads a TOOL_SIZE object written untraced first)
for (const r of relays) {
  for (const op of ops) {
    const key = `t-${r.mode}`;
    if (op === 'get') await transfer('put', r, TOOL_SIZE, key);
    const base = `${r.mode}-${op}`;
    if (args.strace) {
      const f = path.join(args.strace, `${base}.strace-c.txt`);
      await attached('strace', ['-c', '-f', '-p', String(r.pid), '-o', f], () => transfer(op, r, TOOL_SIZE, key));
    }
    if (args['strace-sizes']) {
      const f = path.join(args['strace-sizes'], `${base}.trace`);
      await attached('strace', ['-f', '-e', 'trace=read,write,readv,writev,recvfrom,sendto,epoll_wait', '-p', String(r.pid), '-o', f], () => transfer(op, r, TOOL_SIZE, key));
      writeFileSync(path.join(args['strace-sizes'], `${base}.sizes.txt`), `${r.mode} ${op} ${TOOL_SIZE / MiB} MiB\n` + sizeHistogram(readFileSync(f, 'utf8')));
      if (!args['keep-trace']) rmSync(f);
    }
    if (args.perf) {
      const f = path.join(args.perf, `${base}.perf.data`);
      await attached('perf', ['record', '-F', '1999', '-g', '-p', String(r.pid), '-o', f], () => transfer(op, r, TOOL_SIZE, key));
      const rep = execFileSync('perf', ['report', '-i', f, '--stdio', '--no-children', '--sort', 'dso,sym', '--percent-limit', '0.7', '-g', 'none'], { maxBuffer: 64 << 20 }).toString();
      writeFileSync(path.join(args.perf, `${base}.perf.txt`), rep);
      const dso = execFileSync('perf', ['report', '-i', f, '--stdio', '--no-children', '--sort', 'dso', '-g', 'none'], { maxBuffer: 64 << 20 }).toString();
      writeFileSync(path.join(args.perf, `${base}.perf-dso.txt`), dso);
    }
  }
}

for (const r of relays) {
  const exited = new Promise((res) => r.child.once('exit', res));
  r.child.kill('SIGTERM'); // relay.ts exits cleanly on SIGTERM, so --cpu-prof writes its profile
  await exited;
  if (args['relay-output']) writeFileSync(path.join(args['relay-output'], `${r.mode}.log`), r.output());
  if (args['cpu-prof']) {
    const dir = path.resolve(args['cpu-prof'], r.mode);
    const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')) : [];
    for (const f of files) writeFileSync(path.join(args['cpu-prof'], `${r.mode}.cpu.md`), profileMarkdown(`relay.ts ${r.mode}`, summariseProfile(path.join(dir, f), 25, 3000)));
  }
}
await minio.stop();
process.exit(0);
