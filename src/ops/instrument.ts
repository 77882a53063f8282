/**
 * Backend and CMK calls as Prometheus sees them, without either knowing about metrics: a Proxy times each call of
 * the listed methods (until its promise settles: for a GET that is the time to the first byte, the body streams
 * after) and counts failures by error code. Everything else passes through untouched.
 */
import type { Backend } from '../backend/types.ts';
import type { CmkProvider } from '../keys/types.ts';
import type { Metrics } from './metrics.ts';

const BACKEND_OPS = [
  'listBuckets', 'createBucket', 'bucketExists', 'deleteBucket', 'putObject', 'getObject', 'getBuffer', 'headObject',
  'deleteObject', 'copyObject', 'listObjects', 'createMultipart', 'uploadPart', 'completeMultipart', 'abortMultipart',
  'listMultipartUploads',
] as const;

const CMK_OPS = ['wrap', 'unwrap', 'ping'] as const;

/** The error's S3-style code, or its class name: bounded label values, never a message. */
export function codeOf(e: unknown): string {
  const c = (e as { code?: unknown } | null)?.code;
  if (typeof c === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(c)) return c;
  return e instanceof Error ? e.name : 'Error';
}

function timed<T extends object>(target: T, ops: readonly string[], done: (op: string, seconds: number, err?: unknown) => void): T {
  const wrapped = new Map<string | symbol, unknown>();
  return new Proxy(target, {
    get(t, p) {
      const v = Reflect.get(t, p) as unknown;
      if (typeof v !== 'function') return v;
      let w = wrapped.get(p);
      if (!w) {
        const fn = v as (...a: unknown[]) => unknown;
        w = ops.includes(p as string)
          ? (...args: unknown[]) => {
              const t0 = process.hrtime.bigint();
              const seconds = () => Number(process.hrtime.bigint() - t0) / 1e9;
              const r = fn.apply(t, args);
              // the caller gets r itself; this side branch only observes it (rejections included)
              void Promise.resolve(r).then(
                () => done(p as string, seconds()),
                (e: unknown) => done(p as string, seconds(), e),
              );
              return r;
            }
          : fn.bind(t);
        wrapped.set(p, w);
      }
      return w;
    },
  });
}

/** The backend with every call timed (`lakecrypt_backend_request_duration_seconds`) and failures counted by code. */
export function instrumentBackend(backend: Backend, metrics: Metrics): Backend {
  return timed(backend, BACKEND_OPS, (op, seconds, err) => {
    metrics.backendDuration.observe({ op }, seconds);
    if (err !== undefined) metrics.backendErrors.inc({ op, code: codeOf(err) });
  });
}

/** Each CMK provider with its wrap/unwrap/ping calls timed and counted, by CMK id and provider kind. */
export function instrumentCmks(cmks: Record<string, CmkProvider>, metrics: Metrics): Record<string, CmkProvider> {
  const out: Record<string, CmkProvider> = {};
  for (const [id, p] of Object.entries(cmks)) {
    out[id] = timed(p, CMK_OPS, (op, seconds, err) => {
      metrics.cmkDuration.observe({ cmk: id, op }, seconds);
      if (op === 'unwrap' && err === undefined) metrics.keyUnwrap(p.kind);
      if (err !== undefined) metrics.cmkErrors.inc({ cmk: id, op, code: codeOf(err) });
    });
  }
  return out;
}
