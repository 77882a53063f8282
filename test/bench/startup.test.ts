/**
 * Keeps bench/startup.ts working (one round, two CLI runs per variant): it writes startup.json in the shape
 * bench/lib/startup-figures.ts quotes into latest.json. Nothing here is about speed.
 */
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { startupRows, STARTUP_SCENARIOS, type StartupResult } from '../../bench/lib/startup-figures.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { runBenchScript, stopBenchScripts } from '../helpers/bench-script.ts';

afterAll(stopBenchScripts);

describe('bench/startup.ts', () => {
  it('measures the build and the sources, gateway and CLI, and its rows quote them', async () => {
    const r = await runBenchScript('bench/startup.ts', ['--rounds', '1', '--cli-runs', '2']);
    expect(r.code, r.stderr).toBe(0);
    const j = r.json as StartupResult;
    const positive = (xs: number[], n: number) => {
      expect(xs).toHaveLength(n);
      for (const x of xs) expect(x).toBeGreaterThan(0);
    };
    for (const k of ['gateway-startup-ms', 'gateway-startup-cpu-ms', 'gateway-restart-after-kill-ms'] as const) {
      for (const v of ['build', 'source'] as const) positive(j.results[k][v].samples, 1);
    }
    expect(Object.keys(j.results['cli-keys-list-ms']).sort()).toEqual(['direct', 'nodeFloor', 'source', 'wrapper']);
    for (const s of Object.values(j.results['cli-keys-list-ms'])) positive(s.samples, 2);
    expect(Object.keys(j.results['cli-keys-list-cpu-ms']).sort()).toEqual(['direct', 'nodeFloor', 'source', 'wrapper']);
    for (const s of Object.values(j.results['cli-keys-list-cpu-ms'])) positive(s.samples, 2);

    const tmp = makeTmpDir('lakecrypt-startup-rows-');
    const file = path.join(tmp.path, 'startup.json');
    writeFileSync(file, JSON.stringify(j));
    const q = startupRows(file);
    if (typeof q === 'string') throw new Error(q);
    expect(q.rows.map((x) => x.scenario)).toEqual([...STARTUP_SCENARIOS]);
    expect(q.rows.map((x) => x.lakecrypt)).toEqual([j.results['gateway-startup-ms'].build.median, j.results['gateway-restart-after-kill-ms'].build.median, j.results['cli-keys-list-ms'].wrapper!.median]);
    expect(q.note).toMatch(/^gateway-startup-ms, gateway-restart-after-kill-ms, cli-keys-list-ms: from bench\/startup\.ts/);
    tmp.cleanup();
  }, 600_000);
});
