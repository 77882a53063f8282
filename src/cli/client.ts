/**
 * Admin API client: SigV4-signed JSON requests (the same credentials as the S3 API's admin users), signed with the
 * gateway's own SigV4 functions (src/s3/sigv4.ts, the ones its verifier uses) and sent with node:http. Both keep a
 * CLI call short: no signing library in the bundle, and none of fetch's first-use cost (~60 ms per process here).
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import {
  ALGORITHM, buildCanonicalRequest, canonicalHeaders, canonicalQuery, canonicalUri, deriveSigningKey, sha256Hex, signString, stringToSign, uriEncode,
} from '../s3/sigv4.ts';

/**
 * A failure the CLI reports: one line, an exit code (2 = usage, 1 = refused or failed) and a code — the admin
 * API's error code (AccessDenied, SignatureDoesNotMatch, ...) or the CLI's own (UsageError, NoCredentials,
 * Unreachable, WrongPort, ...), which `--json` prints as {"error": {"code", "message"}}.
 */
export class CliError extends Error {
  readonly code: string;
  constructor(
    message: string,
    readonly exitCode = 1,
    code?: string,
    /** The message without the code in front (`--json` prints it beside the code); default the message. */
    readonly detail = message,
  ) {
    super(message);
    this.code = code ?? (exitCode === 2 ? 'UsageError' : 'Failed');
  }
}

/** Set by the gateway on its S3 port's answers to /admin/ paths (src/ops/start-banner.ts ADMIN_PORT_HEADER). */
const ADMIN_PORT_HEADER = 'x-lakecrypt-admin-port';

/**
 * An answer that is S3's, not the admin API's (an XML body or S3's request id): the URL is an S3 port — lakecrypt's
 * own (it names its admin port) or another S3 service. Null for anything else.
 */
function wrongPort(base: URL, headers: IncomingHttpHeaders, text: string): CliError | null {
  const one = (name: string) => {
    const v = headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const xml = /^\s*<(\?xml|Error\b)/.test(text) || (one('content-type') ?? '').includes('xml');
  if (!xml && one('x-amz-request-id') === undefined) return null;
  const adminPort = one(ADMIN_PORT_HEADER);
  if (adminPort && /^\d+$/.test(adminPort)) {
    const admin = new URL(base.href);
    admin.port = adminPort;
    return new CliError(`${base.origin}: this is the S3 port, the admin API is on port ${adminPort} (--url ${admin.origin})`, 1, 'WrongPort');
  }
  if (/lakecrypt/i.test(one('server') ?? '')) {
    return new CliError(`${base.origin}: this is the S3 port, the admin API is on its own port (LAKECRYPT_ADMIN_PORT, 9101 by default)`, 1, 'WrongPort');
  }
  const code = /<Code>([^<]{1,64})<\/Code>/.exec(text)?.[1];
  return new CliError(`${base.origin} answers as an S3 service${code ? ` (${code})` : ''}, not as the lakecrypt admin API: give the gateway's admin URL (LAKECRYPT_ADMIN_PORT, 9101 by default)`, 1, 'WrongPort');
}

export interface ClientOptions {
  url: string;
  accessKey: string;
  secretKey: string;
  region?: string;
}

export class AdminClient {
  private readonly base: URL;
  private readonly region: string;
  constructor(private readonly o: ClientOptions) {
    try {
      this.base = new URL(o.url);
    } catch {
      throw new CliError(`admin URL: expected an http(s) URL such as http://127.0.0.1:9101, got "${o.url}"`, 2, 'UsageError');
    }
    if (this.base.protocol !== 'http:' && this.base.protocol !== 'https:') {
      throw new CliError(`admin URL: expected an http(s) URL such as http://127.0.0.1:9101, got "${o.url}"`, 2, 'UsageError');
    }
    this.region = o.region ?? 'us-east-1';
  }

  /** `segments` are encoded one by one (a dataset "lake/finance" becomes one segment "lake%2Ffinance"). */
  static path(...segments: string[]): string {
    return '/' + segments.map((s) => uriEncode(s)).join('/');
  }

  /** Headers of a SigV4-signed request (service s3, payload hash signed), as the admin API verifies them. */
  private sign(method: string, path: string, qs: string, body: Buffer | undefined): Record<string, string> {
    const amzDate = new Date().toISOString().replace(/[-:]|\.\d{3}/g, '');
    const date = amzDate.slice(0, 8);
    const payloadHash = sha256Hex(body ?? '');
    const headers: Record<string, string> = { host: this.base.host, 'x-amz-content-sha256': payloadHash, 'x-amz-date': amzDate };
    if (body) headers['content-type'] = 'application/json';
    const signed = Object.keys(headers).sort();
    const canonical = buildCanonicalRequest(method, canonicalUri(path), canonicalQuery(qs), canonicalHeaders(headers, signed), signed, payloadHash);
    const scope = `${date}/${this.region}/s3/aws4_request`;
    const signature = signString(deriveSigningKey(this.o.secretKey, date, this.region, 's3'), stringToSign(amzDate, scope, canonical));
    headers.authorization = `${ALGORITHM} Credential=${this.o.accessKey}/${scope}, SignedHeaders=${signed.join(';')}, Signature=${signature}`;
    return headers;
  }

  async request(method: 'GET' | 'POST', path: string, opts: { body?: unknown; raw?: Buffer; query?: Record<string, string> } = {}): Promise<{ status: number; body: Buffer; json: () => unknown }> {
    const body = opts.raw ?? (opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body), 'utf8'));
    const fullPath = this.base.pathname.replace(/\/+$/, '') + path;
    const qs = Object.entries(opts.query ?? {})
      .map(([k, v]) => `${uriEncode(k)}=${uriEncode(v)}`)
      .join('&');
    const headers = this.sign(method, fullPath, qs, body);
    if (body) headers['content-length'] = String(body.length);
    let res: { status: number; headers: IncomingHttpHeaders; body: Buffer };
    try {
      res = await new Promise((resolve, reject) => {
        const req = (this.base.protocol === 'https:' ? https : http).request(
          {
            method,
            hostname: this.base.hostname.replace(/^\[(.*)\]$/, '$1'),
            port: this.base.port || undefined,
            path: fullPath + (qs ? `?${qs}` : ''),
            headers,
          },
          (r) => {
            const chunks: Buffer[] = [];
            r.on('data', (c: Buffer) => chunks.push(c));
            r.on('end', () => resolve({ status: r.statusCode ?? 0, headers: r.headers, body: Buffer.concat(chunks) }));
            r.on('error', reject);
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new CliError(`cannot reach the admin API at ${this.base.origin} (${err.code ?? err.message})`, 1, 'Unreachable');
    }
    const buf = res.body;
    const parse = () => {
      try {
        return JSON.parse(buf.toString('utf8')) as unknown;
      } catch {
        throw wrongPort(this.base, res.headers, buf.toString('utf8', 0, 4096)) ?? new CliError(`unexpected non-JSON answer from the admin API (HTTP ${res.status})`, 1, 'BadAnswer');
      }
    };
    if (res.status >= 400) {
      const s3 = wrongPort(this.base, res.headers, buf.toString('utf8', 0, 4096));
      if (s3) throw s3;
      let code: string | undefined;
      let message = buf.toString('utf8').slice(0, 200);
      try {
        const j = JSON.parse(buf.toString('utf8')) as { error?: string; message?: string };
        code = j.error;
        message = j.message ?? message;
      } catch {
        /* keep the raw text */
      }
      const line = message.replace(/\s*\n\s*/g, ' ');
      // `AccessDenied: ...` as the one line (and as the message callers of this client match), the bare text beside it
      if (code) throw new CliError(`${code}: ${line}`, 1, code, line);
      throw new CliError(`HTTP ${res.status}: ${line}`, 1, 'HttpError');
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
