/**
 * Keeps bench/floor.ts working (the large-transfer floors quoted in bench/README.md): one short round of PUT and
 * GET through MinIO, MinIO SSE, both TCP relays, both null gateways, the native relays (bench/lib/native-relay.ts)
 * and lakecrypt, into a temp file. The script
 * reads every way's object back and throws unless it matches what was written; here every way must have produced
 * figures. Nothing here is about speed.
 */
import { afterAll, expect, it } from 'vitest';
import { runBenchScript, stopBenchScripts } from '../helpers/bench-script.ts';

afterAll(stopBenchScripts);

it('moves one object through MinIO, MinIO SSE, the relays, the null gateways and lakecrypt', async () => {
  const { code, stderr, json } = await runBenchScript('bench/floor.ts', ['--rounds', '1', '--mib', '8']);
  expect(code, stderr).toBe(0);
  type Row = { mibps: number; vsMinio: number; vsMinioSse: number; middleCpuMsPerMib: number | null; machineCpuMsPerMib: number };
  const j = json as { objectBytes: number; rounds: number; result: Record<'put' | 'get', Record<string, Row>> };
  expect(j).toMatchObject({ objectBytes: 8 * 1024 * 1024, rounds: 1 });
  for (const op of ['put', 'get'] as const) {
    expect(Object.keys(j.result[op])).toEqual(['minio', 'minio_sse', 'tcp-relay', 'tcp-relay-aes', 'null-gateway', 'null-gateway-aes', 'tcp-native', 'tcp-native-aes', 'native', 'native-aes', 'native-seal', 'lakecrypt']);
    expect(j.result[op].minio!.vsMinio).toBe(1);
    expect(j.result[op].minio_sse!.vsMinioSse).toBe(1);
    for (const [name, r] of Object.entries(j.result[op])) {
      expect(r.mibps, `${op} ${name}`).toBeGreaterThan(0);
      expect(r.vsMinio, `${op} ${name}`).toBeCloseTo(r.mibps / j.result[op].minio!.mibps, 1);
      expect(r.machineCpuMsPerMib, `${op} ${name}`).toBeGreaterThanOrEqual(0);
      if (name.startsWith('minio')) expect(r.middleCpuMsPerMib).toBeNull();
      else expect(r.middleCpuMsPerMib, `${op} ${name}`).toBeGreaterThanOrEqual(0);
    }
  }
}, 240_000);
