/**
 * What the gateway prints when it starts, run as processes (the compiled build): the dashboard URL, a paste-able
 * `export AWS_...` line that works in a shell, the root secret only on the very first start (when credentials.json
 * is created), and a second gateway on a port in use says so in one line instead of a Node stack trace.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchGateway, type GatewayProcess } from '../../tools/gateway.ts';
import { makeTmpDir, type TmpDir } from '../../tools/tmp.ts';

let tmp: TmpDir;
beforeAll(() => {
  tmp = makeTmpDir('lakecrypt-banner-');
});
afterAll(() => tmp?.cleanup());

/** The banner's export line run by bash: what AWS clients started from that shell would see. */
function exported(output: string, env: Record<string, string> = {}): Record<string, string> {
  const line = /^\s*(export AWS_ACCESS_KEY_ID=.*)$/m.exec(output)?.[1];
  expect(line, output).toBeDefined();
  const out = execFileSync('bash', ['-c', `${line}; printf '%s\\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" "$AWS_DEFAULT_REGION" "$AWS_ENDPOINT_URL"`], {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
  });
  const [id, secret, region, endpoint] = out.split('\n');
  return { id: id!, secret: secret!, region: region!, endpoint: endpoint! };
}

const occurrences = (hay: string, needle: string) => hay.split(needle).length - 1;

describe('the start banner', () => {
  it('first start: dashboard URL, the secret once with a working export line; later starts never print it', async () => {
    const dataDir = path.join(tmp.path, 'first');
    const first = await launchGateway({ dataDir, generatedCredentials: true, quiet: true });
    let second: GatewayProcess | undefined;
    try {
      const out = first.output();
      expect(out).toContain(`  dashboard:     ${first.adminUrl}/dashboard`);
      const page = await fetch(`${first.adminUrl}/dashboard`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/text\/html/);
      await page.arrayBuffer();
      expect(out).toMatch(/secret key:\s+\S+ {3}\(generated now and stored 0600 in .*credentials\.json; printed on this first start only\)/);
      // once in the secret line, once in the export line: nowhere else
      expect(occurrences(out, first.secretKey)).toBe(2);
      expect(exported(out)).toEqual({ id: first.accessKey, secret: first.secretKey, region: 'us-east-1', endpoint: first.url });
      await first.stop();

      second = await launchGateway({ dataDir, generatedCredentials: true, quiet: true });
      const again = second.output();
      expect(second.secretKey).toBe(first.secretKey);
      expect(again).not.toContain(first.secretKey);
      expect(again).toContain(`secret key:    in ${path.join(dataDir, 'credentials.json')} (printed on the first start only)`);
      // the export line reads the secret from where it is kept: pasted, it still works
      expect(exported(again)).toEqual({ id: first.accessKey, secret: first.secretKey, region: 'us-east-1', endpoint: second.url });
      expect(again).toMatch(/Admin CLI: lakecrypt keys list/);
    } finally {
      await first.stop();
      await second?.stop();
    }
  });

  it('configured credentials are never printed; the export line names the variable that holds them', async () => {
    const gw = await launchGateway({ dataDir: path.join(tmp.path, 'configured'), quiet: true });
    try {
      const out = gw.output();
      expect(out).not.toContain(gw.secretKey);
      expect(out).toContain('secret key:    (as configured)');
      expect(exported(out, { LAKECRYPT_SECRET_KEY: gw.secretKey }).secret).toBe(gw.secretKey);
      expect(out).toContain(`Admin CLI: lakecrypt login --url ${gw.adminUrl}, then lakecrypt keys list`);
    } finally {
      await gw.stop();
    }
  });
});

describe('a port in use', () => {
  let running: GatewayProcess;
  beforeAll(async () => {
    running = await launchGateway({ dataDir: path.join(tmp.path, 'running'), quiet: true });
  });
  afterAll(async () => running?.stop());

  /** The output of a second gateway that cannot start (launchGateway rejects with it). */
  async function refusedStart(env: Record<string, string>): Promise<string> {
    try {
      const g = await launchGateway({ dataDir: path.join(tmp.path, 'second'), quiet: true, env });
      await g.stop();
    } catch (e) {
      return (e as Error).message;
    }
    throw new Error('the second gateway started');
  }

  it('the S3 port of a running gateway: one line naming the port and the setting, exit 1, no stack', async () => {
    const msg = await refusedStart({ LAKECRYPT_PORT: String(running.port) });
    expect(msg).toMatch(/exited early \(1\)/);
    const out = msg.slice(msg.indexOf('\n') + 1);
    expect(out.trim()).toBe(`lakecrypt: port ${running.port} in use (LAKECRYPT_PORT, the S3 API, on 127.0.0.1): is another lakecrypt running? Stop it, or choose another port`);
    expect(out).not.toMatch(/\n\s+at /);
  });

  it('the admin port: names LAKECRYPT_ADMIN_PORT', async () => {
    const msg = await refusedStart({ LAKECRYPT_ADMIN_PORT: String(running.adminPort) });
    expect(msg).toMatch(/exited early \(1\)/);
    expect(msg).toContain(`lakecrypt: port ${running.adminPort} in use (LAKECRYPT_ADMIN_PORT, the admin API, on 127.0.0.1)`);
    expect(msg).not.toMatch(/\n\s+at /);
    // the running one is untouched
    expect((await fetch(`${running.adminUrl}/healthz`)).status).toBe(200);
  });
});
