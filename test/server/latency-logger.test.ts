/**
 * Per-request front-end costs that once dominated a small request, kept down, with the guarantees they carry:
 *  - the logger censors secrets itself (pino's wildcard `redact` cost ~330 µs of CPU per access-log line);
 *  - request ids come from a random pool (one randomBytes call per 128 requests);
 *  - only /healthz and /readyz go through hono.
 */
import { describe, expect, it } from 'vitest';
import { createLogger, logAccess, REDACT_PATHS, SECRET_FIELD_NAMES } from '../../src/ops/logger.ts';
import { requestId } from '../../src/server/gateway.ts';
import { isHealthPath } from '../../src/server/start.ts';

const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';

function sink() {
  const lines: string[] = [];
  return { lines, write: (s: string) => void lines.push(...s.split('\n').filter(Boolean)) };
}

class Creds {
  accessKey = 'AK';
  secretKey = SECRET;
  nested = { pin: '4321', ok: 'visible' };
}

describe('logger: secrets censored without pino redact', () => {
  it('every REDACT_PATHS depth (0-3), through arrays, class instances and errors, without mutating the input', () => {
    const s = sink();
    const log = createLogger({ destination: s });
    for (const name of SECRET_FIELD_NAMES) {
      const rec = {
        [name]: SECRET,
        a: { [name]: SECRET, b: { [name]: SECRET, c: { [name]: SECRET, keep: 'k3' } } },
        list: [{ [name]: SECRET }, [{ [name]: SECRET }]],
      };
      const before = JSON.stringify(rec);
      log.info(rec, 'x');
      expect(JSON.stringify(rec)).toBe(before);
    }
    const creds = new Creds();
    const e = Object.assign(new Error('boom'), { config: { secretKey: SECRET, s3: { secretAccessKey: SECRET } } });
    const other = Object.assign(new Error('inner'), { password: SECRET });
    log.info({ creds, wrapped: { other } }, 'instances');
    log.error({ err: e }, 'failed');
    log.error(e, 'failed as first argument');
    expect(creds.secretKey).toBe(SECRET);
    expect(s.lines.join('\n')).not.toContain(SECRET);
    expect(s.lines.join('\n')).not.toContain('4321');
    const inst = JSON.parse(s.lines[SECRET_FIELD_NAMES.length]!);
    expect(inst.creds).toEqual({ accessKey: 'AK', secretKey: '***', nested: { pin: '***', ok: 'visible' } });
    expect(inst.wrapped.other).toEqual({ password: '***' });
    const err = JSON.parse(s.lines[SECRET_FIELD_NAMES.length + 1]!).err;
    expect(err.message).toBe('boom');
    expect(err.stack).toContain('Error: boom');
    expect(err.config).toEqual({ secretKey: '***', s3: { secretAccessKey: '***' } });
    expect(JSON.parse(s.lines.at(-1)!).err.config.secretKey).toBe('***');
    // the paths the old pino redact used are all names the walk censors
    for (const p of REDACT_PATHS) expect(SECRET_FIELD_NAMES.some((n) => p.endsWith(n) || p.endsWith(`"${n}"]`))).toBe(true);
  });

  it("an access-log line carries the request's fields as they are (its cost, against pino's wildcard redact, is bench/access-log.ts)", () => {
    const lines: string[] = [];
    const log = createLogger({ destination: { write: (l: string) => void lines.push(l) } });
    const f = { reqId: '0123456789ABCDEF', op: 'GetObject', bucket: 'bucket', key: 'small-4k-1', status: 200, ms: 1.234, bytesIn: 0, bytesOut: 4096, accessKey: 'AK' };
    logAccess(log, f);
    expect(lines.length).toBe(1);
    expect(JSON.parse(lines[0]!)).toMatchObject(f);
  });
});

describe('request ids and routing', () => {
  it('request ids are 16 uppercase hex digits, distinct', () => {
    const ids = Array.from({ length: 1000 }, () => requestId());
    for (const id of ids) expect(id).toMatch(/^[0-9A-F]{16}$/);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('only /healthz and /readyz are health paths', () => {
    for (const u of ['/healthz', '/readyz', '/healthz?x=1', '/readyz?']) expect(isHealthPath(u)).toBe(true);
    for (const u of [undefined, '', '/', '/healthz/', '/healthzz', '/readyz/x', '/bucket/healthz', 'healthz', '/h', '/r?/readyz']) {
      expect(isHealthPath(u)).toBe(false);
    }
  });
});
