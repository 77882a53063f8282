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
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { CreateKeyCommand, KMSClient, ListKeysCommand } from '@aws-sdk/client-kms';
import { freePort } from '../../tools/ports.ts';
import { findBinary, restartable, startProcess } from '../../tools/process.ts';
import { makeTmpDir } from '../../tools/tmp.ts';

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
  const bin = findBinary('local-kms');
  if (!bin) throw new Error('local-kms not found: run `bash scripts/test-deps.sh` (go install github.com/nsmithuk/local-kms) or set LOCAL_KMS_BIN');
  return bin;
}

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
  const server = restartable(
    () =>
      startProcess(bin, [], {
        env: { ...process.env, PORT: String(port), KMS_DATA_PATH: data, KMS_REGION: region, KMS_ACCOUNT_ID: '111122223333' },
        maxOutput: 64 << 10,
      }),
    (p) => p.waitUntil(() => client.send(new ListKeysCommand({ Limit: 1 })), { timeoutMs: 60_000, intervalMs: 100, what: `local-kms on ${endpoint}` }),
  );
  await server.start();
  return {
    endpoint,
    port,
    region,
    credentials,
    client,
    get pid() {
      return server.pid;
    },
    logs: () => server.logs(),
    async createKey(description = 'lakecrypt test key') {
      const r = await client.send(new CreateKeyCommand({ Description: description }));
      return r.KeyMetadata!.KeyId!;
    },
    async stop() {
      await server.stop('SIGTERM');
      client.destroy();
      tmp.cleanup();
    },
    kill: () => server.stop('SIGKILL'),
    start: () => server.start({ retries: 20, delayMs: 250 }),
  };
}
