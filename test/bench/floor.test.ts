/**
 * Keeps bench/floor.ts working (the large-transfer floors quoted in bench/README.md): one short round of PUT and
 * GET through MinIO, MinIO SSE, both TCP relays, both null gateways and lakecrypt, into a temp file. The script
 * reads every way's object back and throws unless it matches what was written; here every way must have produced
 * figures. Nothing here is about speed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { makeTmpDir } from '../helpers/tmp.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const tmp = makeTmpDir('lakecrypt-bench-floor-');
let child: ChildProcess | undefined;
afterAll(() => {
  // on a timeout, take the script down with its MinIO, relays and gateway (they go with its exit hooks)
  if (child && child.exitCode === null) child.kill('SIGTERM');
  tmp.cleanup();
});

it('moves one object through MinIO, MinIO SSE, the relays, the null gateways and lakecrypt', async () => {
  const out = path.join(tmp.path, 'floor.json');
  let stderr = '';
  const code = await new Promise<number | null>((resolve) => {
    child = spawn(process.execPath, ['--import', 'tsx', 'bench/floor.ts', '--rounds', '1', '--mib', '8', '--out', out], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', resolve);
  });
  expect(code, stderr.slice(-2000)).toBe(0);
  type Row = { mibps: number; vsMinio: number; vsMinioSse: number; middleCpuMsPerMib: number | null; machineCpuMsPerMib: number };
  const j = JSON.parse(readFileSync(out, 'utf8')) as { objectBytes: number; rounds: number; result: Record<'put' | 'get', Record<string, Row>> };
  expect(j).toMatchObject({ objectBytes: 8 * 1024 * 1024, rounds: 1 });
  for (const op of ['put', 'get'] as const) {
    expect(Object.keys(j.result[op])).toEqual(['minio', 'minio_sse', 'tcp-relay', 'tcp-relay-aes', 'null-gateway', 'null-gateway-aes', 'lakecrypt']);
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
