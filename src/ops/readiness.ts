/**
 * Readiness from cached state. A probe costs no backend or KMS round trip: load balancers probe every gateway every
 * few seconds, and a probe that did its own round trip would, with a slow shared backend, fail on every gateway at
 * the same moment (all marked down) while the gateways themselves still served. Instead the probe reads:
 * - the revocation epoch's freshness (epoch-watch.ts: the age of the last confirmed poll, which is a backend read
 *   every 250 ms) — unready when older than the revocation bound, exactly when keys are refused;
 * - each CMK provider's last check (a ping every `cmkCheckMs` in the background) — unready when the last check
 *   failed or none succeeded for three periods.
 * The answer carries the ages, so an operator sees how old what it says is.
 */
import type { Logger } from './logger.ts';

export interface EpochSource {
  epochFreshness(): { ageMs: number; boundMs: number; fresh: boolean };
}

export interface Pingable {
  ping(): Promise<void>;
}

export interface ReadyState {
  ready: boolean;
  /** The first failing component: `shutdown`, `epoch`, or `cmk:<id>`. */
  failing?: string;
  epoch: { ageMs: number | null; boundMs: number };
  cmks: Record<string, { ok: boolean; ageMs: number | null; error?: string }>;
}

interface CmkCheck {
  ok: boolean;
  /** Date.now() of the last successful check (null: none yet). */
  okAt: number | null;
  error?: string;
  running: boolean;
  /** At least one check finished (so the first failure is logged, and then only changes). */
  checked: boolean;
}

export class Readiness {
  private readonly checks = new Map<string, CmkCheck>();
  private timer?: NodeJS.Timeout;
  private readonly cmkCheckMs: number;

  constructor(
    private readonly o: { epoch: EpochSource; cmks: Record<string, Pingable>; cmkCheckMs?: number; log?: Pick<Logger, 'warn' | 'info'> },
  ) {
    this.cmkCheckMs = o.cmkCheckMs ?? 5000;
    for (const id of Object.keys(o.cmks)) this.checks.set(id, { ok: false, okAt: null, running: false, checked: false });
  }

  /**
   * Check every CMK now and then every `cmkCheckMs`. Resolves when the first checks are done, or after `waitMs` at
   * most (start-up does not hang on an unreachable HSM or KMS: the probe then says which one is not checked).
   */
  async start(waitMs = 2000): Promise<void> {
    const first = this.checkCmks();
    if (!this.timer) {
      this.timer = setInterval(() => void this.checkCmks(), this.cmkCheckMs);
      this.timer.unref?.();
    }
    let t: NodeJS.Timeout | undefined;
    await Promise.race([first, new Promise<void>((r) => (t = setTimeout(r, waitMs)))]);
    clearTimeout(t);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The probe's answer, from cached state only. */
  state(stopping: boolean): ReadyState {
    const e = this.o.epoch.epochFreshness();
    const now = Date.now();
    const cmks: ReadyState['cmks'] = {};
    let failing: string | undefined = stopping ? 'shutdown' : e.fresh ? undefined : 'epoch';
    for (const [id, c] of this.checks) {
      const ageMs = c.okAt === null ? null : now - c.okAt;
      const ok = c.ok && ageMs !== null && ageMs <= 3 * this.cmkCheckMs;
      cmks[id] = { ok, ageMs, ...(c.error ? { error: c.error } : {}) };
      if (!ok) failing ??= `cmk:${id}`;
    }
    return { ready: failing === undefined, ...(failing ? { failing } : {}), epoch: { ageMs: Number.isFinite(e.ageMs) ? Math.round(e.ageMs) : null, boundMs: e.boundMs }, cmks };
  }

  private checkCmks(): Promise<unknown> {
    const round: Promise<void>[] = [];
    for (const [id, p] of Object.entries(this.o.cmks)) {
      const c = this.checks.get(id)!;
      if (c.running) continue; // a ping still hanging: its age grows until the state says so
      c.running = true;
      const one = p.ping().then(
        () => {
          if (c.checked && !c.ok) this.o.log?.info({ cmk: id }, 'CMK provider answers again');
          c.ok = true;
          c.okAt = Date.now();
          c.error = undefined;
          c.checked = true;
        },
        (err: unknown) => {
          if (c.ok || !c.checked) this.o.log?.warn({ cmk: id, code: (err as { code?: string }).code }, 'CMK provider check failed: /readyz unready');
          c.ok = false;
          // the error's code only: a provider's message may echo request details
          const code = (err as { code?: unknown } | null)?.code;
          c.error = typeof code === 'string' ? code : err instanceof Error ? err.name : 'Error';
          c.checked = true;
        },
      ).finally(() => {
        c.running = false;
      });
      round.push(one);
    }
    return Promise.all(round);
  }
}

/** HTTP status and JSON body of /readyz (both ports answer the same). */
export function readyAnswer(s: ReadyState): { status: 200 | 503; body: ReadyState } {
  return { status: s.ready ? 200 : 503, body: s };
}
