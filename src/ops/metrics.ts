/**
 * Prometheus metrics on a private prom-client Registry (never the global default registry), so several
 * gateways in one process (tests) do not collide. Served by the admin listener at /metrics:
 *   res.setHeader('content-type', metrics.contentType); res.end(await metrics.render());
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type CryptoDirection = 'encrypt' | 'decrypt';
/** Where a revocation refused a read: a CMK version, a KEK version, or a single DEK (block). */
export type RevocationLevel = 'cmk' | 'kek' | 'dek';

/** From 0.5 ms: a small GET takes a few milliseconds here, which a 5 ms first bucket could not tell apart. */
export const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/**
 * Transfers whose body moved through the native data plane (src/engine/dataplane.ts), by operation: plain counters
 * the data path bumps, read by lakecrypt_native_transfers_total at each scrape (as the crypto meter is).
 */
export const nativeTransfers = { get: 0, put: 0, part: 0 };

/** Allocator trims after bursts of traffic (src/ops/memory-trim.ts), read by lakecrypt_memory_trims_total at each scrape. */
export const memoryTrims = { done: 0 };

/** What /metrics reads at each scrape from the running gateway (each optional; a throwing source is skipped). */
export interface MetricSources {
  /** Plaintext bytes through the engine so far (src/engine/meter.ts). */
  cryptoBytes?: () => { encrypt: number; decrypt: number };
  /** Seconds since the revocation epoch was last confirmed (epoch-watch.ts), null before the first. */
  epochAgeSeconds?: () => number | null;
  /** Per CMK id: 1 when its last background check succeeded (src/ops/readiness.ts). */
  cmkUp?: () => Record<string, boolean>;
  /** Unwrapped keys currently cached. */
  keyCacheEntries?: () => number;
  /** Per dataset: KEK versions by state and the active version's age (read at most every 30 s). */
  datasets?: () => Promise<{ dataset: string; versions: Record<string, number>; activeAgeSeconds: number | null }[]>;
}

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
  readonly requestErrors: Counter<'op' | 'code'>;
  readonly integrityFailures: Counter<'reason'>;
  readonly requestsInFlight: Gauge;
  readonly buildInfo: Gauge<'version' | 'node'>;
  readonly backendDuration: Histogram<'op'>;
  readonly backendErrors: Counter<'op' | 'code'>;
  readonly cmkDuration: Histogram<'cmk' | 'op'>;
  readonly cmkErrors: Counter<'cmk' | 'op' | 'code'>;
  readonly cmkUp: Gauge<'cmk'>;
  readonly epochAge: Gauge;
  readonly keyCacheEntries: Gauge;
  readonly datasetKekVersions: Gauge<'dataset' | 'state'>;
  readonly datasetActiveKekAge: Gauge<'dataset'>;
  readonly jobLastSuccess: Gauge<'job' | 'dataset'>;
  readonly auditAppendFailures: Counter;
  readonly keyCacheEvictions: Counter;
  readonly nativeTransfers: Counter<'op'>;
  readonly memoryTrims: Counter;
  private nativeSeen = { get: 0, put: 0, part: 0 };
  private trimsSeen = 0;
  private queueDepthSource: (() => number) | undefined;
  private sources: MetricSources = {};
  private cryptoSeen = { encrypt: 0, decrypt: 0 };
  private datasetsRead: { at: number; rows: Awaited<ReturnType<NonNullable<MetricSources['datasets']>>> } | null = null;

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
    this.bytesIn = new Counter({ name: 'lakecrypt_received_bytes_total', help: 'Request body bytes received from S3 clients.', registers });
    this.bytesOut = new Counter({ name: 'lakecrypt_sent_bytes_total', help: 'Response body bytes sent to S3 clients.', registers });
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    this.cryptoBytes = new Counter({
      name: 'lakecrypt_crypto_bytes_total',
      help: 'Plaintext bytes encrypted or decrypted by the engine (PUTs, parts, copies under new keys, migration, re-key, GETs), counted when a stream completes.',
      labelNames: ['direction'] as const,
      registers,
      collect() {
        const now = self.read(self.sources.cryptoBytes);
        if (!now) return;
        for (const d of ['encrypt', 'decrypt'] as const) {
          if (now[d] > self.cryptoSeen[d]) this.inc({ direction: d }, now[d] - self.cryptoSeen[d]);
        }
        self.cryptoSeen = { ...now };
      },
    });
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
    this.requestErrors = new Counter({
      name: 'lakecrypt_request_errors_total',
      help: 'S3 requests answered with an error, by operation and S3 error code.',
      labelNames: ['op', 'code'] as const,
      registers,
    });
    this.integrityFailures = new Counter({
      name: 'lakecrypt_integrity_failures_total',
      help: 'Stored data or headers that failed authentication and were not served, by reason.',
      labelNames: ['reason'] as const,
      registers,
    });
    this.requestsInFlight = new Gauge({ name: 'lakecrypt_requests_in_flight', help: 'S3 requests being served now.', registers });
    this.buildInfo = new Gauge({
      name: 'lakecrypt_build_info',
      help: 'Always 1; the labels say which lakecrypt and Node.js run.',
      labelNames: ['version', 'node'] as const,
      registers,
    });
    this.backendDuration = new Histogram({
      name: 'lakecrypt_backend_request_duration_seconds',
      help: 'Backend (MinIO/S3/fs) calls until their answer (a GET: until its first byte), by operation.',
      labelNames: ['op'] as const,
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.backendErrors = new Counter({
      name: 'lakecrypt_backend_errors_total',
      help: 'Backend calls that failed, by operation and error code (NoSuchKey included: a lookup of a missing object).',
      labelNames: ['op', 'code'] as const,
      registers,
    });
    this.cmkDuration = new Histogram({
      name: 'lakecrypt_cmk_request_duration_seconds',
      help: 'CMK provider calls (wrap, unwrap, ping), by CMK id and operation.',
      labelNames: ['cmk', 'op'] as const,
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.cmkErrors = new Counter({
      name: 'lakecrypt_cmk_errors_total',
      help: 'CMK provider calls that failed, by CMK id, operation and error code (KeyRevoked: the customer disabled the key).',
      labelNames: ['cmk', 'op', 'code'] as const,
      registers,
    });
    this.cmkUp = new Gauge({
      name: 'lakecrypt_cmk_up',
      help: "1 when the CMK provider's last background check succeeded, else 0.",
      labelNames: ['cmk'] as const,
      registers,
      collect() {
        const up = self.read(self.sources.cmkUp);
        if (up) for (const [cmk, ok] of Object.entries(up)) this.set({ cmk }, ok ? 1 : 0);
      },
    });
    this.epochAge = new Gauge({
      name: 'lakecrypt_revocation_epoch_age_seconds',
      help: 'Age of the last confirmed read of the revocation epoch; above the revocation bound keys are refused (503 KeyStateStale).',
      registers,
      collect() {
        const a = self.read(self.sources.epochAgeSeconds);
        if (a !== undefined && a !== null) this.set(a);
      },
    });
    this.keyCacheEntries = new Gauge({
      name: 'lakecrypt_key_cache_entries',
      help: 'Unwrapped keys (KEKs, header keys) cached now.',
      registers,
      collect() {
        const n = self.read(self.sources.keyCacheEntries);
        if (n !== undefined) this.set(n);
      },
    });
    this.datasetKekVersions = new Gauge({
      name: 'lakecrypt_dataset_kek_versions',
      help: 'KEK versions of each dataset by state (active, decrypt-only, revoked, pending-destruction, destroyed); read at most every 30 s.',
      labelNames: ['dataset', 'state'] as const,
      registers,
      async collect() {
        const rows = await self.datasetRows();
        if (!rows) return;
        this.reset();
        for (const r of rows) for (const [state, n] of Object.entries(r.versions)) this.set({ dataset: r.dataset, state }, n);
      },
    });
    this.datasetActiveKekAge = new Gauge({
      name: 'lakecrypt_dataset_active_kek_age_seconds',
      help: "Age of each dataset's active KEK version (for rotation policies); read at most every 30 s.",
      labelNames: ['dataset'] as const,
      registers,
      async collect() {
        const rows = await self.datasetRows();
        if (!rows) return;
        this.reset();
        for (const r of rows) if (r.activeAgeSeconds !== null) this.set({ dataset: r.dataset }, r.activeAgeSeconds);
      },
    });
    this.jobLastSuccess = new Gauge({
      name: 'lakecrypt_job_last_success_timestamp_seconds',
      help: 'When a job last finished successfully on this gateway (Unix time), by job (rewrap) and dataset.',
      labelNames: ['job', 'dataset'] as const,
      registers,
    });
    this.auditAppendFailures = new Counter({
      name: 'lakecrypt_audit_append_failures_total',
      help: 'Audit records that could not be written (the operation that needed one failed or was refused, or a best-effort record is missing).',
      registers,
    });
    this.keyCacheEvictions = new Counter({
      name: 'lakecrypt_key_cache_evictions_total',
      help: 'Unwrapped keys dropped from the cache to make room (not expiries or revocations).',
      registers,
    });
    this.nativeTransfers = new Counter({
      name: 'lakecrypt_native_transfers_total',
      help: 'Object bodies moved by the native data plane (a GET opened, a PUT or an UploadPart sealed, in native code) instead of the Node path.',
      labelNames: ['op'] as const,
      registers,
      collect() {
        for (const op of ['get', 'put', 'part'] as const) {
          if (nativeTransfers[op] > self.nativeSeen[op]) this.inc({ op }, nativeTransfers[op] - self.nativeSeen[op]);
        }
        self.nativeSeen = { ...nativeTransfers };
      },
    });
    this.memoryTrims = new Counter({
      name: 'lakecrypt_memory_trims_total',
      help: 'Times freed memory was handed back to the system (malloc_trim) after a burst of requests.',
      registers,
      collect() {
        if (memoryTrims.done > self.trimsSeen) this.inc(memoryTrims.done - self.trimsSeen);
        self.trimsSeen = memoryTrims.done;
      },
    });
    // Known label values start at 0 so dashboards and rate() see them before the first event.
    for (const direction of ['encrypt', 'decrypt'] as const) this.cryptoBytes.inc({ direction }, 0);
    for (const op of ['get', 'put'] as const) this.nativeTransfers.inc({ op }, 0);
    for (const level of ['cmk', 'kek', 'dek'] as const) this.revocationDenials.inc({ level }, 0);
    for (const provider of ['local', 'pkcs11', 'transit', 'awskms']) this.keyUnwraps.inc({ provider }, 0);
    // The event-loop lag histogram samples with a libuv timer: prom-client's default 10 ms woke an idle gateway 100
    // times a second (2% of a core at rest, bench/README.md "Idle"); 100 ms still sees any stall a scrape cares about.
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 100 });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Prometheus text exposition of every series. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** What the scrape reads from the running gateway (see MetricSources). */
  setSources(s: MetricSources): void {
    this.sources = { ...this.sources, ...s };
  }

  /** `lakecrypt_build_info{version,node} 1`. */
  setBuildInfo(version: string): void {
    this.buildInfo.set({ version, node: process.version }, 1);
  }

  /** A source's value; undefined when there is none or it threw (a broken source must not break /metrics). */
  private read<T>(fn: (() => T) | undefined): T | undefined {
    if (!fn) return undefined;
    try {
      return fn();
    } catch {
      return undefined;
    }
  }

  /** The datasets source, read at most every 30 s (it reads the keystore); null when none or it failed. */
  private async datasetRows(): Promise<Awaited<ReturnType<NonNullable<MetricSources['datasets']>>> | null> {
    const src = this.sources.datasets;
    if (!src) return null;
    const now = Date.now();
    if (this.datasetsRead && now - this.datasetsRead.at < 30_000) return this.datasetsRead.rows;
    try {
      this.datasetsRead = { at: now, rows: await src() };
    } catch {
      // a keystore read that fails leaves the last figures (their age is the scrape's concern, not an error)
      if (!this.datasetsRead) return null;
    }
    return this.datasetsRead.rows;
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

  jobSucceeded(job: string, dataset: string, at = Date.now()): void {
    this.jobLastSuccess.set({ job, dataset }, Math.floor(at / 1000));
  }

  requestFailed(op: string, code: string): void {
    this.requestErrors.inc({ op, code });
  }

  integrityFailed(reason: string): void {
    this.integrityFailures.inc({ reason });
  }
}

export function createMetrics(opts?: MetricsOptions): Metrics {
  return new Metrics(opts);
}
