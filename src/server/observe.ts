import type { S3Error } from '../errors.ts';
import { logAccess, type Logger } from '../ops/logger.ts';
import type { Metrics, RevocationLevel } from '../ops/metrics.ts';
import type { S3Request } from './request.ts';

/**
 * Where a revocation refused the request: a block's DEK (the engine's DekErased), the customer's CMK (the
 * provider refused the unwrap: tagged where the key service calls it), else a KEK version or header key.
 */
export function revocationLevelOf(err: S3Error): RevocationLevel {
  if (err.detail.Reason === 'DekErased') return 'dek';
  return err.revocation ?? 'kek';
}

/** The per-request hook: Prometheus series, the access log, and server errors (cause logged, never sent). */
export function observeRequests(metrics: Metrics, log?: Logger, accessLog = true) {
  return (r: S3Request, status: number, ms: number, err?: S3Error): void => {
    metrics.requests.inc({ op: r.op, status: String(status) });
    metrics.requestDuration.observe({ op: r.op }, ms / 1000);
    metrics.bytesIn.inc(r.bytesIn);
    metrics.bytesOut.inc(r.bytesOut);
    if (err) {
      metrics.requestFailed(r.op, err.code);
      if (err.code === 'KeyRevoked') metrics.revocationDenied(revocationLevelOf(err));
      if (err.code === 'IntegrityError') metrics.integrityFailed(err.detail.Reason ?? 'other');
    }
    if (!log) return;
    if (err && err.status >= 500) log.error({ reqId: r.id, op: r.op, err: err.cause ?? err }, 'request failed');
    if (accessLog) {
      logAccess(log, {
        reqId: r.id,
        op: r.op,
        bucket: r.bucket || undefined,
        key: r.key || undefined,
        status,
        ms: Math.round(ms * 10) / 10,
        bytesIn: r.bytesIn,
        bytesOut: r.bytesOut,
        range: r.header('range'),
        accessKey: r.user?.accessKey,
        errorCode: err?.code,
      });
    }
  };
}
