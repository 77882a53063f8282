import * as http from 'node:http';
import * as https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { S3Error } from '../errors.ts';
import { EMPTY_SHA256, deriveSigningKey, signString, stringToSign, uriEncode } from '../s3/sigv4.ts';

/**
 * A minimal SigV4 client for the two calls on every read: GET and HEAD of one object. The AWS SDK v3 spends about
 * 3 CPU-ms of middleware per call on this machine (bench/results/profile.md), more than the rest of a small GET;
 * this path signs and sends the request itself. Everything else keeps using the SDK.
 */
export interface FastResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: IncomingMessage;
}

const RETRY_STATUS = new Set([500, 502, 503, 504]);
const RETRY_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'UND_ERR_SOCKET']);

export class FastS3 {
  private readonly url: URL;
  private readonly request: typeof http.request;
  constructor(
    endpoint: string,
    private readonly accessKey: string,
    private readonly secretKey: string,
    private readonly region: string,
    private readonly agent: http.Agent,
    private readonly maxAttempts = 5,
  ) {
    this.url = new URL(endpoint);
    this.request = this.url.protocol === 'https:' ? (https.request as unknown as typeof http.request) : http.request;
  }

  /** Path-style URI of an object, encoded the way SigV4 canonicalises it (slashes kept). */
  private path(bucket: string, key: string): string {
    const base = this.url.pathname.replace(/\/$/, '');
    return `${base}/${uriEncode(bucket)}/${uriEncode(key, true)}`;
  }

  private sign(method: string, path: string, extra: Record<string, string>): Record<string, string> {
    const now = new Date();
    const amzDate = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
    const date = amzDate.slice(0, 8);
    const headers: Record<string, string> = { host: this.url.host, 'x-amz-content-sha256': EMPTY_SHA256, 'x-amz-date': amzDate, ...extra };
    const names = Object.keys(headers).map((n) => n.toLowerCase()).sort();
    const canonical = names.map((n) => `${n}:${headers[n]!.trim()}\n`).join('');
    const signed = names.join(';');
    const request = `${method}\n${path}\n\n${canonical}\n${signed}\n${EMPTY_SHA256}`;
    const scope = `${date}/${this.region}/s3/aws4_request`;
    const signature = signString(deriveSigningKey(this.secretKey, date, this.region), stringToSign(amzDate, scope, request));
    headers.authorization = `AWS4-HMAC-SHA256 Credential=${this.accessKey}/${scope}, SignedHeaders=${signed}, Signature=${signature}`;
    return headers;
  }

  private once(method: 'GET' | 'HEAD', path: string, extra: Record<string, string>): Promise<FastResponse> {
    return new Promise((resolve, reject) => {
      const req = this.request(
        { protocol: this.url.protocol, hostname: this.url.hostname, port: this.url.port, method, path, headers: this.sign(method, path, extra), agent: this.agent },
        (res) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res }),
      );
      req.setTimeout(60_000, () => req.destroy(Object.assign(new Error('backend request timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end();
    });
  }

  /**
   * GET or HEAD with retries (exponential backoff, full jitter) on network errors, 5xx and SlowDown. A non-2xx
   * answer is returned with its body read into `errorCode` for the caller to map.
   */
  async call(method: 'GET' | 'HEAD', bucket: string, key: string, extra: Record<string, string> = {}): Promise<FastResponse & { errorCode?: string }> {
    const path = this.path(bucket, key);
    for (let attempt = 1; ; attempt++) {
      let res: FastResponse;
      try {
        res = await this.once(method, path, extra);
      } catch (e) {
        const code = (e as { code?: string }).code ?? '';
        if (attempt < this.maxAttempts && RETRY_CODES.has(code)) {
          await backoff(attempt, false);
          continue;
        }
        throw new S3Error('ServiceUnavailable', `backend error: network: ${(e as Error).message}`, {}, { cause: e });
      }
      // A HEAD answer has no body, but its socket only goes back to the pool once the message is read to the end.
      if (method === 'HEAD') res.body.resume();
      if (res.status < 300) return res;
      const text = method === 'HEAD' ? '' : await readText(res.body);
      const errorCode = /<Code>([^<]+)<\/Code>/.exec(text)?.[1];
      if (attempt < this.maxAttempts && (RETRY_STATUS.has(res.status) || errorCode === 'SlowDown')) {
        await backoff(attempt, res.status === 503 || errorCode === 'SlowDown');
        continue;
      }
      return { ...res, errorCode };
    }
  }
}

function backoff(attempt: number, throttled: boolean): Promise<void> {
  const base = throttled ? 400 : 100;
  return new Promise((r) => setTimeout(r, Math.floor(Math.random() * Math.min(5000, base * 2 ** attempt))));
}

async function readText(body: IncomingMessage, max = 64 * 1024): Promise<string> {
  let text = '';
  for await (const c of body as AsyncIterable<Buffer>) {
    if (text.length < max) text += c.toString('utf8');
  }
  return text;
}
