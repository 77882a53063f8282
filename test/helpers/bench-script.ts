/**
 * Run one bench script (`node --import tsx bench/<name>.ts ... --out <tmp file>`) as the smoke tests of
 * test/bench do: returns the exit code, the end of stderr and the JSON it wrote. Register `stopBenchScripts` in
 * afterAll: on a time-out it takes a still-running script down with its servers (they go with its exit hooks).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTmpDir } from '../../tools/tmp.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const running = new Set<ChildProcess>();
const tmps: { cleanup(): void }[] = [];

export async function runBenchScript(script: string, args: string[]): Promise<{ code: number | null; stderr: string; json: unknown }> {
  const tmp = makeTmpDir('lakecrypt-bench-smoke-');
  tmps.push(tmp);
  const out = path.join(tmp.path, 'out.json');
  let stderr = '';
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args, '--out', out], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
    running.add(child);
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (c) => (running.delete(child), resolve(c)));
  });
  return { code, stderr: stderr.slice(-2000), json: existsSync(out) ? JSON.parse(readFileSync(out, 'utf8')) : undefined };
}

export function stopBenchScripts(): void {
  for (const c of running) if (c.exitCode === null) c.kill('SIGTERM');
  for (const t of tmps.splice(0)) t.cleanup();
}
