/**
 * Durations on the command line with their unit, as admins write them elsewhere (`1h`, `7d`, `30m`, `500ms`,
 * `1h30m`). A bare number keeps the unit the option always had (milliseconds for `--older-than-ms`, seconds for
 * `--wait-seconds`), so existing scripts keep working.
 */
import { CliError } from './client.ts';

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** Milliseconds of `text` (`90s`, `1h30m`, `7d`); a bare number is in `bareUnit`. Throws a usage error naming `option`. */
export function parseDuration(text: string, option: string, bareUnit: 'ms' | 's' = 'ms'): number {
  const t = text.trim().toLowerCase();
  const bad = () =>
    new CliError(`${option}: expected a duration such as 500ms, 30s, 15m, 1h, 7d, 2w (or a number of ${bareUnit === 'ms' ? 'milliseconds' : 'seconds'}), got "${text}"`, 2, 'UsageError');
  if (/^\d+$/.test(t)) return Number(t) * UNIT_MS[bareUnit];
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d|w))+$/.test(t)) throw bad();
  let total = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g)) total += Number(m[1]) * UNIT_MS[m[2]];
  if (!Number.isFinite(total) || total > Number.MAX_SAFE_INTEGER) throw bad();
  return Math.round(total);
}

/** `ms` as the largest units that state it exactly: 3600000 -> "1h", 5400000 -> "1h30m", 1500 -> "1s500ms". */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  let rest = ms;
  let out = '';
  for (const u of ['w', 'd', 'h', 'm', 's', 'ms']) {
    const n = Math.floor(rest / UNIT_MS[u]);
    if (n > 0) {
      out += `${n}${u}`;
      rest -= n * UNIT_MS[u];
    }
  }
  return out;
}
