/** Admin API client: SigV4-signed JSON requests (the same credentials as the S3 API's admin users). */
import { createHash, createHmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { uriEncode } from '../s3/sigv4.ts';

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** A node:crypto SHA-256 / HMAC-SHA256 with the interface @smithy/signature-v4 expects. */
class Sha256 {
  private h;
  constructor(secret?: string | Uint8Array) {
    this.h = secret ? createHmac('sha256', secret) : createHash('sha256');
  }
  update(data: string | Uint8Array): void {
    this.h.update(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.h.digest()));
  }
  reset(): void {
    throw new Error('not supported');
  }
}

export interface ClientOptions {
  url: string;
  accessKey: string;
  secretKey: string;
  region?: string;
}

export class AdminClient {
  private readonly signer: SignatureV4;
  private readonly base: URL;
  constructor(o: ClientOptions) {
    try {
      this.base = new URL(o.url);
    } catch {
      throw new CliError(`LAKECRYPT_ADMIN_URL: expected an http(s) URL, got "${o.url}"`, 2);
    }
    this.signer = new SignatureV4({
      credentials: { accessKeyId: o.accessKey, secretAccessKey: o.secretKey },
      region: o.region ?? 'us-east-1',
      service: 's3',
      sha256: Sha256 as never,
      uriEscapePath: false,
      applyChecksum: true,
    });
  }

  /** `segments` are encoded one by one (a dataset "lake/finance" becomes one segment "lake%2Ffinance"). */
  static path(...segments: string[]): string {
    return '/' + segments.map((s) => uriEncode(s)).join('/');
  }

  async request(method: 'GET' | 'POST', path: string, opts: { body?: unknown; raw?: Buffer; query?: Record<string, string> } = {}): Promise<{ status: number; body: Buffer; json: () => unknown }> {
    const body = opts.raw ?? (opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body), 'utf8'));
    const headers: Record<string, string> = { host: this.base.host };
    if (body) headers['content-type'] = 'application/json';
    const basePath = this.base.pathname.replace(/\/+$/, '');
    const signed = await this.signer.sign({
      method,
      protocol: this.base.protocol,
      hostname: this.base.hostname,
      port: this.base.port ? Number(this.base.port) : undefined,
      path: basePath + path,
      query: opts.query ?? {},
      headers,
      body,
    });
    const qs = Object.entries(opts.query ?? {})
      .map(([k, v]) => `${uriEncode(k)}=${uriEncode(v)}`)
      .join('&');
    const url = `${this.base.protocol}//${this.base.host}${basePath}${path}${qs ? `?${qs}` : ''}`;
    const h = { ...(signed.headers as Record<string, string>) };
    delete h.host;
    let res: Response;
    try {
      res = await fetch(url, { method, headers: h, body: body ? new Uint8Array(body) : undefined });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(`cannot reach the admin API at ${this.base.origin} (${cause?.code ?? cause?.message ?? (e as Error).message})`);
    }
    const buf = Buffer.from(await res.arrayBuffer());
    const parse = () => {
      try {
        return JSON.parse(buf.toString('utf8')) as unknown;
      } catch {
        throw new CliError(`unexpected non-JSON answer from the admin API (HTTP ${res.status})`);
      }
    };
    if (res.status >= 400) {
      let code = `HTTP ${res.status}`;
      let message = buf.toString('utf8').slice(0, 200);
      try {
        const j = JSON.parse(buf.toString('utf8')) as { error?: string; message?: string };
        code = j.error ?? code;
        message = j.message ?? message;
      } catch {
        /* keep the raw text */
      }
      throw new CliError(`${code}: ${message.replace(/\s*\n\s*/g, ' ')}`, 1, code);
    }
    return { status: res.status, body: buf, json: parse };
  }

  async get<T = unknown>(path: string, query?: Record<string, string>): Promise<T> {
    return (await this.request('GET', path, { query })).json() as T;
  }
  async post<T = unknown>(path: string, body: unknown = {}): Promise<T> {
    return (await this.request('POST', path, { body })).json() as T;
  }
}
