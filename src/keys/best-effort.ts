/**
 * Reporting of best-effort failures in the key service: work whose failure the caller does not see as an error
 * (the epoch poll, the lazy re-wrap on read, a listing behind an admin view). Each failure calls the optional
 * `onFailure` hook (a counter for /metrics) every time, and logs at warn once per failure streak of the same
 * `what` (a streak ends with `ok(what)`, which logs the recovery at info). Log fields carry context (what, the
 * dataset, the error's code and message), never key material.
 */
import type { Logger } from '../ops/logger.ts';

/** The logger calls the key service makes. */
export type KeyLog = Pick<Logger, 'warn' | 'info'>;

export class BestEffort {
  private readonly streaks = new Map<string, number>();

  constructor(
    private readonly log?: KeyLog,
    private readonly onFailure?: (what: string) => void,
  ) {}

  /**
   * A best-effort step failed: count it (`what`, a fixed label: fit for a metric); warn once per streak of
   * `streak` (default `what`; e.g. one per dataset). `fields` is context only (no secrets).
   */
  failed(what: string, err: unknown, msg: string, fields: Record<string, unknown> = {}, streak = what): void {
    try {
      this.onFailure?.(what);
    } catch {
      // a broken metrics hook must not turn a best-effort failure into a real one
    }
    const n = (this.streaks.get(streak) ?? 0) + 1;
    this.streaks.set(streak, n);
    if (n === 1) this.log?.warn({ what, ...fields, code: codeOf(err), reason: reasonOf(err) }, msg);
  }

  /** The step succeeded: end its failure streak (logged at info when there was one). */
  ok(what: string, streak = what): void {
    const n = this.streaks.get(streak);
    if (!n) return;
    this.streaks.delete(streak);
    this.log?.info({ what, failures: n }, `${what}: recovered after ${n} failure(s)`);
  }

  /** Failures in the current streak (0 when none). */
  streak(streak: string): number {
    return this.streaks.get(streak) ?? 0;
  }
}

function codeOf(err: unknown): string | undefined {
  const c = (err as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : undefined;
}

function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
