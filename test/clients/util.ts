/**
 * Shared helpers for the real-client tests (test/clients/*.test.ts): spawn a client with a clean, private
 * environment, fail on non-zero exits and on integrity complaints in its output, make marked test files.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import type { S3Request } from '../../src/server/request.ts';
import { MARKER } from '../../tools/gateway.ts';

export { MARKER };

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout as bytes (for `mc cat`, `rclone cat` ...). */
  stdoutBuf: Buffer;
  cmd: string;
}

/**
 * An environment for a client process: PATH and locale only, HOME pointing at a private temp dir, so no
 * ~/.aws, ~/.s3cfg, rclone or mc config of the machine (nor AWS_* variables such as AWS_CA_BUNDLE, which
 * rclone refuses with a plain http client) leaks into a test.
 */
export function cleanEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  mkdirSync(home, { recursive: true });
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: home,
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    TMPDIR: home,
  };
  for (const k of ['PYENV_ROOT', 'PYENV_VERSION', 'PYTHONPATH', 'PYTHONHOME']) if (process.env[k]) env[k] = process.env[k]!;
  return { ...env, ...extra };
}

export function run(cmd: string, args: string[], opts: { env: Record<string, string>; cwd?: string; input?: string; timeoutMs?: number }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(t);
      const stdoutBuf = Buffer.concat(out);
      resolve({ code, stdout: stdoutBuf.toString(), stdoutBuf, stderr, cmd: [cmd, ...args].join(' ') });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Lines on a client's stderr that report an integrity problem or any warning. */
export const COMPLAINT = /md5|checksum|mismatch|warning|corrupt|differ/i;
/** On stdout (which carries JSON with Checksum* fields) only warnings and mismatches count. */
export const STDOUT_COMPLAINT = /warning|mismatch|corrupt|do not match|don't match/i;

/** Exit code 0 and no complaint lines (MD5, checksum, mismatch, WARNING ...) in the output. */
export function expectClean(r: RunResult, opts: { allow?: RegExp } = {}): RunResult {
  const show = () => `$ ${r.cmd}\nexit ${r.code}\n--- stdout\n${r.stdout.slice(-4000)}\n--- stderr\n${r.stderr.slice(-4000)}`;
  expect(r.code, show()).toBe(0);
  const allowed = (l: string) => opts.allow !== undefined && opts.allow.test(l);
  const bad = [
    ...r.stderr.split('\n').filter((l) => COMPLAINT.test(l) && !allowed(l)),
    ...r.stdout.split('\n').filter((l) => STDOUT_COMPLAINT.test(l) && !allowed(l)),
  ];
  expect(bad, show()).toEqual([]);
  return r;
}

/** Content that starts with a plaintext marker line (what the backend scan looks for), then random bytes. */
export function markedData(label: string, size: number): Buffer {
  const head = Buffer.from(`${MARKER} ${label}\n`);
  return Buffer.concat([head, randomBytes(Math.max(0, size - head.length))]).subarray(0, size);
}

export function writeFile(dir: string, name: string, data: Buffer): string {
  const p = path.join(dir, name);
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, data);
  return p;
}

export const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

export function expectSameFile(got: string, want: Buffer) {
  expect(existsSync(got), `${got} exists`).toBe(true);
  const data = readFileSync(got);
  expect(data.length).toBe(want.length);
  expect(md5(data)).toBe(md5(want));
}

export interface AccessRecord {
  op: string;
  method: string;
  bucket: string;
  key: string;
  status: number;
  range?: string;
  bytesOut: number;
  headers: Record<string, string | string[] | undefined>;
}

/** An `onRequestDone` hook for startTestGateway that records one line per request (the access log). */
export function accessLog(): { records: AccessRecord[]; hook: (r: S3Request, status: number) => void } {
  const records: AccessRecord[] = [];
  return {
    records,
    hook: (r, status) => {
      records.push({
        op: r.op,
        method: r.method,
        bucket: r.bucket,
        key: r.key,
        status,
        range: r.header('range'),
        bytesOut: r.bytesOut,
        headers: r.req.headers,
      });
    },
  };
}
