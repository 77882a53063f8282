/**
 * Keeps bench/hop.ts working (the small-GET hop floor quoted in bench/README.md): one short round through MinIO,
 * the TCP relay, the null gateway and lakecrypt, into a temp file. Every way must have returned the object's
 * exact bytes (the script throws otherwise) and produced figures. Nothing here is about speed.
 */
import { afterAll, expect, it } from 'vitest';
import { runBenchScript, stopBenchScripts } from '../helpers/bench-script.ts';

afterAll(stopBenchScripts);

it('measures MinIO, a TCP relay, a null gateway and lakecrypt side by side', async () => {
  const { code, stderr, json } = await runBenchScript('bench/hop.ts', ['--rounds', '1', '--gets', '20']);
  expect(code, stderr).toBe(0);
  const j = json as {
    objectBytes: number;
    rounds: number;
    getsPerRound: number;
    result: Record<string, { p50Ms: number; p99Ms: number; middleCpuMsPerGet: number | null; machineCpuMsPerGet: number }>;
  };
  expect(j).toMatchObject({ objectBytes: 4096, rounds: 1, getsPerRound: 20 });
  expect(Object.keys(j.result)).toEqual(['minio', 'tcp-relay', 'null-gateway', 'lakecrypt']);
  for (const [name, r] of Object.entries(j.result)) {
    expect(r.p50Ms, name).toBeGreaterThan(0);
    expect(r.p99Ms, name).toBeGreaterThanOrEqual(r.p50Ms);
    expect(r.machineCpuMsPerGet, name).toBeGreaterThan(0);
    if (name === 'minio') expect(r.middleCpuMsPerGet).toBeNull();
    else expect(r.middleCpuMsPerGet, name).toBeGreaterThanOrEqual(0);
  }
}, 180_000);
