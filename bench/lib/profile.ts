/** Summarise a V8 .cpuprofile (node --cpu-prof): top functions by self time. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO } from './targets.ts';

interface CpuNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
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
}

export function summariseProfile(file: string, top = 20): { totalMs: number; idleMs: number; lines: ProfileLine[] } {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, { fn: string; where: string; us: number }>();
  let total = 0;
  let idle = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]);
    const dt = p.timeDeltas[i] ?? 0;
    if (!n) continue;
    total += dt;
    const fn = n.callFrame.functionName || '(anonymous)';
    if (fn === '(idle)') {
      idle += dt;
      continue;
    }
    let url = n.callFrame.url.replace(/^file:\/\//, '');
    if (url.startsWith(REPO)) url = path.relative(REPO, url);
    url = url.replace(/^.*node_modules\//, 'node_modules/');
    const where = url ? `${url}:${n.callFrame.lineNumber + 1}` : '';
    const k = `${fn}@${where}`;
    const e = self.get(k) ?? { fn, where, us: 0 };
    e.us += dt;
    self.set(k, e);
  }
  const busy = Math.max(1, total - idle);
  const lines = [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((e) => ({ fn: e.fn, where: e.where, selfMs: Math.round(e.us / 1000), pct: Math.round((e.us / busy) * 1000) / 10 }));
  return { totalMs: Math.round(total / 1000), idleMs: Math.round(idle / 1000), lines };
}

export function profileMarkdown(title: string, s: ReturnType<typeof summariseProfile>): string {
  return [
    `### ${title}`,
    '',
    `Sampled ${s.totalMs} ms, idle ${s.idleMs} ms; % of non-idle time.`,
    '',
    '| self ms | % | function | where |',
    '|--:|--:|---|---|',
    ...s.lines.map((l) => `| ${l.selfMs} | ${l.pct} | \`${l.fn}\` | ${l.where} |`),
    '',
  ].join('\n');
}
