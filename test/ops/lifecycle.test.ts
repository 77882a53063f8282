import { request } from 'node:http';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { pollUntil } from '../../tools/wait.ts';
import { describe, it, expect, afterAll } from 'vitest';
import { CreateBucketCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { PassThrough } from 'node:stream';
import { launchGateway, type GatewayProcess } from '../../tools/gateway.ts';
import { startMinio } from '../../tools/minio.ts';

const client = (gw: GatewayProcess) =>
  new S3Client({
    endpoint: gw.url,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: gw.accessKey, secretAccessKey: gw.secretKey },
    maxAttempts: 1,
  });

const get = (url: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(url, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });

describe('process lifecycle', () => {
  const running: GatewayProcess[] = [];
  afterAll(async () => {
    for (const g of running) await g.kill();
  });

  it('SIGTERM: stops accepting, lets the in-flight upload finish, exits 0', async () => {
    const gw = await launchGateway({ env: { LAKECRYPT_SHUTDOWN_GRACE_MS: '15000' } });
    running.push(gw);
    const s3 = client(gw);
    await s3.send(new CreateBucketCommand({ Bucket: 'drain' }));
    // A slow upload: the body trickles in while the signal arrives.
    const body = new PassThrough();
    const chunk = Buffer.alloc(256 * 1024, 7);
    const upload = s3.send(
      new (await import('@aws-sdk/client-s3')).PutObjectCommand({ Bucket: 'drain', Key: 'slow', Body: body, ContentLength: chunk.length * 8 }),
    );
    for (let i = 0; i < 4; i++) {
      body.write(chunk);
      await new Promise((r) => setTimeout(r, 100));
    }
    gw.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    // New connections are refused once the listener is closed.
    await expect(get(`${gw.url}/healthz`)).rejects.toThrow();
    for (let i = 0; i < 4; i++) {
      body.write(chunk);
      await new Promise((r) => setTimeout(r, 50));
    }
    body.end();
    const res = await upload;
    expect(res.ETag).toBeTruthy();
    expect(await gw.exited).toBe(0);
    expect(gw.output()).toContain('shutting down');
  });

  it('readiness fails when the backend or the CMK provider is unreachable, liveness stays up', async () => {
    const minio = await startMinio();
    const gw = await launchGateway({
      env: { LAKECRYPT_BACKEND: 's3', LAKECRYPT_S3_ENDPOINT: minio.endpoint, LAKECRYPT_S3_ACCESS_KEY: minio.accessKey, LAKECRYPT_S3_SECRET_KEY: minio.secretKey },
    });
    running.push(gw);
    try {
      expect((await get(`${gw.url}/readyz`)).status).toBe(200);
      expect((await get(`${gw.adminUrl}/readyz`)).status).toBe(200);
      await minio.kill();
      // readiness answers from cached state: unready once the revocation epoch is unconfirmed for over the bound
      const down = await pollUntil(async () => {
        const r = await get(`${gw.url}/readyz`);
        return r.status === 503 && r;
      }, { what: 'unready with the backend down' });
      expect(JSON.parse(down.body).failing).toBe('epoch');
      expect((await get(`${gw.url}/healthz`)).status).toBe(200);
      await minio.start();
      await pollUntil(async () => (await get(`${gw.url}/readyz`)).status === 200, { timeoutMs: 30_000, what: 'ready again' });
      // A CMK whose key material cannot be read is not ready either (seen by the next background check, 5 s).
      rmSync(path.join(gw.dataDir, 'cmk', 'default', 'v1.key'));
      // Wait for the CMK to be named, not for any 503: on a loaded machine one epoch poll can take longer than the
      // 1 s bound, and /readyz then names `epoch` first for that moment (a clean-clone CI saw exactly that).
      const noCmk = await pollUntil(async () => {
        const r = await get(`${gw.adminUrl}/readyz`);
        return r.status === 503 && JSON.parse(r.body).cmks?.default?.ok === false && r;
      }, { timeoutMs: 30_000, what: 'unready with the CMK key file gone' });
      const state = JSON.parse(noCmk.body);
      expect(state.ready).toBe(false);
      expect(state.cmks.default.error).toBeTruthy();
      // The first failing component is named; the CMK is, unless that same moment's epoch was stale too.
      if (state.failing !== 'cmk:default') {
        expect(state.failing).toBe('epoch');
        expect(state.epoch.ageMs).toBeGreaterThanOrEqual(state.epoch.boundMs);
      }
    } finally {
      await gw.kill();
      await minio.stop();
    }
  });

  it('a wrong setting stops start-up with one line naming it and a non-zero exit', async () => {
    await expect(launchGateway({ env: { LAKECRYPT_BLOCK_SIZE: '12345' } })).rejects.toThrow(/LAKECRYPT_BLOCK_SIZE/);
    let message = '';
    try {
      await launchGateway({ env: { LAKECRYPT_BACKEND: 'ftp' } });
    } catch (e) {
      message = String((e as Error).message);
    }
    const lines = message.split('\n').filter((l) => l.trim() && !l.startsWith('gateway exited early'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/LAKECRYPT_BACKEND/);
    expect(message).not.toMatch(/\n\s+at /);
  });

  it('the object written before a restart reads back after it', async () => {
    const gw = await launchGateway();
    running.push(gw);
    const s3 = client(gw);
    await s3.send(new CreateBucketCommand({ Bucket: 'restart' }));
    await new Upload({ client: s3, params: { Bucket: 'restart', Key: 'k', Body: 'kept across restarts' } }).done();
    expect(await gw.stop()).toBe(0);
    const again = await launchGateway({ dataDir: gw.dataDir, credentials: gw });
    running.push(again);
    const got = await client(again).send(new GetObjectCommand({ Bucket: 'restart', Key: 'k' }));
    expect(await got.Body!.transformToString()).toBe('kept across restarts');
  });
});
