/** Small statistics helpers for the benchmark (no deps). */

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  // nearest-rank on the sorted sample
  const idx = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[idx];
}

export const median = (values: number[]): number => {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Round to a sensible number of significant digits for a table. */
export function round(v: number | null | undefined): number | null {
  if (v === null || v === undefined || !Number.isFinite(v)) return null;
  const a = Math.abs(v);
  if (a >= 100) return Math.round(v);
  if (a >= 10) return Math.round(v * 10) / 10;
  if (a >= 1) return Math.round(v * 100) / 100;
  return Math.round(v * 1000) / 1000;
}

export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Run `n` tasks with at most `c` in flight; returns each task's duration in ms, and the wall time. */
export async function runPool(n: number, c: number, task: (i: number) => Promise<void>): Promise<{ lat: number[]; wallMs: number }> {
  const lat: number[] = new Array(n);
  let next = 0;
  const t0 = nowMs();
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      const t = nowMs();
      await task(i);
      lat[i] = nowMs() - t;
    }
  };
  await Promise.all(Array.from({ length: Math.min(c, n) }, worker));
  return { lat, wallMs: nowMs() - t0 };
}
