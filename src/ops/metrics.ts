/**
 * Prometheus metrics on a private prom-client Registry (never the global default registry), so several
 * gateways in one process (tests) do not collide. Served by the admin listener at /metrics:
 *   res.setHeader('content-type', metrics.contentType); res.end(await metrics.render());
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type CryptoDirection = 'encrypt' | 'decrypt';
/** Where a revocation refused a read: a CMK version, a KEK version, or a single DEK (block). */
export type RevocationLevel = 'cmk' | 'kek' | 'dek';

export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export interface MetricsOptions {
  /** Default process/Node metrics (process_cpu_seconds_total, nodejs_heap_*...). Default true. */
  defaultMetrics?: boolean;
  /** Labels added to every series (e.g. { instance: 'gw-1' }). */
  labels?: Record<string, string>;
}

export class Metrics {
  readonly registry: Registry;
  readonly requests: Counter<'op' | 'status'>;
  readonly requestDuration: Histogram<'op'>;
  readonly bytesIn: Counter;
  readonly bytesOut: Counter;
  readonly cryptoBytes: Counter<'direction'>;
  readonly cryptoQueueDepth: Gauge;
  readonly keyCacheHits: Counter;
  readonly keyCacheMisses: Counter;
  readonly keyUnwraps: Counter<'provider'>;
  readonly rewrapPending: Gauge<'dataset'>;
  readonly rewrapDone: Counter<'dataset'>;
  readonly rewrapHeaderKeys: Counter<'dataset'>;
  readonly revocationDenials: Counter<'level'>;
  readonly adminRefusals: Counter<'recorded'>;
  readonly bestEffortFailures: Counter<'what'>;
  private queueDepthSource: (() => number) | undefined;

  constructor(opts: MetricsOptions = {}) {
    this.registry = new Registry();
    if (opts.labels) this.registry.setDefaultLabels(opts.labels);
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'lakecrypt_requests_total',
      help: 'S3 requests handled, by operation and HTTP status.',
      labelNames: ['op', 'status'] as const,
      registers,
    });
    this.requestDuration = new Histogram({
      name: 'lakecrypt_request_duration_seconds',
      help: 'S3 request duration (until the response ends), by operation.',
      labelNames: ['op'] as const,
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.bytesIn = new Counter({ name: 'lakecrypt_bytes_in_total', help: 'Request body bytes received from clients.', registers });
    this.bytesOut = new Counter({ name: 'lakecrypt_bytes_out_total', help: 'Response body bytes sent to clients.', registers });
    this.cryptoBytes = new Counter({
      name: 'lakecrypt_crypto_bytes_total',
      help: 'Plaintext bytes encrypted or decrypted.',
      labelNames: ['direction'] as const,
      registers,
    });
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    this.cryptoQueueDepth = new Gauge({
      name: 'lakecrypt_crypto_pool_queue_depth',
      help: 'Crypto tasks waiting for a worker thread.',
      registers,
      collect() {
        if (self.queueDepthSource) {
          try {
            this.set(self.queueDepthSource());
          } catch {
            /* a failing source must not break /metrics */
          }
        }
      },
    });
    this.keyCacheHits = new Counter({ name: 'lakecrypt_key_cache_hits_total', help: 'Key cache hits (unwrapped KEKs, header plaintext).', registers });
    this.keyCacheMisses = new Counter({ name: 'lakecrypt_key_cache_misses_total', help: 'Key cache misses.', registers });
    this.keyUnwraps = new Counter({
      name: 'lakecrypt_key_unwraps_total',
      help: 'KEK unwrap calls made to a CMK provider.',
      labelNames: ['provider'] as const,
      registers,
    });
    this.rewrapPending = new Gauge({
      name: 'lakecrypt_rewrap_pending',
      help: 'Object headers still depending on another KEK version than the active one, or still to visit by a running job that walks headers, by dataset.',
      labelNames: ['dataset'] as const,
      registers,
    });
    this.rewrapDone = new Counter({
      name: 'lakecrypt_rewrap_done_total',
      help: 'Object headers resealed by re-wrap jobs that walk headers (format 1 to 2, re-key), by dataset.',
      labelNames: ['dataset'] as const,
      registers,
    });
    this.rewrapHeaderKeys = new Counter({
      name: 'lakecrypt_rewrap_header_keys_total',
      help: 'Header keys re-wrapped under the active KEK version by re-wrap jobs, by dataset.',
      labelNames: ['dataset'] as const,
      registers,
    });
    this.revocationDenials = new Counter({
      name: 'lakecrypt_revocation_denials_total',
      help: 'Reads refused because a key was revoked, by level (cmk, kek, dek).',
      labelNames: ['level'] as const,
      registers,
    });
    this.adminRefusals = new Counter({
      name: 'lakecrypt_admin_refusals_total',
      help: 'Admin API requests refused; recorded="false": an unauthenticated refusal only counted in an aggregate audit record.',
      labelNames: ['recorded'] as const,
      registers,
    });
    for (const recorded of ['true', 'false'] as const) this.adminRefusals.inc({ recorded }, 0);
    this.bestEffortFailures = new Counter({
      name: 'lakecrypt_best_effort_failures_total',
      help: 'Work done after the answer, or on the side, that failed (each also logged at warn): epoch-poll, lazy-rewrap, audit-plaintext-read, ...',
      labelNames: ['what'] as const,
      registers,
    });
    // Known label values start at 0 so dashboards and rate() see them before the first event.
    for (const direction of ['encrypt', 'decrypt'] as const) this.cryptoBytes.inc({ direction }, 0);
    for (const level of ['cmk', 'kek', 'dek'] as const) this.revocationDenials.inc({ level }, 0);
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Prometheus text exposition of every series. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** Set the function read at each scrape for lakecrypt_crypto_pool_queue_depth (e.g. () => pool.queueSize). */
  setQueueDepthSource(fn: (() => number) | undefined): void {
    this.queueDepthSource = fn;
  }

  /** Record one finished request. */
  observeRequest(r: { op: string; status: number; seconds: number; bytesIn?: number; bytesOut?: number }): void {
    this.requests.inc({ op: r.op, status: String(r.status) });
    this.requestDuration.observe({ op: r.op }, r.seconds);
    if (r.bytesIn) this.bytesIn.inc(r.bytesIn);
    if (r.bytesOut) this.bytesOut.inc(r.bytesOut);
  }

  /** Start timing a request; call the result when the response has ended. */
  startRequest(op: string): (status: number, bytesIn?: number, bytesOut?: number) => void {
    const t0 = process.hrtime.bigint();
    return (status, bytesIn = 0, bytesOut = 0) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      this.observeRequest({ op, status, seconds, bytesIn, bytesOut });
    };
  }

  addCryptoBytes(direction: CryptoDirection, n: number): void {
    if (n > 0) this.cryptoBytes.inc({ direction }, n);
  }

  keyCacheHit(n = 1): void {
    this.keyCacheHits.inc(n);
  }

  keyCacheMiss(n = 1): void {
    this.keyCacheMisses.inc(n);
  }

  /** One unwrap by a CMK provider kind ("local" | "pkcs11"). */
  keyUnwrap(provider: string): void {
    this.keyUnwraps.inc({ provider });
  }

  setRewrapPending(dataset: string, n: number): void {
    this.rewrapPending.set({ dataset }, n);
  }

  addRewrapDone(dataset: string, n = 1): void {
    this.rewrapDone.inc({ dataset }, n);
  }

  addRewrapHeaderKeys(dataset: string, n = 1): void {
    this.rewrapHeaderKeys.inc({ dataset }, n);
  }

  bestEffortFailed(what: string): void {
    this.bestEffortFailures.inc({ what });
  }

  adminRefused(recorded: boolean): void {
    this.adminRefusals.inc({ recorded: recorded ? 'true' : 'false' });
  }

  revocationDenied(level: RevocationLevel): void {
    this.revocationDenials.inc({ level });
  }
}

export function createMetrics(opts?: MetricsOptions): Metrics {
  return new Metrics(opts);
}
