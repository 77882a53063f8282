/**
 * External figures: `mc` (MinIO client, Go, independent of the Node client), MinIO's `warp` (when it can be
 * found or installed), bench/crypto.ts results with `openssl speed`, bench/rewrap.ts results.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { cacheDir, findBinary } from '../../tools/process.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { bodyBuffer, MiB } from './s3.ts';
import type { Target } from './targets.ts';
import { cpuSecondsOf, REPO } from './targets.ts';

function run(bin: string, args: string[], env: Record<string, string>, timeoutMs: number, cwd?: string, discardStdout = false): Promise<{ code: number; out: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const c = spawn(bin, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', discardStdout ? 'ignore' : 'pipe', 'pipe'] });
    let out = '';
    const keep = (d: Buffer) => {
      out += d.toString();
      if (out.length > 256 * 1024) out = out.slice(-128 * 1024);
    };
    c.stdout?.on('data', keep);
    c.stderr!.on('data', keep);
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, out, ms: performance.now() - t0 });
    });
  });
}

const hostEnv = (t: Target) => {
  const u = new URL(t.endpoint);
  return { [`MC_HOST_${t.name}`]: `${u.protocol}//${encodeURIComponent(t.accessKey)}:${encodeURIComponent(t.secretKey)}@${u.host}` };
};

/** `mc cp` a file up and `mc cat` it back; MiB/s. Over http mc (minio-go) signs the upload as streaming chunks. */
export async function mcFigures(t: Target, size: number): Promise<{ put: number; get: number; serverCpuMsPerMib: { put: number; get: number } } | string> {
  const mc = findBinary('mc');
  if (!mc) return 'mc binary not found';
  const tmp = makeTmpDir('lakecrypt-bench-mc-');
  try {
    const file = path.join(tmp.path, 'obj.bin');
    const chunk = bodyBuffer(MiB, 7);
    const fd = openSync(file, 'w');
    for (let n = 0; n < size; n += chunk.length) writeSync(fd, chunk, 0, Math.min(chunk.length, size - n));
    closeSync(fd);
    const env = { ...hostEnv(t), MC_CONFIG_DIR: path.join(tmp.path, 'mc'), MC_DISABLE_PAGER: '1' };
    const cfg = ['--config-dir', path.join(tmp.path, 'mc'), '--quiet', '--no-color'];
    const c0 = cpuSecondsOf(t.pid);
    const put = await run(mc, [...cfg, 'cp', file, `${t.name}/${t.bucket}/mc-obj`], env, 600_000);
    const c1 = cpuSecondsOf(t.pid);
    if (put.code !== 0) return `mc cp failed: ${put.out.slice(-400)}`;
    const get = await run(mc, [...cfg, 'cat', `${t.name}/${t.bucket}/mc-obj`], env, 600_000, undefined, true);
    if (get.code !== 0) return `mc cat failed: ${get.out.slice(-400)}`;
    const perMib = (sec: number) => (sec * 1000) / (size / MiB);
    return { put: size / MiB / (put.ms / 1000), get: size / MiB / (get.ms / 1000), serverCpuMsPerMib: { put: perMib(c1 - c0), get: perMib(cpuSecondsOf(t.pid) - c1) } };
  } finally {
    tmp.cleanup();
  }
}

/** The warp binary: $WARP_BIN, the cache dir, $PATH; else try `go install github.com/minio/warp@latest` once. */
export function warpBinary(allowInstall: boolean): { bin: string | null; why?: string } {
  const found = findBinary('warp');
  if (found) return { bin: found };
  if (!allowInstall) return { bin: null, why: 'warp not installed (install skipped)' };
  if (!findBinary('go')) return { bin: null, why: 'warp not installed and no Go toolchain to build it' };
  const gobin = path.join(cacheDir(), 'bin');
  mkdirSync(gobin, { recursive: true });
  const r = spawnSync('go', ['install', 'github.com/minio/warp@latest'], { env: { ...process.env, GOBIN: gobin }, encoding: 'utf8', timeout: 600_000 });
  const bin = path.join(gobin, 'warp');
  if (r.status === 0 && existsSync(bin)) return { bin };
  const msg = `${r.stderr ?? ''}${r.error?.message ?? ''}`.trim().split('\n').slice(-2).join(' ');
  return { bin: null, why: `warp could not be installed (go install github.com/minio/warp@latest: ${msg.slice(0, 300)})` };
}

/** Parse the summary of `warp mixed|get|put`: total MiB/s and obj/s (warp prints "Cluster Total" or "Total"). */
export function parseWarp(out: string): { mibps: number; objps: number } | null {
  const clean = out.replace(/\x1b\[[0-9;]*m/g, '');
  const total = /(?:Cluster Total|Total)[^:\n]*:\s*([\d.]+)\s*(KiB|MiB|GiB)\/s,\s*([\d.]+)\s*obj\/s/i.exec(clean);
  const scale = (v: number, u: string) => (u === 'KiB' ? v / 1024 : u === 'GiB' ? v * 1024 : v);
  if (total) return { mibps: scale(Number(total[1]), total[2]), objps: Number(total[3]) };
  // no total line: add up the per-operation averages
  let mibps = 0;
  let objps = 0;
  let seen = false;
  for (const m of clean.matchAll(/\*\s*(?:Average|Throughput):\s*([\d.]+)\s*(KiB|MiB|GiB)\/s,\s*([\d.]+)\s*obj\/s/gi)) {
    mibps += scale(Number(m[1]), m[2]);
    objps += Number(m[3]);
    seen = true;
  }
  return seen ? { mibps, objps } : null;
}

export async function warpFigures(bin: string, t: Target, duration: string): Promise<{ mibps: number; objps: number } | string> {
  const tmp = makeTmpDir('lakecrypt-bench-warp-');
  try {
    const host = new URL(t.endpoint).host;
    const args = ['mixed', '--host', host, '--access-key', t.accessKey, '--secret-key', t.secretKey, '--duration', duration,
      '--concurrent', '8', '--obj.size', '1MiB', '--objects', '200', '--bucket', `warp-${t.bucket}`, '--noclear', '--no-color'];
    // warp writes its raw data file into the working directory: keep it in a temp dir
    const r = await run(bin, args, {}, 300_000, tmp.path);
    writeFileSync(path.join(REPO, 'bench', 'results', `warp-${t.name}.txt`), r.out);
    const p = parseWarp(r.out);
    return p ?? `warp exited ${r.code} without a parsable summary: ${r.out.slice(-300)}`;
  } finally {
    tmp.cleanup();
  }
}

export interface CryptoFigures {
  /** Best config using at most 2 threads (inline, pool-1, pool-2), and which one. */
  encryptBest: number | null;
  encryptBestConfig: string | null;
  decryptBest: number | null;
  decryptBestConfig: string | null;
  encrypt2t: number | null;
  decrypt2t: number | null;
  encryptInline: number | null;
  decryptInline: number | null;
  openssl16k: number | null;
  source: string;
}

/** bench/results/crypto.json (written by bench/crypto.ts); runs it when missing and `runIfMissing`. */
export function cryptoFigures(runIfMissing: boolean): CryptoFigures | string {
  const file = path.join(REPO, 'bench', 'results', 'crypto.json');
  if (!existsSync(file)) {
    if (!runIfMissing) return 'bench/results/crypto.json missing (quick mode does not run bench/crypto.ts)';
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/crypto.ts'], { cwd: REPO, stdio: 'inherit', timeout: 1_800_000 });
    if (r.status !== 0 || !existsSync(file)) return `bench/crypto.ts failed (exit ${r.status})`;
  }
  const j = JSON.parse(readFileSync(file, 'utf8')) as {
    date?: string;
    results?: Record<string, Record<string, number>>;
    openssl_speed_evp_aes_256_gcm_MiBps?: Record<string, number>;
    loadavg_1m?: { before: number; after: number };
  };
  const r = j.results ?? {};
  const best = (k: string) => {
    let v: number | null = null;
    let cfg: string | null = null;
    for (const [name, x] of Object.entries(r)) if (typeof x[k] === 'number' && (v === null || x[k] > v)) [v, cfg] = [x[k], name];
    return [v, cfg] as const;
  };
  const [encryptBest, encryptBestConfig] = best('encrypt_512MiB');
  const [decryptBest, decryptBestConfig] = best('decrypt_256MiB');
  return {
    encryptBest,
    encryptBestConfig,
    decryptBest,
    decryptBestConfig,
    encrypt2t: r['pool-2']?.encrypt_512MiB ?? null,
    decrypt2t: r['pool-2']?.decrypt_256MiB ?? null,
    encryptInline: r.inline?.encrypt_512MiB ?? null,
    decryptInline: r.inline?.decrypt_256MiB ?? null,
    openssl16k: j.openssl_speed_evp_aes_256_gcm_MiBps?.['16384B'] ?? null,
    source: `bench/results/crypto.json of ${j.date ?? '?'} (load avg ${j.loadavg_1m?.before ?? '?'}-${j.loadavg_1m?.after ?? '?'})`,
  };
}

/** bench/results/rewrap.json (written by bench/rewrap.ts, another engineer's): accept a few spellings. */
export function rewrapFigures(): { headersPerS: number | null; dataBytesRead: number | null; source: string } | string {
  const file = path.join(REPO, 'bench', 'results', 'rewrap.json');
  if (!existsSync(file)) return 'bench/results/rewrap.json not present (bench/rewrap.ts not run or not written yet)';
  let j: unknown;
  try {
    j = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    return `bench/results/rewrap.json unreadable: ${(e as Error).message}`;
  }
  const flat = new Map<string, number>();
  const walk = (v: unknown, pre: string) => {
    if (typeof v === 'number') flat.set(pre.toLowerCase().replace(/[^a-z0-9]/g, ''), v);
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, pre ? `${pre}.${k}` : k);
  };
  walk(j, '');
  const pick = (...names: string[]) => {
    for (const n of names) if (flat.has(n)) return flat.get(n)!; // exact names first, in order of preference
    for (const [k, v] of flat) if (names.some((n) => k.endsWith(n))) return v;
    return null;
  };
  const headersPerS = pick('rewrapheaderspers', 'headerspers', 'headerspersec', 'headerspersecond', 'rate');
  const dataBytesRead = pick('rewrapdatabytesread', 'databytesread', 'databytes');
  const extra = Object.entries(j as Record<string, unknown>)
    .filter(([k, v]) => k !== 'rewrap-headers-per-s' && k !== 'rewrap-data-bytes-read' && (typeof v === 'number' || typeof v === 'string'))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? JSON.stringify(v) : v}`)
    .join(', ');
  return { headersPerS, dataBytesRead, source: `bench/results/rewrap.json (${extra})` };
}
