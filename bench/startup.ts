/**
 * How fast the gateway starts and the CLI answers: the compiled build (dist/, scripts/build.mjs) against the
 * sources through tsx, which is how both ran before the build existed.
 *
 *   gateway-startup-ms         spawn to "endpoints printed" on a fresh data dir (fs backend, local CMK), and the
 *                              CPU the process used by then (from /proc: steadier than wall time on a loaded machine)
 *   gateway-restart-after-kill-ms  kill -9, then the same data dir started again: how long a killed gateway is away
 *   cli-keys-list-ms           `lakecrypt keys list` against a running gateway with a few datasets: bin/lakecrypt
 *                              (the wrapper a user runs: build check + CLI), the built CLI alone, the CLI through
 *                              tsx (as bin/lakecrypt.mjs ran it before), and `node -e 0` (node's own start-up);
 *                              wall time, and the CPU the process used (user+system, from bash's `times` in a
 *                              second run: what the machine's load does not inflate as much)
 * Variants interleaved round by round, the first one rotated. Medians and p90 over the samples.
 *
 *   node --import tsx bench/startup.ts [--rounds 6] [--cli-runs 24] [--out FILE] [--into DIR]
 *     -> bench/results/startup.json; --into DIR also puts its rows into DIR/latest.json (and re-renders latest.md)
 */
import { execFile } from 'node:child_process';
import { cpus, availableParallelism, loadavg } from 'node:os';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CLI_JS, ensureBuilt } from '../scripts/build.mjs';
import { launchGateway, ROOT } from '../tools/gateway.ts';
import { makeTmpDir } from '../tools/tmp.ts';
import { evaluateTargets, writeReport, type Report } from './lib/report.ts';
import { startupRows, type StartupResult } from './lib/startup-figures.ts';
import { median, percentile } from './lib/stats.ts';

const { values: args } = parseArgs({
  options: { rounds: { type: 'string', default: '6' }, 'cli-runs': { type: 'string', default: '24' }, out: { type: 'string' }, into: { type: 'string' } },
});
const ROUNDS = Number(args.rounds);
const CLI_RUNS = Number(args['cli-runs']);
const log = (s: string) => process.stderr.write(`[startup ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
process.once('SIGTERM', () => process.exit(143));

const tmp = makeTmpDir('lakecrypt-bench-startup-');
const loadBefore = loadavg()[0];
await ensureBuilt();

const cpuMsOf = (pid: number): number => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime + stime, in clock ticks of 10 ms
};
const summary = (xs: number[]) => ({ median: Math.round(median(xs)), p90: Math.round(percentile(xs, 90)), samples: xs.map(Math.round) });

// ---------------------------------------------------------------- gateway start-up
const starts: Record<'build' | 'source', { wall: number[]; cpu: number[]; restart: number[] }> = {
  build: { wall: [], cpu: [], restart: [] },
  source: { wall: [], cpu: [], restart: [] },
};
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? (['build', 'source'] as const) : (['source', 'build'] as const);
  for (const v of order) {
    const dataDir = path.join(tmp.path, `gw-${v}-${round}`);
    const g = await launchGateway({ dataDir, quiet: true, fromSource: v === 'source' });
    starts[v].wall.push(g.startupMs);
    starts[v].cpu.push(cpuMsOf(g.pid));
    await g.kill();
    const again = await launchGateway({ dataDir, quiet: true, fromSource: v === 'source', credentials: { accessKey: g.accessKey, secretKey: g.secretKey } });
    starts[v].restart.push(again.startupMs);
    await again.stop();
    log(`round ${round + 1}/${ROUNDS} ${v}: start ${Math.round(g.startupMs)} ms, restart after kill ${Math.round(again.startupMs)} ms`);
  }
}

// ---------------------------------------------------------------- CLI keys list
const gw = await launchGateway({ dataDir: path.join(tmp.path, 'cli'), quiet: true });
const cliEnv = { ...process.env, NODE_OPTIONS: '', LAKECRYPT_ADMIN_URL: gw.adminUrl, LAKECRYPT_ACCESS_KEY: gw.accessKey, LAKECRYPT_SECRET_KEY: gw.secretKey, LAKECRYPT_CLI_RUN: '1' };
const timed = (bin: string, argv: string[]) =>
  new Promise<number>((resolve, reject) => {
    const t0 = performance.now();
    execFile(bin, argv, { env: cliEnv, cwd: ROOT }, (err, _out, stderr) => (err ? reject(new Error(`${bin} ${argv.join(' ')}: ${stderr}`)) : resolve(performance.now() - t0)));
  });
/** CPU ms (user + system) of one run of `bin argv`, as bash's `times` reports its children. */
const cpuOfRun = (bin: string, argv: string[]) =>
  new Promise<number>((resolve, reject) => {
    execFile('bash', ['-c', '"$0" "$@" > /dev/null || exit 1; times', bin, ...argv], { env: cliEnv, cwd: ROOT }, (err, out, stderr) => {
      const m = /^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/m.exec(String(out).trim().split('\n').at(-1) ?? '');
      if (err || !m) return reject(new Error(`${bin} ${argv.join(' ')}: ${stderr}`));
      resolve((Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4])) * 1000);
    });
  });
const commands: [string, string, string[]][] = [
  ['wrapper', path.join(ROOT, 'bin', 'lakecrypt'), ['keys', 'list']],
  ['direct', process.execPath, [CLI_JS, 'keys', 'list']],
  ['source', process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'keys', 'list']],
  ['nodeFloor', process.execPath, ['-e', '0']],
];
for (const ds of ['lake', 'lake/finance/', 'reports']) await timed(process.execPath, [CLI_JS, 'datasets', 'create', ds]);
for (const [, bin, argv] of commands) await timed(bin, argv); // warm the page cache and the gateway's handlers once
const cli: Record<string, number[]> = Object.fromEntries(commands.map(([n]) => [n, []]));
const cliCpu: Record<string, number[]> = Object.fromEntries(commands.map(([n]) => [n, []]));
for (let i = 0; i < CLI_RUNS; i++) {
  for (let k = 0; k < commands.length; k++) {
    const [name, bin, argv] = commands[(i + k) % commands.length]!;
    cli[name]!.push(await timed(bin, argv));
    cliCpu[name]!.push(await cpuOfRun(bin, argv));
  }
}
await gw.stop();
log(`cli keys list medians: ${Object.entries(cli).map(([n, xs]) => `${n} ${Math.round(median(xs))} ms (CPU ${Math.round(median(cliCpu[n]!))} ms)`).join(', ')}`);

const result: StartupResult = {
  date: new Date().toISOString(),
  machine: { cpu: cpus()[0]?.model ?? '?', cores: availableParallelism(), node: process.version, loadBefore: Math.round(loadBefore * 100) / 100, loadAfter: Math.round(loadavg()[0] * 100) / 100 },
  rounds: ROUNDS,
  cliRuns: CLI_RUNS,
  results: {
    'gateway-startup-ms': { build: summary(starts.build.wall), source: summary(starts.source.wall) },
    'gateway-startup-cpu-ms': { build: summary(starts.build.cpu), source: summary(starts.source.cpu) },
    'gateway-restart-after-kill-ms': { build: summary(starts.build.restart), source: summary(starts.source.restart) },
    'cli-keys-list-ms': Object.fromEntries(Object.entries(cli).map(([n, xs]) => [n, summary(xs)])),
    'cli-keys-list-cpu-ms': Object.fromEntries(Object.entries(cliCpu).map(([n, xs]) => [n, summary(xs)])),
  },
};
const out = path.resolve(args.out ?? path.join(ROOT, 'bench', 'results', 'startup.json'));
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
log(`wrote ${path.relative(process.cwd(), out)}`);

// ---------------------------------------------------------------- rows in latest.json
if (args.into) {
  const file = path.join(path.resolve(args.into), 'latest.json');
  if (!existsSync(file)) throw new Error(`--into: no ${file}`);
  const report = JSON.parse(readFileSync(file, 'utf8')) as Report;
  const q = startupRows(out);
  if (typeof q === 'string') throw new Error(q);
  evaluateTargets(q.rows);
  const mine = new Set(q.rows.map((r) => r.scenario));
  report.results = [...report.results.filter((r) => !mine.has(r.scenario)), ...q.rows];
  report.notes = [...report.notes.filter((n) => !n.startsWith('gateway-startup-ms, gateway-restart-after-kill-ms, cli-keys-list-ms:')), q.note];
  writeReport(path.dirname(file), report);
  log(`rows ${[...mine].join(', ')} put into ${path.relative(process.cwd(), file)}`);
}
tmp.cleanup();
process.exit(0);
