/**
 * bench/results/startup.json (bench/startup.ts) as rows of latest.json: the compiled build's figures in the
 * lakecrypt column, the sources through tsx (how it ran before) in the note beside them.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Row } from './report.ts';

interface Summary {
  median: number;
  p90: number;
  samples: number[];
}

export interface StartupResult {
  date: string;
  machine: { cpu: string; cores: number; node: string; loadBefore: number; loadAfter: number };
  rounds: number;
  cliRuns: number;
  results: {
    'gateway-startup-ms': { build: Summary; source: Summary };
    'gateway-startup-cpu-ms': { build: Summary; source: Summary };
    'gateway-restart-after-kill-ms': { build: Summary; source: Summary };
    'cli-keys-list-ms': Record<string, Summary>;
    'cli-keys-list-cpu-ms': Record<string, Summary>;
  };
}

export const STARTUP_SCENARIOS = ['gateway-startup-ms', 'gateway-restart-after-kill-ms', 'cli-keys-list-ms'] as const;

const row = (scenario: string, v: number | null): Row => ({ scenario, unit: 'ms', lakecrypt: v, minio: null, minio_sse: null });

/** The rows and the note that explains them, or why there are none. */
export function startupRows(file: string): { rows: Row[]; note: string } | string {
  if (!existsSync(file)) return `${file} missing (node --import tsx bench/startup.ts writes it)`;
  const j = JSON.parse(readFileSync(file, 'utf8')) as StartupResult;
  const r = j.results;
  const s = (x: Summary) => `${x.median} ms (p90 ${x.p90})`;
  const cli = r['cli-keys-list-ms'];
  const cpu = r['cli-keys-list-cpu-ms'];
  const both = (k: string) => (cli[k] ? `${s(cli[k])}, CPU ${cpu[k] ? s(cpu[k]) : '-'}` : '-');
  return {
    rows: [
      row('gateway-startup-ms', r['gateway-startup-ms'].build.median),
      row('gateway-restart-after-kill-ms', r['gateway-restart-after-kill-ms'].build.median),
      row('cli-keys-list-ms', cli.wrapper?.median ?? null),
    ],
    note:
      `gateway-startup-ms, gateway-restart-after-kill-ms, cli-keys-list-ms: from bench/startup.ts at ${j.date} (load avg ${j.machine.loadBefore}-${j.machine.loadAfter}; ` +
      `${j.rounds} start-ups per variant, ${j.cliRuns} CLI runs per variant, interleaved), not re-measured in this run. ` +
      `Start-up, spawn to "endpoints printed" on a fresh fs data dir: compiled build ${s(r['gateway-startup-ms'].build)}, CPU ${s(r['gateway-startup-cpu-ms'].build)}; ` +
      `sources through tsx (before the build) ${s(r['gateway-startup-ms'].source)}, CPU ${s(r['gateway-startup-cpu-ms'].source)}. ` +
      `Back after kill -9 (same data dir): build ${s(r['gateway-restart-after-kill-ms'].build)}, tsx ${s(r['gateway-restart-after-kill-ms'].source)}. ` +
      `lakecrypt keys list: bin/lakecrypt ${both('wrapper')}; the built CLI alone ${both('direct')}; ` +
      `through tsx (before) ${both('source')}; node -e 0 alone ${both('nodeFloor')}.`,
  };
}
