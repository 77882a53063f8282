/** The one polling helper of tests, bench and scripts (see tools/README.md). */

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What a truthy `T` can be. */
export type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>;

export interface PollOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
  /** Pause between two calls (default 50 ms). */
  intervalMs?: number;
  /** Names the condition in the time-out error. */
  what?: string;
  /**
   * An error thrown by `fn` counts as "not yet" and is named in the time-out error (default true: waiting out
   * an outage). false: the first error is thrown at once (a probe whose errors are assertions).
   */
  retryErrors?: boolean;
  /** Checked before every call: a string stops the wait at once with that message (e.g. "the process exited"). */
  giveUpIf?: () => string | undefined;
}

/**
 * Call `fn` until it returns a truthy value and resolve with that value; reject after `timeoutMs`.
 *
 *   await pollUntil(async () => (await getObj(s3, b, k)).status === 403, { timeoutMs: 5000 });
 *   const job = await pollUntil(async () => (await status()).state === 'done' && s, { timeoutMs: 60_000, intervalMs: 200 });
 *
 * Inside a vitest test whose condition is an assertion, `expect.poll` serves as well.
 */
export async function pollUntil<T>(fn: () => T | Promise<T>, o: PollOptions = {}): Promise<Truthy<T>> {
  const { timeoutMs = 10_000, intervalMs = 50, retryErrors = true } = o;
  const t0 = performance.now();
  let last: unknown;
  for (;;) {
    const stop = o.giveUpIf?.();
    if (stop !== undefined) throw new Error(stop);
    try {
      const v = await fn();
      if (v) return v as Truthy<T>;
    } catch (e) {
      if (!retryErrors) throw e;
      last = e;
    }
    if (performance.now() - t0 > timeoutMs) {
      throw new Error(`${o.what ?? 'condition'} not met within ${timeoutMs} ms${last ? ` (last error: ${last instanceof Error ? last.message : JSON.stringify(last)})` : ''}`);
    }
    await sleep(intervalMs);
  }
}
