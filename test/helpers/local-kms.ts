/**
 * Start nsmithuk/local-kms (an AWS KMS API emulator) for the `awskms` CMK tests.
 *
 *   const kms = await startLocalKms();      // free loopback port, temp data dir (persists across kill()/start())
 *   kms.endpoint, kms.region, kms.credentials
 *   const keyId = await kms.createKey();    // a symmetric key, via the SDK
 *   await kms.client.send(new DisableKeyCommand({ KeyId }));   // the customer's own calls
 *   await kms.kill(); await kms.start();    // outage
 *   await kms.stop();
 *
 * local-kms enforces DisableKey / pending deletion and encryption contexts; it checks no SigV4 signatures or IAM
 * policies (any credentials are accepted). The binary is looked up in $LOCAL_KMS_BIN,
 * ${LAKECRYPT_CACHE:-~/.cache/lakecrypt}/bin/local-kms, then $PATH (scripts/test-deps.sh builds it with go install).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { CreateKeyCommand, KMSClient, ListKeysCommand } from '@aws-sdk/client-kms';
import { cacheDir } from './minio.ts';
import { freePort } from './ports.ts';
import { makeTmpDir } from './tmp.ts';

export interface LocalKmsHandle {
  endpoint: string;
  port: number;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** An SDK client for the customer's own calls (DisableKey, EnableKey...). */
  client: KMSClient;
  readonly pid: number | undefined;
  logs(): string;
  createKey(description?: string): Promise<string>;
  stop(): Promise<void>;
  kill(): Promise<void>;
  start(): Promise<void>;
}

export function localKmsBinary(): string {
  const cands = [process.env.LOCAL_KMS_BIN, path.join(cacheDir(), 'bin', 'local-kms')];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) if (dir) cands.push(path.join(dir, 'local-kms'));
  for (const c of cands) if (c && existsSync(c)) return c;
  throw new Error('local-kms not found: run `bash scripts/test-deps.sh` (go install github.com/nsmithuk/local-kms) or set LOCAL_KMS_BIN');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const children = new Set<ChildProcess>();
let hooked = false;

export async function startLocalKms(): Promise<LocalKmsHandle> {
  const bin = localKmsBinary();
  const tmp = makeTmpDir('lakecrypt-localkms-');
  const data = path.join(tmp.path, 'data');
  mkdirSync(data, { recursive: true });
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const region = 'eu-west-2';
  const credentials = { accessKeyId: 'AKIDLOCALKMSTEST', secretAccessKey: 'local-kms-accepts-any-secret' };
  const client = new KMSClient({ endpoint, region, credentials, maxAttempts: 1 });
  let child: ChildProcess | null = null;
  let out: string[] = [];

  const launch = async () => {
    out = [];
    const c = spawn(bin, [], {
      env: { ...process.env, PORT: String(port), KMS_DATA_PATH: data, KMS_REGION: region, KMS_ACCOUNT_ID: '111122223333' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(c);
    c.once('exit', () => children.delete(c));
    if (!hooked) {
      hooked = true;
      process.once('exit', () => {
        for (const ch of children) ch.kill('SIGKILL');
      });
    }
    child = c;
    const keep = (d: Buffer) => {
      out.push(d.toString());
      if (out.length > 200) out.splice(0, out.length - 200);
    };
    c.stdout!.on('data', keep);
    c.stderr!.on('data', keep);
    let exited = false;
    c.once('exit', () => (exited = true));
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (exited) throw new Error(`local-kms exited during startup (port ${port}):\n${out.join('')}`);
      try {
        await client.send(new ListKeysCommand({ Limit: 1 }));
        return;
      } catch {
        /* not yet */
      }
      await sleep(100);
    }
    throw new Error(`local-kms not ready on ${endpoint}:\n${out.join('')}`);
  };

  const terminate = async (sig: NodeJS.Signals) => {
    const c = child;
    if (!c) return;
    child = null;
    if (c.exitCode === null && c.signalCode === null) {
      const done = new Promise((r) => c.once('exit', r));
      c.kill(sig);
      await Promise.race([done, sleep(10_000)]);
      if (c.exitCode === null && c.signalCode === null) {
        c.kill('SIGKILL');
        await done;
      }
    }
  };

  await launch();
  return {
    endpoint,
    port,
    region,
    credentials,
    client,
    get pid() {
      return child?.pid;
    },
    logs: () => out.join(''),
    async createKey(description = 'lakecrypt test key') {
      const r = await client.send(new CreateKeyCommand({ Description: description }));
      return r.KeyMetadata!.KeyId!;
    },
    async stop() {
      await terminate('SIGTERM');
      client.destroy();
      tmp.cleanup();
    },
    async kill() {
      await terminate('SIGKILL');
    },
    async start() {
      if (child) return;
      for (let i = 0; ; i++) {
        try {
          await launch();
          return;
        } catch (e) {
          await terminate('SIGKILL');
          if (i >= 20) throw e;
          await sleep(250);
        }
      }
    },
  };
}
