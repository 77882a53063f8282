/**
 * AWS Signature Version 2 verification for S3: header auth (`Authorization: AWS <AccessKeyId>:<Signature>`) and
 * query-string auth (`AWSAccessKeyId`, `Signature`, `Expires`), which boto3 still uses by default for presigned
 * URLs on a custom endpoint.
 *
 * The signature is base64(HMAC-SHA1(secret, StringToSign)) with
 *   StringToSign = METHOD \n Content-MD5 \n Content-Type \n Date-or-Expires \n CanonicalizedAmzHeaders CanonicalizedResource
 * It does not cover the body: a request that sends Content-MD5 (signed) has its body checked against it by the
 * payload path; otherwise the body is as unsigned as a SigV4 UNSIGNED-PAYLOAD one.
 *
 * Pure protocol code, no I/O; every failure is an S3Error with the code S3 answers with.
 */
import { createHmac } from 'node:crypto';
import { S3Error } from '../errors.ts';
import {
  canonicalUri,
  getHeader,
  parseHttpOrAmzDate,
  payloadModeOf,
  percentDecodeBytes,
  signaturesEqual,
  type AuthResult,
  type HeaderMap,
  type SigV4Request,
} from './sigv4.ts';

export interface SigV2Request extends SigV4Request {
  /**
   * The path the canonicalized resource starts with: the raw path for path-style requests, `/<bucket>` + the raw
   * path when the bucket came in the Host header (virtual-hosted style), as S3 signs it.
   */
  resourcePath: string;
}

export interface SigV2Options {
  now?: Date;
  /** Allowed clock skew of header auth's Date / x-amz-date, default 15 minutes (as for SigV4). */
  maxSkewMs?: number;
}

/**
 * Query parameters that are part of the canonicalized resource: S3's documented sub-resources and response
 * overrides, plus the ones the SDKs and s3cmd also sign (cors, restore, tagging, select …). Any other query
 * parameter (prefix, max-keys, list-type …) is not signed under SigV2, on S3 as here.
 */
export const SIGNED_SUBRESOURCES: ReadonlySet<string> = new Set([
  'accelerate', 'acl', 'analytics', 'cors', 'delete', 'encryption', 'inventory', 'legal-hold', 'lifecycle', 'location',
  'logging', 'metrics', 'notification', 'object-lock', 'partNumber', 'policy', 'replication', 'requestPayment',
  'restore', 'retention', 'select', 'select-type', 'tagging', 'torrent', 'uploadId', 'uploads', 'versionId',
  'versioning', 'versions', 'website',
  'response-cache-control', 'response-content-disposition', 'response-content-encoding',
  'response-content-language', 'response-content-type', 'response-expires',
]);

const EXPIRES_RE = /^\d{1,12}$/;

/** Whether a request uses SigV2: an `AWS ` Authorization header, or the AWSAccessKeyId/Signature query form. */
export function isSigV2(headers: HeaderMap, rawQuery: string): boolean {
  const auth = getHeader(headers, 'authorization');
  if (auth !== undefined) return /^\s*AWS\s/.test(auth);
  if (!rawQuery) return false;
  // the query form carries AWSAccessKeyId and Signature; a SigV4 URL (X-Amz-*) goes to the SigV4 verifier
  return /(?:^|&)(?:AWSAccessKeyId|Signature)=/.test(rawQuery) && !/(?:^|&)X-Amz-(?:Algorithm|Signature|Credential)=/.test(rawQuery);
}

interface QueryPair { key: string; raw: string; hasEq: boolean }

function queryPairs(rawQuery: string): QueryPair[] {
  const out: QueryPair[] = [];
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    // keys as the handlers read them (URLSearchParams: percent-decoded, '+' a space)
    const key = percentDecodeBytes(eq < 0 ? part : part.slice(0, eq), true).toString('utf8');
    out.push({ key, raw: eq < 0 ? '' : part.slice(eq + 1), hasEq: eq >= 0 });
  }
  return out;
}

/**
 * The sub-resource part of the canonicalized resource (`?acl`, `?partNumber=2&uploadId=…`), values decoded as
 * the handlers decode them, so what is signed is what is acted on. Two spellings of an empty value are offered
 * (`uploads` and `uploads=`: clients differ, both mean the same).
 */
function subresourceForms(pairs: QueryPair[]): string[] {
  const signed = pairs.filter((p) => SIGNED_SUBRESOURCES.has(p.key));
  if (signed.length === 0) return [''];
  signed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const render = (keepEmptyEq: boolean) =>
    '?' + signed.map((p) => {
      const v = percentDecodeBytes(p.raw, true).toString('utf8');
      return v === '' && !(keepEmptyEq && p.hasEq) ? p.key : `${p.key}=${v}`;
    }).join('&');
  return [...new Set([render(false), render(true)])];
}

/** Header values as one string: several fields of one name joined with ',' (RFC 7230), each unfolded and trimmed. */
function headerValue(v: string | string[] | undefined): string | undefined {
  if (v === undefined) return undefined;
  const one = (s: string) => s.replace(/\s*\r?\n\s*/g, ' ').trim();
  return Array.isArray(v) ? v.map(one).join(',') : one(v);
}

/** `x-amz-name:value\n` for every x-amz-* header present, names lowercased and sorted (all of them are signed). */
function canonicalAmzHeaders(headers: HeaderMap): string {
  const found = new Map<string, string>();
  for (const [name, v] of Object.entries(headers)) {
    const n = name.toLowerCase();
    if (!n.startsWith('x-amz-')) continue;
    const value = headerValue(v);
    if (value === undefined) continue;
    const prev = found.get(n);
    found.set(n, prev === undefined ? value : `${prev},${value}`);
  }
  return [...found.keys()].sort().map((n) => `${n}:${found.get(n)}\n`).join('');
}

const hmacSha1Base64 = (secret: string, sts: string): string => createHmac('sha1', secret).update(sts, 'utf8').digest('base64');

/**
 * Verify a SigV2 request. Throws S3Error: AccessDenied (expired, missing date or query parameters),
 * InvalidAccessKeyId, SignatureDoesNotMatch, RequestTimeTooSkewed, InvalidArgument (malformed header, two
 * mechanisms), InvalidRequest (a SigV4 streaming payload, whose chunk signatures need a SigV4 seed).
 *
 * The result has the shape SigV4's has; SigV2 has no chunk-signing context (signingKey, scope, seed empty), and
 * its payload modes are the ones that need none.
 */
export function verifySigV2(req: SigV2Request, lookupSecret: (accessKey: string) => string | undefined, opts: SigV2Options = {}): AuthResult {
  const now = opts.now ?? new Date();
  const maxSkew = opts.maxSkewMs ?? 900_000;
  const header = (name: string): string | undefined => headerValue(Object.hasOwn(req.headers, name) ? req.headers[name] : getHeader(req.headers, name));
  const authHeader = header('authorization');
  const pairs = queryPairs(req.query);
  const param = (name: string): string | undefined => {
    const p = pairs.find((x) => x.key === name);
    // Signature is base64: its '+' means '+' (a client that left it unencoded), never a space
    return p === undefined ? undefined : percentDecodeBytes(p.raw, name !== 'Signature').toString('utf8');
  };
  const hasQueryAuth = pairs.some((p) => p.key === 'AWSAccessKeyId' || p.key === 'Signature');
  if (authHeader !== undefined && hasQueryAuth) {
    throw new S3Error('InvalidArgument', 'Only one auth mechanism allowed; only the Signature query parameter or the Authorization header should be specified.', { ArgumentName: 'Authorization' });
  }

  const presigned = authHeader === undefined;
  let accessKey: string;
  let signature: string;
  /** The line(s) the string to sign may carry where Date goes. */
  let dateLines: string[];
  if (presigned) {
    const ak = param('AWSAccessKeyId');
    const sig = param('Signature');
    const expires = param('Expires');
    if (ak === undefined || sig === undefined || expires === undefined) {
      throw new S3Error('AccessDenied', 'Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters');
    }
    if (!EXPIRES_RE.test(expires)) throw new S3Error('AccessDenied', `Invalid date (should be seconds since epoch): ${expires.slice(0, 32)}`);
    if (now.getTime() > Number(expires) * 1000) {
      throw new S3Error('AccessDenied', 'Request has expired', { Expires: new Date(Number(expires) * 1000).toISOString(), ServerTime: now.toISOString() });
    }
    accessKey = ak;
    signature = sig;
    dateLines = [expires];
  } else {
    const m = /^\s*AWS\s+([^:\s]+):(\S+)\s*$/.exec(authHeader);
    if (!m) throw new S3Error('InvalidArgument', 'AWS authorization header is invalid.  Expected AwsAccessKeyId:signature', { ArgumentName: 'Authorization' });
    accessKey = m[1]!;
    signature = m[2]!;
    const amzDate = header('x-amz-date');
    const date = header('date');
    const when = parseHttpOrAmzDate(amzDate ?? date ?? '');
    if (when === undefined) throw new S3Error('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
    if (Math.abs(now.getTime() - when) > maxSkew) {
      throw new S3Error('RequestTimeTooSkewed', undefined, { RequestTime: (amzDate ?? date)!.slice(0, 64), ServerTime: now.toUTCString(), MaxAllowedSkewMilliseconds: String(maxSkew) });
    }
    // With x-amz-date the Date line is empty (x-amz-date is signed among the x-amz-* headers); clients that send
    // both and put Date on its line sign the same request, so that form is accepted too.
    dateLines = amzDate === undefined ? [date!] : date === undefined ? [''] : ['', date];
  }

  const secret = lookupSecret(accessKey);
  if (secret === undefined) throw new S3Error('InvalidAccessKeyId', undefined, { AWSAccessKeyId: accessKey });

  // Content-MD5 and Content-Type from the headers only (boto3's presigned URLs may repeat them as query
  // parameters: the request must still send them, as on S3 and MinIO).
  const head = `${req.method.toUpperCase()}\n${header('content-md5') ?? ''}\n${header('content-type') ?? ''}\n`;
  const amz = canonicalAmzHeaders(req.headers);
  // The path as sent, and S3's canonical encoding of it (s3cmd signs that one): both name the same bucket and key.
  // A bucket's own resource is `/bucket/` to botocore even when it sent `/bucket`: both name the bucket alone.
  const raw = req.resourcePath === '' ? '/' : req.resourcePath;
  const paths = new Set([raw, canonicalUri(raw)]);
  const bucketOnly = /^(\/[^/]+)\/?$/.exec(raw);
  if (bucketOnly) paths.add(bucketOnly[1]).add(`${bucketOnly[1]}/`);
  const subs = subresourceForms(pairs);
  let ok = false;
  let first = '';
  for (const d of dateLines) {
    for (const p of paths) {
      for (const s of subs) {
        const sts = `${head}${d}\n${amz}${p}${s}`;
        if (!first) first = sts;
        if (signaturesEqual(hmacSha1Base64(secret, sts), signature)) ok = true;
      }
    }
  }
  if (!ok) throw new S3Error('SignatureDoesNotMatch', undefined, { AWSAccessKeyId: accessKey, StringToSign: first, SignatureProvided: signature.slice(0, 64) });

  // SigV2 signs no payload hash; an x-amz-content-sha256 the client sent is signed (an x-amz-* header) and so
  // honoured: a hex hash is verified, the unsigned modes decode as usual. Signed aws-chunked streams chain their
  // chunk signatures from a SigV4 request signature, which this request does not have.
  const declared = header('x-amz-content-sha256');
  const { mode, hash } = declared === undefined ? { mode: 'unsigned' as const, hash: undefined } : payloadModeOf(declared);
  if (mode === 'streaming-signed' || mode === 'streaming-signed-trailer') {
    throw new S3Error('InvalidRequest', `x-amz-content-sha256 ${declared} needs AWS4-HMAC-SHA256 (Signature Version 4) authentication.`);
  }
  const result: AuthResult = {
    accessKey,
    payloadMode: mode,
    signingKey: Buffer.alloc(0),
    seedSignature: '',
    scope: '',
    amzDate: '',
    presigned,
    region: '',
  };
  if (hash !== undefined) result.payloadHash = hash;
  return result;
}
