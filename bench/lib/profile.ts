/** Summarise a V8 .cpuprofile (node --cpu-prof): top functions by self time. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO } from './targets.ts';

interface CpuNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: CpuNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileLine {
  fn: string;
  where: string;
  selfMs: number;
  pct: number;
  /** The caller that accounts for most of this function's self time. */
  caller: string;
}

const frameName = (n: CpuNode | undefined): { fn: string; where: string } => {
  if (!n) return { fn: '', where: '' };
  const fn = n.callFrame.functionName || '(anonymous)';
  let url = n.callFrame.url.replace(/^file:\/\//, '');
  if (url.startsWith(REPO)) url = path.relative(REPO, url);
  url = url.replace(/^.*node_modules\//, 'node_modules/');
  return { fn, where: url ? `${url}:${n.callFrame.lineNumber + 1}` : '' };
};

/**
 * Self time per function. `skipMs`: ignore samples in the first skipMs of the profile (process start-up and
 * module loading, which --cpu-prof records too).
 */
/** Where a frame belongs, for a coarse breakdown: src/<dir>, workers, an npm package, node:<area>, native. */
export function categoryOf(fn: string, where: string): string {
  if (fn.startsWith('(') && fn !== '(anonymous)') return fn; // (garbage collector), (program)
  if (!where) return 'native (C++ bindings: socket writes, crypto, buffers)';
  const m = /^node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(where);
  if (m) return `npm ${m[1].startsWith('@aws-sdk') || m[1].startsWith('@smithy') ? '@aws-sdk/@smithy (backend S3 client)' : m[1]}`;
  if (where.startsWith('src/')) return where.split('/').slice(0, 2).join('/');
  if (where.startsWith('workers/')) return 'workers/';
  const n = /^node:(?:internal\/)?([a-z_]+)/.exec(where);
  if (n) return `node:${n[1]}`;
  return where.split(':')[0];
}

export function summariseProfile(file: string, top = 20, skipMs = 0): { totalMs: number; idleMs: number; lines: ProfileLine[]; categories: { name: string; pct: number }[] } {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, { fn: string; where: string; us: number; callers: Map<string, number> }>();
  let total = 0;
  let idle = 0;
  let clock = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    clock += dt;
    if (clock < skipMs * 1000) continue;
    const n = byId.get(p.samples[i]);
    if (!n) continue;
    total += dt;
    const { fn, where } = frameName(n);
    if (fn === '(idle)') {
      idle += dt;
      continue;
    }
    const k = `${fn}@${where}`;
    const e = self.get(k) ?? { fn, where, us: 0, callers: new Map<string, number>() };
    e.us += dt;
    const pf = frameName(byId.get(parent.get(n.id) ?? -1));
    const ck = pf.fn ? `${pf.fn} ${pf.where}`.trim() : '';
    e.callers.set(ck, (e.callers.get(ck) ?? 0) + dt);
    self.set(k, e);
  }
  const busy = Math.max(1, total - idle);
  const lines = [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((e) => ({
      fn: e.fn,
      where: e.where,
      selfMs: Math.round(e.us / 1000),
      pct: Math.round((e.us / busy) * 1000) / 10,
      caller: [...e.callers.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '',
    }));
  const cats = new Map<string, number>();
  for (const e of self.values()) {
    const c = categoryOf(e.fn, e.where);
    cats.set(c, (cats.get(c) ?? 0) + e.us);
  }
  const categories = [...cats.entries()].sort((a, b) => b[1] - a[1]).slice(0, 10).map(([name, us]) => ({ name, pct: Math.round((us / busy) * 1000) / 10 }));
  return { totalMs: Math.round(total / 1000), idleMs: Math.round(idle / 1000), lines, categories };
}

export function profileMarkdown(title: string, s: ReturnType<typeof summariseProfile>): string {
  return [
    `### ${title}`,
    '',
    `Sampled ${s.totalMs} ms after start-up, idle ${s.idleMs} ms; % of non-idle time.`,
    '',
    `By area: ${s.categories.map((c) => `${c.name} ${c.pct}%`).join(', ')}.`,
    '',
    '| self ms | % | function | where | main caller |',
    '|--:|--:|---|---|---|',
    ...s.lines.map((l) => `| ${l.selfMs} | ${l.pct} | \`${l.fn}\` | ${l.where} | ${l.caller} |`),
    '',
  ].join('\n');
}
