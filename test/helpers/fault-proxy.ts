/**
 * A tiny HTTP proxy for fault injection in front of an S3 endpoint (MinIO). Headers are forwarded unchanged
 * (Host included), so SigV4 signatures made for the proxy's address stay valid.
 *
 *   const proxy = await startFaultProxy(minio.endpoint);
 *   proxy.fault = (req, n) => (req.method === 'PUT' && n <= 2 ? { status: 503, code: 'SlowDown' } : null);
 *   ... use proxy.endpoint ...
 *   proxy.requests  // [{ method, url, headers, bodyBytes }] seen so far
 *
 * Used by the backend fault tests and the reliability (crash/outage) tests.
 *   await proxy.close();
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type Fault = { status: number; code: string } | { reset: true } | { delayMs: number } | null;

export interface FaultProxy {
  endpoint: string;
  requests: { method: string; url: string; headers: http.IncomingHttpHeaders; bodyBytes: number }[];
  /** Decide per request (n = 1-based count of requests seen so far). */
  fault: (req: http.IncomingMessage, n: number) => Fault;
  close(): Promise<void>;
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const t = new URL(target);
  const agent = new http.Agent({ keepAlive: true });
  const proxy: FaultProxy = {
    endpoint: '',
    requests: [],
    fault: () => null,
    close: async () => {},
  };
  const server = http.createServer(async (req, res) => {
    const entry = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, bodyBytes: 0 };
    proxy.requests.push(entry);
    const f = proxy.fault(req, proxy.requests.length);
    if (f && 'reset' in f) {
      req.socket.destroy();
      return;
    }
    if (f && 'status' in f) {
      const answer = () => {
        res.writeHead(f.status, { 'content-type': 'application/xml', connection: 'close' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${f.code}</Code><Message>injected</Message></Error>`);
      };
      req.resume();
      // Expect: 100-continue: answer at once (the client then sends no body), as S3 does for a refused request.
      if (req.headers.expect) answer();
      else req.on('end', answer);
      return;
    }
    if (f && 'delayMs' in f) await new Promise((r) => setTimeout(r, f.delayMs));
    const up = http.request(
      { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers, agent },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
        // An upstream that dies mid-response (MinIO killed) cuts the downstream response too, as a dead server
        // would, instead of leaving it open until an idle timeout.
        const cut = () => {
          if (!ur.complete) res.destroy();
        };
        ur.on('aborted', cut);
        ur.on('error', cut);
        ur.on('close', cut);
      },
    );
    up.on('error', () => res.destroy());
    req.on('aborted', () => up.destroy());
    // Expect: 100-continue is passed through: the client sends its body when the upstream says so.
    up.on('continue', () => res.writeContinue());
    req.on('data', (c: Buffer) => (entry.bodyBytes += c.length));
    req.pipe(up);
  });
  // Without this listener node answers every Expect: 100-continue itself, before the upstream has a say.
  server.on('checkContinue', (req, res) => server.emit('request', req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  proxy.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    agent.destroy();
  };
  return proxy;
}
