/**
 * Front-end settings that bear on small-request latency: keep-alive idle time equals the idle timeout (not
 * Node's 5 s), S3 requests are served without hono, the health endpoints still through it.
 */
import { Agent, request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';

let gw: TestGateway;
beforeAll(async () => {
  gw = await startTestGateway('fs');
});
afterAll(async () => {
  await gw?.close();
});

function get(url: string, agent: Agent): Promise<{ status: number; body: string; port: number }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body, port: req.socket!.localPort! }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('gateway front end', () => {
  it('keeps idle keep-alive connections for the idle timeout (60 s by default), not 5 s', () => {
    expect(gw.running.server.keepAliveTimeout).toBe(60_000);
    expect(gw.running.server.timeout).toBe(60_000);
  });

  it('health endpoints answer through hono; S3 requests (also on a keep-alive socket) go to the gateway', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const h = await get(`${gw.url}/healthz`, agent);
    expect(h).toMatchObject({ status: 200, body: 'ok' });
    const r = await get(`${gw.url}/readyz`, agent);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ ready: true, epoch: { boundMs: 1000 }, cmks: { default: { ok: true } } });
    // unsigned S3 request: the gateway's own error, with its request id
    const s3 = await get(`${gw.url}/some-bucket/healthz`, agent);
    expect(s3.status).toBe(403);
    expect(s3.body).toContain('<Code>AccessDenied</Code>');
    expect(s3.port).toBe(h.port); // same connection throughout
    agent.destroy();
    const c = gw.client();
    await c.send(new CreateBucketCommand({ Bucket: 'lat-bucket' }));
    await c.send(new PutObjectCommand({ Bucket: 'lat-bucket', Key: 'healthz', Body: 'x'.repeat(4096) }));
    const o = await c.send(new GetObjectCommand({ Bucket: 'lat-bucket', Key: 'healthz' }));
    expect((await o.Body!.transformToString()).length).toBe(4096);
    expect(o.$metadata.httpStatusCode).toBe(200);
  });
});
