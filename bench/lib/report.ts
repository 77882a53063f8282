/** latest.json / latest.md / SVG charts from the result rows, with the project's targets marked met/missed. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { round } from './stats.ts';

export type Col = 'lakecrypt' | 'minio' | 'minio_sse';
export const COLS: Col[] = ['lakecrypt', 'minio', 'minio_sse'];

export interface Row {
  scenario: string;
  unit: string;
  lakecrypt: number | null;
  minio: number | null;
  minio_sse: number | null;
  /** Set by evaluateTargets. */
  target?: string;
  met?: boolean | null;
  /** For a target of two parts that is missed: which part held and which did not. */
  detail?: string;
}

export interface Report {
  date: string;
  machine: Record<string, unknown>;
  quick: boolean;
  results: Row[];
  notes: string[];
}

export const GB_IN_MIB = 1e9 / 2 ** 20; // 1 GB/s = 953.67 MiB/s

/** A missed two-part target (`>= Nx minio and >= 1.0x minio_sse`): say which part held, in `detail`. */
export function describeTwoPartMiss(r: Row): void {
  const m = /^>= ([\d.]+)x minio and >= 1\.0x minio_sse$/.exec(r.target ?? '');
  if (!m || r.met !== false || r.lakecrypt === null || r.minio === null || r.minio_sse === null) return;
  const vsPlain = r.lakecrypt >= Number(m[1]) * r.minio;
  const vsSse = r.lakecrypt >= r.minio_sse;
  r.detail = `${m[1]}x minio ${vsPlain ? 'met' : 'missed'}, 1.0x minio_sse ${vsSse ? 'met' : 'missed'}`;
}

/** Mark each row that has a target. `ctx.unwrapsAllowedPer1000` comes from the run (KEK versions x TTL windows). */
export function evaluateTargets(rows: Row[], ctx: { unwrapsAllowedPer1000?: number | null } = {}): void {
  const by = new Map(rows.map((r) => [r.scenario, r]));
  const both = (r: Row, vsMinio: number) => {
    r.target = `>= ${vsMinio}x minio and >= 1.0x minio_sse`;
    if (r.lakecrypt === null || r.minio === null || r.minio_sse === null) return (r.met = null);
    r.met = r.lakecrypt >= vsMinio * r.minio && r.lakecrypt >= r.minio_sse;
    describeTwoPartMiss(r);
  };
  for (const r of rows) {
    const v = r.lakecrypt;
    if (/^put-large-c\d+$/.test(r.scenario)) both(r, 0.7);
    else if (/^get-large-c\d+$/.test(r.scenario)) both(r, 0.8);
    else if (r.scenario === 'get-small-p50-ms') {
      // issue #22's goals from here to the RSS row
      r.target = '<= minio + 0.5 ms';
      r.met = v === null || r.minio === null ? null : v <= r.minio + 0.5;
    } else if (r.scenario === 'put-small-p50-ms') {
      r.target = '<= 1.5x minio';
      r.met = v === null || r.minio === null ? null : v <= 1.5 * r.minio;
    } else if (/^gateway-cpu-ms-per-mib-(put|get)-large-c1$/.test(r.scenario)) {
      r.target = '<= 2.0 CPU ms/MiB';
      r.met = v === null ? null : v <= 2.0;
    } else if (/^gateway-cpu-ms-per-mib-(put|get)-large-c4$/.test(r.scenario)) {
      const c1 = by.get(r.scenario.replace(/c4$/, 'c1'))?.lakecrypt ?? null;
      r.target = '<= 2.0 CPU ms/MiB and <= the c1 row';
      r.met = v === null || c1 === null ? null : v <= 2.0 && v <= c1;
    } else if (r.scenario === 'range-1mib-huge-object-ms') {
      const s = by.get('range-1mib-small-object-ms')?.lakecrypt ?? null;
      r.target = '<= 1.2x range-1mib-small-object-ms (lakecrypt)';
      r.met = v === null || s === null ? null : v <= 1.2 * s;
    } else if (r.scenario === 'rewrap-headers-per-s') {
      r.target = '>= 5000 headers/s';
      r.met = v === null ? null : v >= 5000;
    } else if (r.scenario === 'rewrap-data-bytes-read') {
      r.target = '0 bytes';
      r.met = v === null ? null : v === 0;
    } else if (r.scenario === 'key-unwraps-per-1000-gets') {
      const a = ctx.unwrapsAllowedPer1000 ?? null;
      r.target = `<= 1 unwrap per KEK version per cache TTL${a !== null ? ` (here <= ${round(a)})` : ''}`;
      r.met = v === null || a === null ? null : v <= a;
    } else if (r.scenario === 'rss-peak-mib-5gib-upload') {
      r.target = '<= 96 MiB';
      r.met = v === null ? null : v <= 96;
    } else if (r.scenario === 'gateway-startup-ms' || r.scenario === 'gateway-restart-after-kill-ms') {
      r.target = '<= 1500 ms';
      r.met = v === null ? null : v <= 1500;
    } else if (r.scenario === 'cli-keys-list-ms') {
      r.target = '<= 300 ms';
      r.met = v === null ? null : v <= 300;
    } else if (/^crypto-pipeline-(encrypt|decrypt)$/.test(r.scenario)) {
      r.target = '>= 1 GB/s (953.7 MiB/s), at most 2 threads';
      r.met = v === null ? null : v >= GB_IN_MIB;
    }
  }
}

const fmt = (v: number | null | undefined) => (v === null || v === undefined ? '—' : String(round(v)));
const ratio = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? '—' : `${(a / b).toFixed(2)}x`);

export function markdown(r: Report): string {
  const lines = [
    `| scenario | unit | lakecrypt | minio | minio_sse | lakecrypt/minio | lakecrypt/minio_sse | target | status |`,
    `|---|---|--:|--:|--:|--:|--:|---|---|`,
  ];
  for (const x of r.results) {
    const status = x.met === undefined ? '' : x.met === null ? 'n/a' : x.met ? '**met**' : `**missed**${x.detail ? ` (${x.detail})` : ''}`;
    lines.push(`| ${x.scenario} | ${x.unit} | ${fmt(x.lakecrypt)} | ${fmt(x.minio)} | ${fmt(x.minio_sse)} | ${ratio(x.lakecrypt, x.minio)} | ${ratio(x.lakecrypt, x.minio_sse)} | ${x.target ?? ''} | ${status} |`);
  }
  const m = r.machine;
  return [
    `# lakecrypt benchmark${r.quick ? ' (quick)' : ''}`,
    '',
    `${r.date} — ${m.cpu} x${m.cores}, ${m.memGiB} GiB RAM, Node ${m.node}, load avg before/after ${m.loadBefore}/${m.loadAfter}.`,
    '',
    ...lines,
    '',
    '## Notes',
    '',
    ...r.notes.map((n) => `- ${n}`),
    '',
    'Charts: `throughput.svg`, `latency.svg`, `ops.svg` beside this file. Raw figures: `latest.json`.',
    '',
  ].join('\n');
}

const COLORS: Record<Col, string> = { lakecrypt: '#2f6fdf', minio: '#9a9a9a', minio_sse: '#e08a2c' };
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Grouped horizontal bar chart, one group per row, one bar per column with a value. */
export function barChart(title: string, unit: string, rows: Row[]): string {
  const W = 760;
  const labelW = 230;
  const bar = 12;
  const gap = 10;
  const top = 44;
  const chartW = W - labelW - 90;
  const max = Math.max(1e-9, ...rows.flatMap((r) => COLS.map((c) => r[c] ?? 0)));
  const groupH = (r: Row) => COLS.filter((c) => r[c] !== null).length * bar + gap;
  const H = top + rows.reduce((a, r) => a + groupH(r), 0) + 16;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="8" y="18" font-size="14" font-weight="bold">${esc(title)} (${esc(unit)})</text>`,
  ];
  COLS.forEach((c, i) => {
    out.push(`<rect x="${labelW + i * 110}" y="28" width="10" height="10" fill="${COLORS[c]}"/>`, `<text x="${labelW + i * 110 + 14}" y="37">${c}</text>`);
  });
  let y = top;
  for (const r of rows) {
    const cols = COLS.filter((c) => r[c] !== null);
    out.push(`<text x="${labelW - 6}" y="${y + (cols.length * bar) / 2 + 4}" text-anchor="end">${esc(r.scenario)}</text>`);
    for (const c of cols) {
      const v = r[c] as number;
      const w = Math.max(1, (v / max) * chartW);
      out.push(`<rect x="${labelW}" y="${y}" width="${w.toFixed(1)}" height="${bar - 2}" fill="${COLORS[c]}"/>`);
      out.push(`<text x="${(labelW + w + 4).toFixed(1)}" y="${y + bar - 3}">${round(v)}</text>`);
      y += bar;
    }
    y += gap;
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}

export function writeReport(dir: string, r: Report): string[] {
  const files: string[] = [];
  const w = (name: string, text: string) => {
    writeFileSync(path.join(dir, name), text);
    files.push(path.join(dir, name));
  };
  const rounded: Report = { ...r, results: r.results.map((x) => ({ ...x, lakecrypt: round(x.lakecrypt), minio: round(x.minio), minio_sse: round(x.minio_sse) })) };
  w('latest.json', JSON.stringify(rounded, null, 2) + '\n');
  w('latest.md', markdown(rounded));
  const pick = (f: (x: Row) => boolean) => rounded.results.filter((x) => f(x) && COLS.some((c) => x[c] !== null));
  // only rows with a peer figure: the single-column crypto/openssl rows would flatten every other bar
  w('throughput.svg', barChart('Throughput', 'MiB/s, higher is better', pick((x) => x.unit === 'MiB/s' && (x.minio !== null || x.minio_sse !== null))));
  // peers only here too: start-up and CLI times (bench/startup.ts) are seconds beside these milliseconds
  w('latency.svg', barChart('Latency', 'ms, lower is better', pick((x) => x.unit === 'ms' && (x.minio !== null || x.minio_sse !== null))));
  w('ops.svg', barChart('Small-object operations', 'ops/s, higher is better', pick((x) => x.unit === 'ops/s')));
  return files;
}
