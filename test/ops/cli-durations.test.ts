/** Durations with units on the CLI's command line (src/cli/duration.ts): what `gc --older-than 1d` and friends accept. */
import { describe, expect, it } from 'vitest';
import { CliError } from '../../src/cli/client.ts';
import { durationArg } from '../../src/cli/common.ts';
import { formatDuration, parseDuration } from '../../src/cli/duration.ts';

const refused = (f: () => unknown): CliError => {
  try {
    f();
  } catch (e) {
    return e as CliError;
  }
  throw new Error('accepted');
};

describe('durations', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['15m', 900_000],
    ['1h', 3_600_000],
    ['7d', 604_800_000],
    ['2w', 1_209_600_000],
    ['1h30m', 5_400_000],
    ['1.5h', 5_400_000],
    [' 1D ', 86_400_000],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDuration(text, '--x')).toBe(ms);
  });

  it('a bare number keeps the option\'s old unit: milliseconds for --older-than-ms, seconds for --wait-seconds', () => {
    expect(parseDuration('3600000', '--older-than-ms', 'ms')).toBe(3_600_000);
    expect(parseDuration('86400', '--wait-seconds', 's')).toBe(86_400_000);
    expect(durationArg('--older-than-ms', 'ms', 'ms')('1d')).toBe(86_400_000);
    expect(durationArg('--wait-seconds', 's', 's')('7d')).toBe(604_800);
    expect(durationArg('--wait-seconds', 's', 's')('90')).toBe(90);
    // a part of a second rounds up: a waiting period is never shortened
    expect(durationArg('--wait-seconds', 's', 's')('1500ms')).toBe(2);
  });

  it.each(['', 'soon', '1 h', '-1h', 'h', '1y', '1h-', '1e3', 'ms'])('refuses %j as a usage error naming the option', (text) => {
    const e = refused(() => parseDuration(text, '--older-than'));
    expect(e).toBeInstanceOf(CliError);
    expect(e.exitCode).toBe(2);
    expect(e.code).toBe('UsageError');
    expect(e.message).toMatch(/^--older-than: expected a duration such as 500ms, 30s, 15m, 1h, 7d/);
  });

  it('formats as the largest exact units', () => {
    expect(formatDuration(3_600_000)).toBe('1h');
    expect(formatDuration(5_400_000)).toBe('1h30m');
    expect(formatDuration(1500)).toBe('1s500ms');
    expect(formatDuration(604_800_000 + 86_400_000)).toBe('1w1d');
    expect(formatDuration(0)).toBe('0s');
    for (const t of ['1h', '1h30m', '7d', '45s', '250ms']) expect(formatDuration(parseDuration(t, '--x'))).toBe(t === '7d' ? '1w' : t);
  });
});
