/**
 * AWS Signature Version 4 verification (header auth and presigned query auth) for S3.
 *
 * Pure protocol code: no I/O. The caller passes the raw request line pieces and headers as received.
 * Every failure is an S3Error with the code S3 itself would answer with.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { S3Error } from '../errors.ts';

export const ALGORITHM = 'AWS4-HMAC-SHA256';
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
export const STREAMING_SIGNED = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
export const STREAMING_SIGNED_TRAILER = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER';
export const STREAMING_UNSIGNED_TRAILER = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';
const ECDSA_STREAMING = /^STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD(-TRAILER)?$/;
const MAX_PRESIGN_EXPIRES = 604800;

export type PayloadMode =
  | 'signed'
  | 'unsigned'
  | 'streaming-signed'
  | 'streaming-unsigned-trailer'
  | 'streaming-signed-trailer';

export type HeaderMap = Record<string, string | string[] | undefined>;

export interface SigV4Request {
  method: string;
  /** Raw request path, still percent-encoded as received (no query string). */
  path: string;
  /** Raw query string without the leading '?' ('' when none). */
  query: string;
  /** Header names in any case (Node gives lowercase). */
  headers: HeaderMap;
}

export interface AuthResult {
  accessKey: string;
  payloadMode: PayloadMode;
  /** Lowercase hex SHA-256 of the body, when payloadMode is 'signed'. */
  payloadHash?: string;
  /** The derived SigV4 signing key (needed to verify streaming chunk signatures). */
  signingKey: Buffer;
  /** The request signature (seed for chunk signature chaining). */
  seedSignature: string;
  /** Credential scope `yyyymmdd/region/s3/aws4_request`. */
  scope: string;
  /** The request timestamp `yyyymmddThhmmssZ`. */
  amzDate: string;
  presigned: boolean;
  region: string;
}

export interface VerifyOptions {
  now?: Date;
  /** When set, the credential scope region must equal it (AuthorizationHeaderMalformed otherwise). */
  region?: string;
  /** Allowed clock skew, default 15 minutes. */
  maxSkewMs?: number;
  /** Service name in the scope, default 's3'. */
  service?: string;
}

// ---------------------------------------------------------------- primitives

export const sha256Hex = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');
export const hmacSha256 = (key: Uint8Array | string, data: string): Buffer => createHmac('sha256', key).update(data, 'utf8').digest();

/** Constant-time comparison of two hex signatures (false when lengths differ). */
export function signaturesEqual(a: string, b: string): boolean {
  const ba = Buffer.from(a, 'latin1');
  const bb = Buffer.from(b, 'latin1');
  if (ba.length !== bb.length) {
    // still spend a comparison so that timing does not depend on where they differ
    timingSafeEqual(ba, ba);
    return false;
  }
  return timingSafeEqual(ba, bb);
}

const signingKeyCache = new Map<string, Buffer>();
const SIGNING_KEY_CACHE_MAX = 256;
/** SHA-256 of the secrets seen (the signing-key cache is keyed by it, not by the secret): one hash per secret. */
const secretIds = new Map<string, string>();

function secretId(secret: string): string {
  let id = secretIds.get(secret);
  if (id === undefined) {
    if (secretIds.size >= SIGNING_KEY_CACHE_MAX) secretIds.clear();
    id = sha256Hex(secret);
    secretIds.set(secret, id);
  }
  return id;
}

/** kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request"); cached. */
export function deriveSigningKey(secret: string, date: string, region: string, service = 's3'): Buffer {
  const cacheKey = `${secretId(secret)}/${date}/${region}/${service}`;
  const hit = signingKeyCache.get(cacheKey);
  if (hit) return hit;
  const kDate = hmacSha256('AWS4' + secret, date);
  const kRegion = hmacSha256(kDate, region);
  const kService = hmacSha256(kRegion, service);
  const key = hmacSha256(kService, 'aws4_request');
  if (signingKeyCache.size >= SIGNING_KEY_CACHE_MAX) {
    const first = signingKeyCache.keys().next().value;
    if (first !== undefined) signingKeyCache.delete(first);
  }
  signingKeyCache.set(cacheKey, key);
  return key;
}

const HEX = '0123456789ABCDEF';
/** Only unreserved characters (and '/'): decoding and re-encoding leave such a string as it is. */
const PLAIN_PATH_RE = /^[A-Za-z0-9\-._~/]*$/;
const PLAIN_COMPONENT_RE = /^[A-Za-z0-9\-._~]*$/;
const isUnreserved = (c: number): boolean =>
  (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) ||
  c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e;

/** RFC 3986 encoding of raw bytes as AWS does (unreserved kept, rest %XX uppercase; '/' kept when keepSlash). */
export function uriEncodeBytes(bytes: Uint8Array, keepSlash: boolean): string {
  let out = '';
  for (const c of bytes) {
    if (isUnreserved(c) || (keepSlash && c === 0x2f)) out += String.fromCharCode(c);
    else out += '%' + HEX[c >> 4] + HEX[c & 15];
  }
  return out;
}

/** AWS UriEncode of a string (UTF-8). A string of unreserved characters (and '/' when kept) is its own encoding. */
export const uriEncode = (s: string, keepSlash = false): string =>
  (keepSlash ? PLAIN_PATH_RE : PLAIN_COMPONENT_RE).test(s) ? s : uriEncodeBytes(Buffer.from(s, 'utf8'), keepSlash);

const hexVal = (c: number): number =>
  c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x41 && c <= 0x46 ? c - 55 : c >= 0x61 && c <= 0x66 ? c - 87 : -1;

/**
 * Lenient percent-decoding to bytes: invalid `%` sequences are kept literally; non-ASCII characters are
 * taken as UTF-8. When plusIsSpace, '+' decodes to a space (query strings).
 */
export function percentDecodeBytes(s: string, plusIsSpace = false): Buffer {
  const src = Buffer.from(s, 'utf8');
  const out = Buffer.allocUnsafe(src.length);
  let j = 0;
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === 0x25 && i + 2 < src.length) {
      const h = hexVal(src[i + 1]);
      const l = hexVal(src[i + 2]);
      if (h >= 0 && l >= 0) {
        out[j++] = (h << 4) | l;
        i += 2;
        continue;
      }
    }
    out[j++] = plusIsSpace && c === 0x2b ? 0x20 : c;
  }
  return out.subarray(0, j);
}

/** Canonical URI as S3 computes it: decode the raw path once and re-encode every byte (no double encoding). */
export function canonicalUri(rawPath: string): string {
  const path = rawPath === '' ? '/' : rawPath;
  if (PLAIN_PATH_RE.test(path)) return path;
  return uriEncodeBytes(percentDecodeBytes(path), true);
}

/** Decode then AWS-encode one query component (key or value). */
function canonicalComponent(raw: string, plusIsSpace: boolean): string {
  if (PLAIN_COMPONENT_RE.test(raw)) return raw;
  return uriEncodeBytes(percentDecodeBytes(raw, plusIsSpace), false);
}

/** Lenient percent-decoding to a string (see percentDecodeBytes). */
function decodeComponent(raw: string, plusIsSpace: boolean): string {
  if (PLAIN_COMPONENT_RE.test(raw)) return raw;
  return percentDecodeBytes(raw, plusIsSpace).toString('utf8');
}

/**
 * Canonical query string: parameters decoded and re-encoded, sorted by encoded key then encoded value.
 * `exclude` names (case-sensitive, as sent) are dropped (X-Amz-Signature for presigned requests).
 */
export function canonicalQuery(rawQuery: string, exclude: ReadonlySet<string> = new Set(), plusIsSpace = true): string {
  if (!rawQuery) return '';
  const pairs: Array<[string, string]> = [];
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rawK = eq < 0 ? part : part.slice(0, eq);
    const rawV = eq < 0 ? '' : part.slice(eq + 1);
    if (exclude.size > 0 && exclude.has(decodeComponent(rawK, plusIsSpace))) continue;
    const k = canonicalComponent(rawK, plusIsSpace);
    const v = canonicalComponent(rawV, plusIsSpace);
    pairs.push([k, v]);
  }
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

/** Decoded query parameters (first value wins), '+' as space. */
export function parseQuery(rawQuery: string): Map<string, string> {
  const m = new Map<string, string>();
  if (!rawQuery) return m;
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const k = decodeComponent(eq < 0 ? part : part.slice(0, eq), true);
    const v = decodeComponent(eq < 0 ? '' : part.slice(eq + 1), true);
    if (!m.has(k)) m.set(k, v);
  }
  return m;
}

/** Single header value by lowercase name (arrays joined with ','). */
export function getHeader(headers: HeaderMap, name: string): string | undefined {
  const lname = name.toLowerCase();
  let v = headers[lname];
  if (v === undefined) {
    for (const k of Object.keys(headers)) {
      if (k.toLowerCase() === lname) {
        v = headers[k];
        break;
      }
    }
  }
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : v;
}

/** Whitespace that the `\s+` -> " " rewrite would change: a run longer than one, or not a plain space. */
const SPACE_RUN_RE = / \s|[^\S ]/;
const canonValue = (x: string): string => {
  const t = x.trim();
  return SPACE_RUN_RE.test(t) ? t.replace(/\s+/g, ' ') : t;
};
const canonHeaderValue = (v: string | string[] | undefined): string => {
  if (v === undefined) return '';
  if (!Array.isArray(v)) return canonValue(v);
  return v.map(canonValue).join(',');
};

const UPPER_RE = /[A-Z]/;

export function canonicalHeaders(headers: HeaderMap, signedHeaders: string[]): string {
  // Node's IncomingMessage gives lowercase names, duplicates already merged: look the signed names up directly.
  let allLower = true;
  for (const k in headers) {
    if (UPPER_RE.test(k)) {
      allLower = false;
      break;
    }
  }
  if (allLower) {
    let out = '';
    for (const h of signedHeaders) out += `${h}:${canonHeaderValue(Object.hasOwn(headers, h) ? headers[h] : undefined)}\n`;
    return out;
  }
  const lower = new Map<string, string | string[]>();
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    const lk = k.toLowerCase();
    const prev = lower.get(lk);
    if (prev === undefined) lower.set(lk, v);
    else lower.set(lk, [...(Array.isArray(prev) ? prev : [prev]), ...(Array.isArray(v) ? v : [v])]);
  }
  return signedHeaders.map((h) => `${h}:${canonHeaderValue(lower.get(h))}\n`).join('');
}

export function buildCanonicalRequest(
  method: string, canonUri: string, canonQuery: string, canonHeaders: string, signedHeaders: string[], payload: string,
): string {
  return `${method}\n${canonUri}\n${canonQuery}\n${canonHeaders}\n${signedHeaders.join(';')}\n${payload}`;
}

export const stringToSign = (amzDate: string, scope: string, canonicalRequest: string): string =>
  `${ALGORITHM}\n${amzDate}\n${scope}\n${sha256Hex(canonicalRequest)}`;

export const signString = (signingKey: Uint8Array, sts: string): string =>
  createHmac('sha256', signingKey).update(sts, 'utf8').digest('hex');

// ---------------------------------------------------------------- verification

const AMZ_DATE_RE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const SIG_RE = /^[0-9a-f]{64}$/;
const HEADER_NAME_RE = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

/** Dates seen recently (a request's X-Amz-Date and its credential date repeat across requests). */
const amzDates = new Map<string, number>();

/** `yyyymmddThhmmssZ` as epoch ms, undefined when malformed or not a calendar date. */
function amzDateMs(s: string): number | undefined {
  const hit = amzDates.get(s);
  if (hit !== undefined) return hit;
  const m = AMZ_DATE_RE.exec(s);
  if (!m) return undefined;
  const d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
  if (Number.isNaN(d.getTime()) || d.getUTCDate() !== +m[3] || d.getUTCMonth() !== +m[2] - 1) return undefined;
  if (amzDates.size >= 64) amzDates.clear();
  amzDates.set(s, d.getTime());
  return d.getTime();
}

/** RFC 7231 / RFC 850 / asctime date (the `Date` header fallback for header auth). */
function parseHttpDate(s: string): Date | undefined {
  const t = Date.parse(s);
  return Number.isNaN(t) ? undefined : new Date(t);
}

/** A Date or x-amz-date value, HTTP-date or `yyyymmddThhmmssZ`, as epoch ms (SigV2 header auth takes either). */
export function parseHttpOrAmzDate(s: string): number | undefined {
  const t = s.trim();
  return amzDateMs(t) ?? parseHttpDate(t)?.getTime();
}

const formatAmzDate = (d: Date): string => d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');

interface ParsedCredential {
  accessKey: string;
  date: string;
  region: string;
  service: string;
}

function parseCredential(cred: string, malformed: (msg: string) => S3Error): ParsedCredential {
  const parts = cred.split('/');
  if (parts.length < 5) throw malformed(`the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".`);
  const terminator = parts.pop()!;
  const service = parts.pop()!;
  const region = parts.pop()!;
  const date = parts.pop()!;
  const accessKey = parts.join('/');
  if (!accessKey) throw malformed('the Credential is mal-formed; the access key is empty.');
  if (!/^\d{8}$/.test(date) || amzDateMs(`${date}T000000Z`) === undefined) throw malformed(`Invalid credential date "${date}". This date is not the same as X-Amz-Date: "${date}".`);
  if (!region) throw malformed('the Credential is mal-formed; the region is empty.');
  if (terminator !== 'aws4_request') throw malformed(`the Credential is mal-formed; incorrect terminal "${terminator}". This endpoint uses "aws4_request".`);
  return { accessKey, date, region, service };
}

function parseSignedHeaders(s: string, malformed: (msg: string) => S3Error): string[] {
  if (!s) throw malformed('the SignedHeaders list is empty.');
  const list = s.split(';');
  for (const h of list) {
    if (!HEADER_NAME_RE.test(h)) throw malformed(`the SignedHeaders list contains an invalid name "${h.slice(0, 64)}".`);
  }
  if (!list.includes('host')) throw malformed('the SignedHeaders list must contain "host".');
  return list;
}

/** The payload mode an x-amz-content-sha256 value names (InvalidArgument for anything else). */
export function payloadModeOf(value: string): { mode: PayloadMode; hash?: string } {
  if (/^[0-9a-fA-F]{64}$/.test(value)) return { mode: 'signed', hash: value.toLowerCase() };
  switch (value) {
    case UNSIGNED_PAYLOAD: return { mode: 'unsigned' };
    case STREAMING_SIGNED: return { mode: 'streaming-signed' };
    case STREAMING_SIGNED_TRAILER: return { mode: 'streaming-signed-trailer' };
    case STREAMING_UNSIGNED_TRAILER: return { mode: 'streaming-unsigned-trailer' };
  }
  if (ECDSA_STREAMING.test(value)) throw new S3Error('NotImplemented', 'SigV4A (ECDSA) streaming payloads are not supported.');
  throw new S3Error('InvalidArgument', 'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, or a valid sha256 value.', { ArgumentName: 'x-amz-content-sha256' });
}

/** Parse `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`. */
export function parseAuthorizationHeader(value: string): { credential: string; signedHeaders: string; signature: string } {
  const malformed = (msg: string) => new S3Error('AuthorizationHeaderMalformed', `The authorization header is malformed; ${msg}`);
  const v = value.trim();
  const sp = v.search(/\s/);
  const algorithm = sp < 0 ? v : v.slice(0, sp);
  if (algorithm === 'AWS4-ECDSA-P256-SHA256') throw new S3Error('NotImplemented', 'SigV4A (AWS4-ECDSA-P256-SHA256) is not supported.');
  if (algorithm !== ALGORITHM) {
    throw new S3Error('InvalidRequest', 'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.');
  }
  const rest = sp < 0 ? '' : v.slice(sp + 1);
  const fields = new Map<string, string>();
  for (const item of rest.split(',')) {
    const t = item.trim();
    if (!t) continue;
    const eq = t.indexOf('=');
    if (eq <= 0) throw malformed(`the authorization component "${t.slice(0, 64)}" is malformed.`);
    const k = t.slice(0, eq).trim();
    if (fields.has(k)) throw malformed(`duplicate component "${k}".`);
    fields.set(k, t.slice(eq + 1).trim());
  }
  const credential = fields.get('Credential');
  const signedHeaders = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (credential === undefined) throw malformed('missing Credential.');
  if (signedHeaders === undefined) throw malformed('missing SignedHeaders.');
  if (signature === undefined) throw malformed('missing Signature.');
  return { credential, signedHeaders, signature };
}

/**
 * x-amz-* headers a header-auth request may leave out of SignedHeaders: both are bound by the signature anyway
 * (x-amz-date is in the string to sign, x-amz-content-sha256 is the canonical request's payload line).
 */
const HEADER_AUTH_UNSIGNED_OK = new Set(['x-amz-date', 'x-amz-content-sha256']);

/**
 * Unsigned x-amz-* headers are refused as S3 does (AccessDenied "There were headers present in the request which
 * were not signed", HeadersNotSigned naming them): with header auth every x-amz-* header present must be signed —
 * a captured PUT must not be replayed with other metadata, tagging, copy source or checksum trailer —; on a
 * presigned URL likewise, but for x-amz-content-sha256, which SDKs send beside a presigned URL unsigned
 * (its value is the canonical request's payload line, so it is bound all the same).
 */
function checkUnsignedHeaders(headers: HeaderMap, signed: readonly string[], presigned: boolean): void {
  let unsigned: string[] | undefined;
  for (const name of Object.keys(headers)) {
    // fast reject: Node gives lowercase names; anything not starting with "x-" is not an x-amz-* header
    if (name.length < 6 || (name.charCodeAt(0) | 0x20) !== 0x78 || name.charCodeAt(1) !== 0x2d) continue;
    const n = name.toLowerCase();
    if (!n.startsWith('x-amz-') || signed.includes(n) || headers[name] === undefined) continue;
    if (presigned ? n === 'x-amz-content-sha256' : HEADER_AUTH_UNSIGNED_OK.has(n)) continue;
    (unsigned ??= []).push(n);
  }
  if (unsigned) {
    throw new S3Error('AccessDenied', 'There were headers present in the request which were not signed', { HeadersNotSigned: unsigned.join(', ') });
  }
}

/**
 * Verify a SigV4 request. Throws S3Error:
 * AccessDenied (anonymous, expired / not yet valid presigned), InvalidAccessKeyId, SignatureDoesNotMatch,
 * RequestTimeTooSkewed, AuthorizationHeaderMalformed, AuthorizationQueryParametersError, InvalidRequest,
 * InvalidArgument, NotImplemented (SigV4A).
 */
export function verifyRequest(
  req: SigV4Request,
  lookupSecret: (accessKey: string) => string | undefined,
  opts: VerifyOptions = {},
): AuthResult {
  const now = opts.now ?? new Date();
  const maxSkew = opts.maxSkewMs ?? 900_000;
  const service = opts.service ?? 's3';
  const authHeader = getHeader(req.headers, 'authorization');
  const query = parseQuery(req.query);
  const hasQueryAuth = query.has('X-Amz-Algorithm') || query.has('X-Amz-Signature') || query.has('X-Amz-Credential');

  if (authHeader !== undefined && hasQueryAuth) {
    throw new S3Error('InvalidArgument', 'Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified.', { ArgumentName: 'Authorization' });
  }
  if (authHeader === undefined && query.has('AWSAccessKeyId') && query.has('Signature')) {
    throw new S3Error('InvalidRequest', 'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.');
  }
  if (authHeader === undefined && !hasQueryAuth) throw new S3Error('AccessDenied', 'Anonymous access is not allowed.');

  const presigned = authHeader === undefined;
  let credential: string;
  let signedHeadersStr: string;
  let signature: string;
  let amzDate: string;
  let payloadValue: string | undefined;
  let malformed: (msg: string) => S3Error;
  let expires = 0;

  if (!presigned) {
    malformed = (msg) => new S3Error('AuthorizationHeaderMalformed', `The authorization header is malformed; ${msg}`);
    ({ credential, signedHeaders: signedHeadersStr, signature } = parseAuthorizationHeader(authHeader));
    const xAmzDate = getHeader(req.headers, 'x-amz-date');
    if (xAmzDate !== undefined) {
      if (amzDateMs(xAmzDate.trim()) === undefined) throw new S3Error('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
      amzDate = xAmzDate.trim();
    } else {
      const dh = getHeader(req.headers, 'date');
      const d = dh === undefined ? undefined : parseHttpDate(dh);
      if (!d) throw new S3Error('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
      amzDate = formatAmzDate(d);
    }
    payloadValue = getHeader(req.headers, 'x-amz-content-sha256')?.trim();
    if (payloadValue === undefined) throw new S3Error('InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
  } else {
    malformed = (msg) => new S3Error('AuthorizationQueryParametersError', msg);
    const alg = query.get('X-Amz-Algorithm');
    if (alg === 'AWS4-ECDSA-P256-SHA256') throw new S3Error('NotImplemented', 'SigV4A (AWS4-ECDSA-P256-SHA256) is not supported.');
    if (alg !== ALGORITHM) throw malformed('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"');
    const c = query.get('X-Amz-Credential');
    const sh = query.get('X-Amz-SignedHeaders');
    const sig = query.get('X-Amz-Signature');
    const dt = query.get('X-Amz-Date');
    const ex = query.get('X-Amz-Expires');
    if (c === undefined || sh === undefined || sig === undefined || dt === undefined || ex === undefined) {
      throw malformed('Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.');
    }
    credential = c;
    signedHeadersStr = sh;
    signature = sig;
    if (amzDateMs(dt) === undefined) throw malformed('X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd\'T\'HHmmss\'Z\'"');
    amzDate = dt;
    if (!/^-?\d{1,7}$/.test(ex)) throw malformed('X-Amz-Expires should be a number');
    expires = Number(ex);
    // S3 takes 1..604800 seconds. A URL valid for 0 s is refused as malformed (S3's code), not served as expired:
    // MinIO answers AccessDenied "Request has expired" there; the code a client sees follows S3.
    if (expires < 0) throw malformed('X-Amz-Expires must be non-negative');
    if (expires < 1) throw malformed('X-Amz-Expires must be at least 1 second');
    if (expires > MAX_PRESIGN_EXPIRES) throw malformed('X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds');
    let fromQuery: string | undefined;
    for (const [k, v] of query) if (k.toLowerCase() === 'x-amz-content-sha256') fromQuery ??= v;
    payloadValue = getHeader(req.headers, 'x-amz-content-sha256')?.trim() ?? fromQuery ?? UNSIGNED_PAYLOAD;
  }

  const cred = parseCredential(credential, malformed);
  if (cred.service !== service) throw malformed(`incorrect service "${cred.service}". This endpoint belongs to "${service}".`);
  if (opts.region !== undefined && cred.region !== opts.region) {
    // S3's own words and its <Region> element, which SDKs read to re-sign for the right region
    const msg = `${presigned ? 'Error parsing the X-Amz-Credential parameter' : 'The authorization header is malformed'}; the region '${cred.region.slice(0, 64)}' is wrong; expecting '${opts.region}'`;
    throw new S3Error(presigned ? 'AuthorizationQueryParametersError' : 'AuthorizationHeaderMalformed', msg, { Region: opts.region });
  }
  if (cred.date !== amzDate.slice(0, 8)) {
    throw malformed(`Invalid credential date "${cred.date}". This date is not the same as X-Amz-Date: "${amzDate.slice(0, 8)}".`);
  }
  const signedHeaders = parseSignedHeaders(signedHeadersStr, malformed);
  checkUnsignedHeaders(req.headers, signedHeaders, presigned);
  if (!SIG_RE.test(signature)) {
    if (presigned) throw malformed('X-Amz-Signature must be 64 lowercase hex characters');
    throw malformed('the Signature must be 64 lowercase hex characters.');
  }

  const { mode, hash } = payloadModeOf(payloadValue);

  // time checks
  const reqTime = amzDateMs(amzDate)!;
  const nowMs = now.getTime();
  if (presigned) {
    if (reqTime - nowMs > maxSkew) throw new S3Error('AccessDenied', 'Request is not valid yet');
    if (nowMs > reqTime + expires * 1000) throw new S3Error('AccessDenied', 'Request has expired', { 'X-Amz-Expires': String(expires) });
  } else if (Math.abs(nowMs - reqTime) > maxSkew) {
    throw new S3Error('RequestTimeTooSkewed', undefined, { RequestTime: amzDate, ServerTime: formatAmzDate(now), MaxAllowedSkewMilliseconds: String(maxSkew) });
  }

  const secret = lookupSecret(cred.accessKey);
  if (secret === undefined) throw new S3Error('InvalidAccessKeyId', undefined, { AWSAccessKeyId: cred.accessKey });

  const scope = `${cred.date}/${cred.region}/${cred.service}/aws4_request`;
  const signingKey = deriveSigningKey(secret, cred.date, cred.region, cred.service);
  const canonHeaders = canonicalHeaders(req.headers, signedHeaders);
  const exclude = presigned ? new Set(['X-Amz-Signature']) : new Set<string>();

  // Candidates: the S3 canonical form (decode once, re-encode), then the raw forms some clients sign with.
  const canonUri = canonicalUri(req.path);
  const rawUri = req.path === '' ? '/' : req.path;
  const uris = canonUri === rawUri ? [canonUri] : [canonUri, rawUri];
  const canonQuery = canonicalQuery(req.query, exclude, true);
  // The two query forms differ only where the raw query has a '+'.
  const queries = req.query.includes('+') ? new Set([canonQuery, canonicalQuery(req.query, exclude, false)]) : [canonQuery];
  let ok = false;
  let firstCanonical = '';
  for (const u of uris) {
    for (const q of queries) {
      const cr = buildCanonicalRequest(req.method.toUpperCase(), u, q, canonHeaders, signedHeaders, payloadValue);
      if (!firstCanonical) firstCanonical = cr;
      if (signaturesEqual(signString(signingKey, stringToSign(amzDate, scope, cr)), signature)) ok = true;
    }
  }
  if (!ok) {
    throw new S3Error('SignatureDoesNotMatch', undefined, {
      AWSAccessKeyId: cred.accessKey,
      StringToSign: stringToSign(amzDate, scope, firstCanonical),
      CanonicalRequest: firstCanonical,
    });
  }

  const result: AuthResult = {
    accessKey: cred.accessKey,
    payloadMode: mode,
    signingKey,
    seedSignature: signature,
    scope,
    amzDate,
    presigned,
    region: cred.region,
  };
  if (hash !== undefined) result.payloadHash = hash;
  return result;
}
