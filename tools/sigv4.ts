/**
 * The one SigV4 signer for raw requests (tests, bench, scripts): unlike the SDK these keep the bytes of a body
 * that was cut off mid-way (`aborted`), and send paths and headers exactly as given.
 *
 *   const r = await signedRequest(url, creds, { method: 'GET', path: '/b/k' });          // sign + send
 *   const { headers, auth } = signHeaders(creds, { method, host, path, payload });       // sign only
 *   encodeAwsChunked(chunks, { mode: 'streaming-signed', auth })                         // chunk signatures
 *
 * Canonical forms come from src/s3/sigv4.ts; the independent oracles (AWS's own signer, the slow path) stay
 * in test/s3/.
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
} from '../src/s3/sigv4.ts';

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

export interface SignOptions {
  method: string;
  /** The Host header as sent (host:port). */
  host: string;
  /** Path and query exactly as they go on the request line (query without '?'). */
  path: string;
  query?: string;
  headers?: Record<string, string>;
  /** The x-amz-content-sha256 value: a hex SHA-256, UNSIGNED-PAYLOAD or a STREAMING-* mode. */
  payload: string;
  region?: string;
  /** Signing time (default now). */
  date?: Date;
}

/** What a chunk signer needs besides the headers (the shape encodeAwsChunked and the gateway's AuthResult use). */
export interface SigningAuth {
  signingKey: Buffer;
  amzDate: string;
  scope: string;
  seedSignature: string;
}

/** Sign a request with header auth: its headers (host, x-amz-date, x-amz-content-sha256, authorization added). */
export function signHeaders(creds: Creds, o: SignOptions): { headers: Record<string, string>; auth: SigningAuth } {
  const region = o.region ?? 'us-east-1';
  const { amzDate, date } = amzNow(o.date);
  const headers: Record<string, string> = { ...o.headers, host: o.host, 'x-amz-date': amzDate, 'x-amz-content-sha256': o.payload };
  const signed = Object.keys(headers).map((k) => k.toLowerCase()).sort();
  const scope = `${date}/${region}/s3/aws4_request`;
  const creq = buildCanonicalRequest(o.method, canonicalUri(o.path), canonicalQuery(o.query ?? ''), canonicalHeaders(headers, signed), signed, o.payload);
  const signingKey = deriveSigningKey(creds.secretKey, date, region);
  const seedSignature = signString(signingKey, stringToSign(amzDate, scope, creq));
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${creds.accessKey}/${scope}, SignedHeaders=${signed.join(';')}, Signature=${seedSignature}`;
  return { headers, auth: { signingKey, amzDate, scope, seedSignature } };
}

/** The SigV4 signing key of `secret` on the day of `amzDate` (YYYYMMDD or a full x-amz-date). */
export function signingKeyFor(secret: string, amzDate: string, region = 'us-east-1'): Buffer {
  return deriveSigningKey(secret, amzDate.slice(0, 8), region);
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
  const body = opts.body;
  const payload = opts.unsignedPayload ? 'UNSIGNED-PAYLOAD' : sha256Hex(body ?? Buffer.alloc(0));
  const extra: Record<string, string> = { ...(opts.headers ?? {}) };
  if (body && extra['content-length'] === undefined) extra['content-length'] = String(body.length);
  const { headers } = signHeaders(creds, { method: opts.method, host: new URL(url).host, path: opts.path, query: opts.query, headers: extra, payload });
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
