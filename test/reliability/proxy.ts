/**
 * Fault-injecting HTTP proxy in front of MinIO for the reliability tests. Like test/helpers/fault-proxy.ts,
 * plus: an upstream that dies mid-response cuts the downstream response too (instead of leaving it open until
 * an idle timeout), and a `hang` fault (the request is swallowed: never forwarded, never answered).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type Fault = { status: number; code: string } | { reset: true } | { hang: true } | null;

export interface Proxy {
  endpoint: string;
  count: number;
  fault: (req: http.IncomingMessage, n: number) => Fault;
  close(): Promise<void>;
}

export async function startProxy(target: string): Promise<Proxy> {
  const t = new URL(target);
  const agent = new http.Agent({ keepAlive: true });
  const p: Proxy = { endpoint: '', count: 0, fault: () => null, close: async () => {} };
  const server = http.createServer((req, res) => {
    const f = p.fault(req, ++p.count);
    if (f && 'reset' in f) {
      req.socket.destroy();
      return;
    }
    if (f && 'hang' in f) {
      req.resume();
      return;
    }
    if (f && 'status' in f) {
      req.resume();
      req.on('end', () => {
        res.writeHead(f.status, { 'content-type': 'application/xml', connection: 'close' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${f.code}</Code><Message>injected</Message></Error>`);
      });
      return;
    }
    const up = http.request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers, agent }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
      const cut = () => {
        if (!ur.complete) res.destroy();
      };
      ur.on('aborted', cut);
      ur.on('error', cut);
      ur.on('close', cut);
    });
    up.on('error', () => res.destroy());
    req.on('aborted', () => up.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  p.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  p.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    agent.destroy();
  };
  return p;
}
