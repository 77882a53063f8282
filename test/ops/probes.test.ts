/**
 * Health probes as load balancers send them (issue #19 item 2, first half): haproxy's default check is
 * `GET /readyz HTTP/1.0` without a Host header. Both ports answer it; a Host-less request for anything else is
 * still a 400, as before.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin, type RunningAdmin } from '../../src/admin/server.ts';
import { createMetrics } from '../../src/ops/metrics.ts';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';

/** Raw request text in, status line and body out (the server closes: HTTP/1.0 or Connection: close). */
function raw(url: string, request: string): Promise<{ status: string; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const s = connect(Number(u.port), u.hostname);
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.on('error', reject);
    s.on('close', () => {
      const [head = '', body = ''] = got.split('\r\n\r\n');
      resolve({ status: head.split('\r\n')[0] ?? '', body });
    });
    s.write(request);
  });
}

let gw: TestGateway;
let admin: RunningAdmin;
beforeAll(async () => {
  gw = await startTestGateway('fs');
  admin = await startAdmin({ gateway: gw.running, metrics: createMetrics({ defaultMetrics: false }), resumeJobs: false });
});
afterAll(async () => {
  await admin?.close();
  await gw?.close();
});

describe('health probes without a Host header', () => {
  it('GET /healthz and /readyz over HTTP/1.0 (haproxy default) answer 200 on both ports', async () => {
    for (const url of [gw.url, admin.url]) {
      expect(await raw(url, 'GET /healthz HTTP/1.0\r\n\r\n'), url).toMatchObject({ status: 'HTTP/1.1 200 OK', body: 'ok' });
      const ready = await raw(url, 'GET /readyz HTTP/1.0\r\n\r\n');
      expect(ready.status, url).toBe('HTTP/1.1 200 OK');
      expect(JSON.parse(ready.body)).toMatchObject({ ready: true });
      // HTTP/1.1 without Host as well (some checkers send it)
      expect((await raw(url, 'GET /readyz HTTP/1.1\r\nConnection: close\r\n\r\n')).status, url).toBe('HTTP/1.1 200 OK');
    }
  });

  it('anything else without a Host header is still a 400', async () => {
    expect((await raw(gw.url, 'GET /some-bucket/key HTTP/1.1\r\nConnection: close\r\n\r\n')).status).toMatch(/^HTTP\/1\.1 400/);
    expect((await raw(admin.url, 'GET /admin/keys HTTP/1.1\r\nConnection: close\r\n\r\n')).status).toMatch(/^HTTP\/1\.1 400/);
    expect((await raw(gw.url, 'PUT /readyz HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')).status).toMatch(/^HTTP\/1\.1 400/);
  });
});
