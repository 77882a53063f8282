/**
 * Keeps `npm run bench -- --quick` working: it runs the quick benchmark (real MinIO x2 + the gateway as its own
 * process) into a temp dir and checks that every scenario produced a number (or a note says why not) and that
 * the JSON, Markdown and SVG outputs are well-formed. Nothing here is about speed.
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { XMLValidator } from 'fast-xml-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Report } from '../../bench/lib/report.ts';
import { ROOT } from '../../tools/process.ts';
import { makeTmpDir, type TmpDir } from '../../tools/tmp.ts';

const REPO = ROOT;

const EXPECTED = [
  'put-large-c1', 'put-large-c4', 'get-large-c1', 'get-large-c4', 'multipart-4x-MBps', 'multipart-get-MiBps',
  'get-small-p50-ms', 'get-small-p99-ms', 'put-small-p50-ms', 'head-small-p50-ms',
  'get-small-4k-ops', 'put-small-4k-ops', 'head-small-4k-ops', 'get-small-64k-ops', 'put-small-64k-ops', 'head-small-64k-ops',
  'range-1mib-small-object-ms', 'range-1mib-huge-object-ms',
  'key-unwraps-per-1000-gets', 'rss-peak-mib-5gib-upload', 'crypto-pipeline-encrypt', 'crypto-pipeline-decrypt',
  'rewrap-headers-per-s', 'rewrap-data-bytes-read', 'mc-put-large', 'mc-get-large', 'warp-mixed-MiBps',
  'gateway-cpu-ms-per-get-4k', 'gateway-cpu-s-per-gib-put', 'gateway-cpu-ms-per-mib-multipart', 'gateway-cpu-ms-per-mib-multipart-get',
  'gateway-cpu-ms-per-range-1mib-small', 'gateway-cpu-ms-per-range-1mib-huge',
  'gateway-cpu-ms-per-mib-get-large-c1', 'gateway-cpu-ms-per-mib-get-large-c4', 'gateway-cpu-ms-per-mib-put-large-c1',
  'gateway-cpu-ms-per-mib-put-large-c4', 'cpu-ms-per-mib-get-large-c4', 'machine-busy-pct-get-large-c4', 'machine-bound-x-get-large-c4',
];
/** Scenarios every target runs: all three columns are expected. */
const PEERED = /^(put|get|head)-(large|small)|^multipart|^range-|^mc-/;

let tmp: TmpDir;
let report: Report;
let stderr = '';

beforeAll(async () => {
  tmp = makeTmpDir('lakecrypt-bench-quick-');
  const code = await new Promise<number>((resolve) => {
    const c = spawn(process.execPath, ['--no-warnings', '--import', 'tsx', 'bench/run.ts', '--quick', '--no-profile', '--out', tmp.path], {
      cwd: REPO,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    c.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
    c.once('close', (n) => resolve(n ?? 1));
  });
  if (code !== 0) throw new Error(`bench/run.ts --quick exited ${code}:\n${stderr}`);
  report = JSON.parse(readFileSync(path.join(tmp.path, 'latest.json'), 'utf8')) as Report;
}, 900_000);

afterAll(() => tmp?.cleanup());

describe('npm run bench -- --quick', () => {
  it('writes latest.json in the agreed shape', () => {
    expect(Number.isNaN(Date.parse(report.date))).toBe(false);
    expect(report.quick).toBe(true);
    expect(typeof report.machine.cores).toBe('number');
    expect(Array.isArray(report.notes) && report.notes.every((n) => typeof n === 'string')).toBe(true);
    for (const r of report.results) {
      expect(Object.keys(r)).toEqual(expect.arrayContaining(['scenario', 'unit', 'lakecrypt', 'minio', 'minio_sse']));
      for (const c of ['lakecrypt', 'minio', 'minio_sse'] as const) {
        expect(r[c] === null || (typeof r[c] === 'number' && Number.isFinite(r[c]))).toBe(true);
      }
    }
    expect(report.results.map((r) => r.scenario)).toEqual(expect.arrayContaining(EXPECTED));
  });

  it('every scenario produced a number, or a note says why not', () => {
    const unexplained: string[] = [];
    const explained = (s: string) => report.notes.some((n) => n.includes(s));
    for (const r of report.results) {
      const cols = PEERED.test(r.scenario) ? (['lakecrypt', 'minio', 'minio_sse'] as const) : (['lakecrypt'] as const);
      const missing = cols.filter((c) => r[c] === null);
      if (missing.length > 0 && !explained(r.scenario)) unexplained.push(`${r.scenario}: ${missing.join(', ')}`);
    }
    expect(unexplained, stderr.slice(-4000)).toEqual([]);
    // the core comparisons must really run against all three targets
    for (const s of ['put-large-c1', 'get-large-c1', 'get-small-p50-ms', 'range-1mib-small-object-ms']) {
      const r = report.results.find((x) => x.scenario === s)!;
      expect([r.lakecrypt, r.minio, r.minio_sse].every((v) => typeof v === 'number' && v > 0), s).toBe(true);
    }
    // the gateway's CPU comes from its own counter, less the scrapes': a positive figure, not a tick count of zero
    for (const s of ['gateway-cpu-ms-per-mib-get-large-c1', 'gateway-cpu-ms-per-mib-get-large-c4', 'gateway-cpu-ms-per-get-4k']) {
      const v = report.results.find((x) => x.scenario === s)?.lakecrypt;
      expect(typeof v === 'number' && v > 0, `${s}: ${v}`).toBe(true);
    }
    // a share of MinIO's throughput: above zero, and not above what the whole machine's CPU allows anyone
    const bound = report.results.find((x) => x.scenario === 'machine-bound-x-get-large-c4')?.lakecrypt;
    expect(typeof bound === 'number' && bound > 0 && bound < 2, `machine-bound-x-get-large-c4: ${bound}`).toBe(true);
  });

  it('writes latest.md with one table row per result and the targets marked', () => {
    const md = readFileSync(path.join(tmp.path, 'latest.md'), 'utf8');
    const lines = md.split('\n');
    const header = lines.findIndex((l) => l.startsWith('| scenario |'));
    expect(header).toBeGreaterThan(-1);
    const cells = lines[header].split('|').length;
    const table = lines.slice(header + 2).filter((l) => l.startsWith('|'));
    expect(table.length).toBe(report.results.length);
    for (const l of table) expect(l.split('|').length).toBe(cells);
    expect(md).toMatch(/\*\*(met|missed)\*\*/);
    expect(md).toContain('## Notes');
  });

  it('writes well-formed SVG charts', () => {
    const svgs = readdirSync(tmp.path).filter((f) => f.endsWith('.svg'));
    expect(svgs.sort()).toEqual(['latency.svg', 'ops.svg', 'throughput.svg']);
    for (const f of svgs) {
      const text = readFileSync(path.join(tmp.path, f), 'utf8');
      expect(XMLValidator.validate(text), f).toBe(true);
      expect(text.trimStart().startsWith('<svg')).toBe(true);
      expect((text.match(/<rect /g) ?? []).length, f).toBeGreaterThan(4);
    }
  });
});
