/**
 * Raw, SigV4-signed HTTP requests for reliability and security tests: unlike the SDK they keep the bytes of a
 * body that was cut off mid-way (`aborted`), and they send paths and headers exactly as given.
 */
import http from 'node:http';
import https from 'node:https';
import {
  buildCanonicalRequest,
  canonicalHeaders,
  canonicalQuery,
  canonicalUri,
  deriveSigningKey,
  sha256Hex,
  signString,
  stringToSign,
} from '../../src/s3/sigv4.ts';

export interface Creds {
  accessKey: string;
  secretKey: string;
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The connection ended before the declared body was complete (or errored mid-body). */
  aborted: boolean;
  /** Request-level error (connection refused/reset before a status line). */
  error?: string;
}

export function amzNow(d = new Date()): { amzDate: string; date: string } {
  const amzDate = d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  return { amzDate, date: amzDate.slice(0, 8) };
}

/** Sign headers for a request (header auth). `payload` = the x-amz-content-sha256 value to use. */
export function signHeaders(
  creds: Creds,
  method: string,
  host: string,
  rawPath: string,
  rawQuery: string,
  headers: Record<string, string>,
  payload: string,
  region = 'us-east-1',
): Record<string, string> & { seedSignature: string; amzDate: string; scope: string } {
  const { amzDate, date } = amzNow();
  const h: Record<string, string> = { ...headers, host, 'x-amz-date': amzDate, 'x-amz-content-sha256': payload };
  const signed = Object.keys(h).map((k) => k.toLowerCase()).sort();
  const scope = `${date}/${region}/s3/aws4_request`;
  const creq = buildCanonicalRequest(method, canonicalUri(rawPath), canonicalQuery(rawQuery), canonicalHeaders(h, signed), signed, payload);
  const key = deriveSigningKey(creds.secretKey, date, region);
  const sig = signString(key, stringToSign(amzDate, scope, creq));
  h.authorization = `AWS4-HMAC-SHA256 Credential=${creds.accessKey}/${scope}, SignedHeaders=${signed.join(';')}, Signature=${sig}`;
  return Object.assign(h, { seedSignature: sig, amzDate, scope });
}

export function signingKeyFor(creds: Creds, amzDate: string, region = 'us-east-1'): Buffer {
  return deriveSigningKey(creds.secretKey, amzDate.slice(0, 8), region);
}

/** Send one request; resolves with whatever arrived (never rejects). */
export function rawRequest(
  url: string,
  opts: { method: string; path: string; headers?: Record<string, string | string[]>; body?: Buffer; timeoutMs?: number; agent?: http.Agent },
): Promise<RawResponse> {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: RawResponse) => {
      if (!settled) {
        settled = true;
        resolve(r);
      }
    };
    const req = mod.request(
      {
        host: u.hostname,
        port: u.port,
        method: opts.method,
        path: opts.path,
        headers: opts.headers,
        agent: opts.agent ?? false,
        rejectUnauthorized: false,
      } as https.RequestOptions,
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        const finish = (aborted: boolean) => {
          const body = Buffer.concat(chunks);
          const declared = res.headers['content-length'];
          const short = declared !== undefined && Number(declared) !== body.length;
          done({ status: res.statusCode ?? 0, headers: res.headers, body, aborted: aborted || short || !res.complete });
        };
        res.on('end', () => finish(false));
        res.on('error', () => finish(true));
        res.on('aborted', () => finish(true));
        res.on('close', () => finish(!res.complete));
      },
    );
    req.setTimeout(opts.timeoutMs ?? 30_000, () => req.destroy(new Error('client timeout')));
    req.on('error', (e) => done({ status: 0, headers: {}, body: Buffer.alloc(0), aborted: true, error: e.message }));
    if (opts.body) req.end(opts.body);
    else req.end();
  });
}

/** A signed request against a gateway (path-style); body hashed into the signature. */
export function signedRequest(
  url: string,
  creds: Creds,
  opts: { method: string; path: string; query?: string; headers?: Record<string, string>; body?: Buffer; unsignedPayload?: boolean; timeoutMs?: number },
): Promise<RawResponse> {
  const u = new URL(url);
  const body = opts.body;
  const payload = opts.unsignedPayload ? 'UNSIGNED-PAYLOAD' : sha256Hex(body ?? Buffer.alloc(0));
  const extra: Record<string, string> = { ...(opts.headers ?? {}) };
  if (body && extra['content-length'] === undefined) extra['content-length'] = String(body.length);
  const h = signHeaders(creds, opts.method, u.host, opts.path, opts.query ?? '', extra, payload);
  const { seedSignature: _s, amzDate: _a, scope: _c, ...headers } = h;
  return rawRequest(url, {
    method: opts.method,
    path: opts.path + (opts.query ? `?${opts.query}` : ''),
    headers,
    body,
    timeoutMs: opts.timeoutMs,
  });
}

/** The S3 error code of an XML error body ('' when none). */
export function errorCode(body: Buffer): string {
  return /<Code>([^<]*)<\/Code>/.exec(body.toString('utf8'))?.[1] ?? '';
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll until fn returns a truthy value (or throw after timeoutMs). */
export async function waitFor<T>(fn: () => Promise<T> | T, timeoutMs = 10_000, stepMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`waitFor: timed out${last ? `: ${String(last)}` : ''}`);
    await sleep(stepMs);
  }
}
