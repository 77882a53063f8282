/**
 * The cost of one access-log line (src/ops/logger.ts logAccess), side by side with pino's own wildcard `redact` over
 * the same REDACT_PATHS (what the logger used before it censored fields itself): CPU µs per line, medians of
 * interleaved rounds, and their ratio. Moved here from test/server/latency-logger.test.ts, whose CPU-time bound
 * failed on a loaded machine (timings belong in bench/, not in pass/fail tests).
 *
 *   npx tsx bench/access-log.ts [--lines 20000] [--rounds 5]
 */
import pino from 'pino';
import { REDACT_PATHS, createLogger, logAccess } from '../src/ops/logger.ts';

const arg = (f: string, d: string) => {
  const i = process.argv.indexOf(f);
  return Number(i >= 0 ? process.argv[i + 1] : d);
};
const lines = arg('--lines', '20000');
const rounds = arg('--rounds', '5');
const sink = { write: () => {} };
const ours = createLogger({ destination: sink });
const wildcard = pino({ redact: { paths: [...REDACT_PATHS], censor: '***' } }, sink);
const f = { reqId: '0123456789ABCDEF', op: 'GetObject', bucket: 'bucket', key: 'small-4k-1', status: 200, ms: 1.234, bytesIn: 0, bytesOut: 4096, accessKey: 'AK' };

function perLine(log: Parameters<typeof logAccess>[0]): number {
  const c0 = process.cpuUsage();
  for (let i = 0; i < lines; i++) logAccess(log, f);
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / lines;
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
const a: number[] = [];
const b: number[] = [];
perLine(ours);
perLine(wildcard as unknown as Parameters<typeof logAccess>[0]);
for (let r = 0; r < rounds; r++) {
  a.push(perLine(ours));
  b.push(perLine(wildcard as unknown as Parameters<typeof logAccess>[0]));
}
console.log(`access-log line: lakecrypt ${med(a).toFixed(1)} µs, pino wildcard redact ${med(b).toFixed(1)} µs (${(med(b) / med(a)).toFixed(1)}x)`);
