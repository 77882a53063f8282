/**
 * Keeps bench/hop.ts working (the small-GET hop floor quoted in bench/README.md): one short round through MinIO,
 * the TCP relay, the null gateway and lakecrypt, into a temp file. Every way must have returned the object's
 * exact bytes (the script throws otherwise) and produced figures. Nothing here is about speed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { makeTmpDir } from '../helpers/tmp.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const tmp = makeTmpDir('lakecrypt-bench-hop-');
let child: ChildProcess | undefined;
afterAll(() => {
  // on a timeout, take the script down with its MinIO, relays and gateway (they go with its exit hooks)
  if (child && child.exitCode === null) child.kill('SIGTERM');
  tmp.cleanup();
});

it('measures MinIO, a TCP relay, a null gateway and lakecrypt side by side', async () => {
  const out = path.join(tmp.path, 'hop.json');
  let stderr = '';
  const code = await new Promise<number | null>((resolve) => {
    child = spawn(process.execPath, ['--import', 'tsx', 'bench/hop.ts', '--rounds', '1', '--gets', '20', '--out', out], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', resolve);
  });
  expect(code, stderr.slice(-2000)).toBe(0);
  const j = JSON.parse(readFileSync(out, 'utf8')) as {
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
