/**
 * The CLI as a user runs it: `bin/lakecrypt` (the wrapper a PATH entry or `npm link` reaches, running the compiled
 * build) in a child process, with an environment free of the test runner's LAKECRYPT_* variables and a HOME and
 * profile directory of its own, so no file of the machine's user is read or written.
 */
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from '../../tools/gateway.ts';

export const LAKECRYPT_BIN = path.join(ROOT, 'bin', 'lakecrypt');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** process.env without any LAKECRYPT_ variable, HOME under `home` (created), and `extra` on top (undefined removes). */
export function userEnv(home: string, extra: Record<string, string | undefined> = {}): Record<string, string> {
  mkdirSync(home, { recursive: true });
  const env: Record<string, string | undefined> = { ...process.env, NODE_OPTIONS: '', HOME: home, XDG_CONFIG_HOME: undefined };
  for (const k of Object.keys(env)) if (k.startsWith('LAKECRYPT_')) delete env[k];
  Object.assign(env, extra);
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

/** `lakecrypt ...args` with exactly `env`, in `cwd`; `input` is written to its stdin. */
export function lakecrypt(args: string[], env: Record<string, string>, o: { cwd?: string; input?: string } = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = execFile(LAKECRYPT_BIN, args, { env, cwd: o.cwd ?? ROOT, timeout: 120_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    child.stdin?.end(o.input ?? '');
  });
}

/** The one JSON error line a failed `--json` command writes on stderr. */
export function jsonError(r: CliRun): { code: string; message: string } {
  const lines = r.stderr.trim().split('\n');
  if (lines.length !== 1) throw new Error(`expected one stderr line, got:\n${r.stderr}`);
  const doc = JSON.parse(lines[0]) as { error?: { code?: unknown; message?: unknown } };
  if (typeof doc.error?.code !== 'string' || typeof doc.error.message !== 'string' || Object.keys(doc).length !== 1 || Object.keys(doc.error).length !== 2) {
    throw new Error(`not {"error":{"code","message"}}: ${lines[0]}`);
  }
  return doc.error as { code: string; message: string };
}
