/**
 * Health probes as load balancers send them. haproxy's default check is `GET /readyz HTTP/1.0` with no Host
 * header, which Node answers 400 by default (and hono cannot build a URL without a host): every gateway would be
 * marked down. Both ports therefore accept a Host-less request for the two probe paths (given a placeholder
 * host), and keep refusing a Host-less request for anything else with 400, as before.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** `/healthz` or `/readyz`, with or without a query string: the paths hono routes (as `app.get` matches them). */
export function isHealthPath(url: string | undefined): boolean {
  if (url === undefined || url.charCodeAt(0) !== 0x2f || (url.charCodeAt(1) !== 0x68 && url.charCodeAt(1) !== 0x72)) return false;
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  return path === '/healthz' || path === '/readyz';
}

/** Server option that lets a Host-less request reach `hostless` (Node would answer 400 itself). */
export const PROBE_SERVER_OPTIONS = { requireHostHeader: false } as const;

/**
 * For a request without a Host header: a probe (GET/HEAD of a health path) gets a placeholder host and goes on
 * (true); anything else is answered 400 here (false), as Node did before.
 */
export function hostless(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.headers.host !== undefined) return true;
  if ((req.method === 'GET' || req.method === 'HEAD') && isHealthPath(req.url)) {
    req.headers.host = 'localhost';
    return true;
  }
  res.statusCode = 400;
  res.setHeader('Connection', 'close');
  res.end();
  return false;
}
