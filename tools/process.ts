/**
 * A child process a test or benchmark depends on (MinIO, the gateway, OpenBao, local-kms, a relay): spawned,
 * killed at this process's exit, its stdout+stderr kept, and the one way to wait for it to be ready, either
 * until it printed something or until a probe answers.
 *
 *   const p = startProcess(bin, args, { env });
 *   const m = await p.waitForOutput(/listening (\d+)/);      // or: await p.waitUntil(() => probe(), { timeoutMs })
 *   p.output(); await p.stop();                              // SIGTERM, SIGKILL after the grace time
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pollUntil, sleep, type PollOptions, type Truthy } from './wait.ts';

/** The repository root. */
export const ROOT = path.resolve(import.meta.dirname, '..');

export function cacheDir(): string {
  return process.env.LAKECRYPT_CACHE ?? path.join(os.homedir(), '.cache', 'lakecrypt');
}

/**
 * `name`'s binary: $<NAME>_BIN, ${LAKECRYPT_CACHE:-~/.cache/lakecrypt}/bin/<name>, $PATH, then where `go install`
 * puts it ($GOBIN, then the bin of each $GOPATH entry, ~/go/bin when unset): a Go tool built on this machine is found even
 * when scripts/test-deps.sh has not copied it into the cache and Go's bin directory is not on $PATH.
 */
export function findBinary(name: string): string | null {
  const candidates = [process.env[`${name.toUpperCase().replace(/-/g, '_')}_BIN`], path.join(cacheDir(), 'bin', name)];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) if (dir) candidates.push(path.join(dir, name));
  if (process.env.GOBIN) candidates.push(path.join(process.env.GOBIN, name));
  const gopath = process.env.GOPATH ? process.env.GOPATH.split(path.delimiter).filter(Boolean) : [path.join(os.homedir(), 'go')];
  for (const dir of gopath) candidates.push(path.join(dir, 'bin', name));
  for (const c of candidates) if (c && existsSync(c)) return c;
  return null;
}

export interface StartProcessOptions {
  cwd?: string;
  /** The whole environment of the child (callers merge process.env). */
  env?: NodeJS.ProcessEnv;
  /** Keep at most this many characters of output (the last ones; default 4 MiB). */
  maxOutput?: number;
  /** Let the child's stderr through to ours instead of keeping it. */
  inheritStderr?: boolean;
}

export interface RunningProcess {
  child: ChildProcess;
  pid: number;
  /** stdout + stderr so far. */
  output(): string;
  running(): boolean;
  /** The exit code (null after a signal). */
  exited: Promise<number | null>;
  /** Resolve with the match once the output matches `pattern`; reject when the process ends first or after `timeoutMs` (default 60 s). */
  waitForOutput(pattern: RegExp, o?: { timeoutMs?: number; what?: string }): Promise<RegExpExecArray>;
  /** pollUntil(probe), giving up at once (with the output) when the process exits. */
  waitUntil<T>(probe: () => T | Promise<T>, o?: PollOptions): Promise<Truthy<T>>;
  /** Send `signal` (SIGTERM) and wait for the exit; SIGKILL after `graceMs` (default 15 s). */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | null>;
  /** SIGKILL (a crash) and wait. */
  kill(): Promise<number | null>;
}

const live = new Set<ChildProcess>();
let hooked = false;

export function startProcess(bin: string, args: string[], o: StartProcessOptions = {}): RunningProcess {
  const max = o.maxOutput ?? 4 << 20;
  const child = spawn(bin, args, { cwd: o.cwd, env: o.env ?? process.env, stdio: ['ignore', 'pipe', o.inheritStderr ? 'inherit' : 'pipe'] });
  live.add(child);
  if (!hooked) {
    hooked = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  let out = '';
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > max) out = out.slice(-max);
  };
  child.stdout!.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      live.delete(child);
      resolve(code);
    }),
  );
  // 'close', not 'exit': by then stdout/stderr are drained, so an error carries the process's last words.
  let closed = false;
  const closedP = new Promise<void>((resolve) => child.once('close', () => ((closed = true), resolve())));
  const running = () => child.exitCode === null && child.signalCode === null;
  const name = path.basename(bin);

  return {
    child,
    pid: child.pid!,
    output: () => out,
    running,
    exited,
    waitForOutput(pattern, w = {}) {
      const timeoutMs = w.timeoutMs ?? 60_000;
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = pattern.exec(out);
          if (!m) return;
          cleanup();
          resolve(m);
        };
        const timer = setTimeout(() => (cleanup(), reject(new Error(`${w.what ?? name} did not print ${pattern} within ${timeoutMs} ms:\n${out}`))), timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          child.stdout!.off('data', check);
          child.stderr?.off('data', check);
        };
        child.stdout!.on('data', check);
        child.stderr?.on('data', check);
        void closedP.then(() => {
          if (pattern.exec(out)) return check();
          cleanup();
          reject(new Error(`${w.what ?? name} exited early (${child.exitCode ?? child.signalCode}) before printing ${pattern}:\n${out}`));
        });
        check();
      });
    },
    waitUntil(probe, p = {}) {
      return pollUntil(probe, { what: name, ...p, giveUpIf: () => (closed || !running() ? `${p.what ?? name} exited (${child.exitCode ?? child.signalCode}):\n${out}` : p.giveUpIf?.()) });
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 15_000) {
      if (running()) child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
    async kill() {
      if (running()) child.kill('SIGKILL');
      return exited;
    },
  };
}

export interface Restartable {
  /** The running process's pid (undefined while stopped). */
  readonly pid: number | undefined;
  /** Output of the running process, or of the last one. */
  logs(): string;
  /** Launch unless running; a failed launch is killed and tried again `retries` times after `delayMs` (the old socket may linger). */
  start(o?: { retries?: number; delayMs?: number; beforeRetry?: () => Promise<void> }): Promise<void>;
  /** Stop with `signal` (SIGKILL after 10 s); SIGKILL = a crash. */
  stop(signal: NodeJS.Signals): Promise<void>;
  readonly running: boolean;
}

/**
 * A server that outage tests kill and start again (MinIO, OpenBao, local-kms): `launch` spawns it, `ready`
 * waits until it serves (usually `p.waitUntil(probe)`).
 */
export function restartable(launch: () => RunningProcess | Promise<RunningProcess>, ready: (p: RunningProcess) => Promise<unknown>): Restartable {
  let proc: RunningProcess | null = null;
  let last = '';
  const stop = async (signal: NodeJS.Signals) => {
    const p = proc;
    proc = null;
    if (!p) return;
    last = p.output();
    await p.stop(signal, 10_000);
  };
  return {
    get pid() {
      return proc?.pid;
    },
    get running() {
      return proc !== null;
    },
    logs: () => proc?.output() ?? last,
    stop,
    async start(o = {}) {
      if (proc) return;
      for (let i = 0; ; i++) {
        try {
          proc = await launch();
          await ready(proc);
          return;
        } catch (e) {
          await stop('SIGKILL');
          if (i >= (o.retries ?? 0)) throw e;
          await (o.beforeRetry ?? (() => sleep(o.delayMs ?? 250)))();
        }
      }
    },
  };
}
