import type { ServerResponse } from 'node:http';
import { S3Error, isS3Error } from '../errors.ts';
import { xmlEscape as esc } from '../s3/xml.ts';


/** The one place an error becomes an S3 response. Unknown errors become InternalError (cause logged, not sent). */
export function toS3Error(e: unknown): S3Error {
  if (isS3Error(e)) return e;
  const code = (e as { code?: string })?.code;
  if (code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ECONNRESET') return new S3Error('IncompleteBody', undefined, {}, { cause: e });
  return new S3Error('InternalError', undefined, {}, { cause: e });
}

export function errorXml(err: S3Error, resource: string, requestId: string): string {
  const detail = Object.entries(err.detail)
    .map(([k, v]) => `<${k}>${esc(v)}</${k}>`)
    .join('');
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${err.code}</Code><Message>${esc(err.message)}</Message>${detail}` +
    `<Resource>${esc(resource)}</Resource><RequestId>${requestId}</RequestId></Error>`
  );
}

// x-lakecrypt-admin-port: main.ts adds it to requests for /admin/ paths, so the CLI given this port learns the admin one.
const KEPT_ON_ERROR = new Set(['server', 'x-content-type-options', 'content-security-policy', 'x-lakecrypt-admin-port']);

/**
 * Send an error. If the status line already went out (a failure found mid-body), the only safe answer is to
 * abort the connection: the client sees a truncated body, never unauthenticated or wrong bytes.
 */
export function sendError(res: ServerResponse, e: unknown, resource: string, requestId: string, method: string): S3Error {
  const err = toS3Error(e);
  if (res.headersSent) {
    res.destroy(err);
    return err;
  }
  const body = method === 'HEAD' || err.status === 304 ? '' : errorXml(err, resource, requestId);
  // Headers a handler set for the object (type, encoding, checksums, length) do not describe an error body; the
  // ones the gateway sends on every response stay.
  for (const name of res.getHeaderNames()) if (!KEPT_ON_ERROR.has(name)) res.removeHeader(name);
  res.statusCode = err.status;
  res.setHeader('x-amz-request-id', requestId);
  if (err.code === 'NotModified') {
    for (const h of ['ETag', 'Last-Modified']) if (err.detail[h]) res.setHeader(h, err.detail[h]);
  }
  if (body) {
    res.setHeader('Content-Type', 'application/xml');
    res.setHeader('Content-Length', Buffer.byteLength(body));
  }
  // The code on every error, and on HEAD (no body) the message too, as MinIO's x-minio-error-code/-desc do: a
  // revoked object's HEAD says why, not only "403".
  res.setHeader('x-lakecrypt-error-code', err.code);
  if (method === 'HEAD') res.setHeader('x-lakecrypt-error-desc', headerSafe(err.message));
  if (err.code === 'KeyRevoked') res.setHeader('x-lakecrypt-error', 'KeyRevoked');
  res.end(body);
  return err;
}

/** A message as a header value: printable ASCII kept, anything else percent-encoded, at most 512 characters. */
function headerSafe(m: string): string {
  return m.replace(/[^\x20-\x7e]/gu, (c) => encodeURIComponent(c)).slice(0, 512);
}

export function sendXml(res: ServerResponse, status: number, xml: string, headers: Record<string, string> = {}): void {
  res.statusCode = status;
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.setHeader('Content-Type', 'application/xml');
  res.setHeader('Content-Length', Buffer.byteLength(xml));
  res.end(xml);
}
