import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { accessLogLine, createLogger, logAccess, redactUrl } from '../../src/ops/logger.ts';
import { redactConfig, loadConfig } from '../../src/ops/config.ts';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  // pino accepts any object with write(); a sync write keeps the test simple
  const sink = { write: (s: string) => void lines.push(...s.split('\n').filter(Boolean)) };
  return { lines, destination, sink };
}

const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const SIG = 'fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024';

describe('logger', () => {
  it('writes JSON with level label and iso time', () => {
    const { lines, sink } = capture();
    const log = createLogger({ destination: sink, level: 'debug' });
    log.debug({ a: 1 }, 'hello');
    const rec = JSON.parse(lines[0]!);
    expect(rec).toMatchObject({ level: 'debug', msg: 'hello', a: 1, name: 'lakecrypt' });
    expect(rec.time).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('redacts secret fields at any depth 0-3', () => {
    const { lines, sink } = capture();
    const log = createLogger({ destination: sink });
    log.info(
      {
        secretKey: SECRET,
        pin: '123456',
        req: {
          headers: {
            authorization: `AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=${SIG}`,
            'x-amz-security-token': 'session-token-value',
            'x-amz-server-side-encryption-customer-key': 'c3NlLWMta2V5LXZhbHVl',
            host: 'localhost',
          },
        },
        user: { accessKey: 'analyst', secretKey: SECRET },
        s3: { creds: { secretAccessKey: SECRET } },
        key: 'path/to/object.parquet',
      },
      'request',
    );
    const out = lines.join('\n');
    for (const s of [SECRET, '123456', SIG, 'session-token-value', 'c3NlLWMta2V5LXZhbHVl']) expect(out).not.toContain(s);
    const rec = JSON.parse(lines[0]!);
    expect(rec.secretKey).toBe('***');
    expect(rec.req.headers.authorization).toBe('***');
    expect(rec.req.headers.host).toBe('localhost');
    expect(rec.user).toEqual({ accessKey: 'analyst', secretKey: '***' });
    expect(rec.key).toBe('path/to/object.parquet'); // an object key is not a secret
  });

  it('never logs Buffer contents (key material)', () => {
    const { lines, sink } = capture();
    const log = createLogger({ destination: sink });
    const kek = Buffer.alloc(32, 0xab);
    log.info({ material: kek, nested: { x: new Uint8Array([1, 2, 3]) } }, 'keys');
    const rec = JSON.parse(lines[0]!);
    expect(rec.material).toBe('[32 bytes]');
    expect(rec.nested.x).toBe('[3 bytes]');
    expect(lines[0]).not.toMatch(/171/); // 0xab
  });

  it('masks signatures and tokens inside message strings and error messages', () => {
    const { lines, sink } = capture();
    const log = createLogger({ destination: sink });
    log.warn(`bad request Signature=${SIG}`);
    log.info({ url: `/b/k?X-Amz-Credential=AKID%2F2024&X-Amz-Signature=${SIG}&X-Amz-Security-Token=tok123&x=1` }, 'presigned');
    log.error({ err: new Error(`upstream said Signature=${SIG}`) }, 'failed');
    const out = lines.join('\n');
    expect(out).not.toContain(SIG);
    expect(out).not.toContain('tok123');
    expect(JSON.parse(lines[1]!).url).toBe('/b/k?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Security-Token=***&x=1');
    expect(redactUrl('/a?X-Amz-Signature=abc')).toBe('/a?X-Amz-Signature=***');
  });

  it('a redacted Config logs no secret', () => {
    const { lines, sink } = capture();
    const log = createLogger({ destination: sink });
    const cfg = loadConfig({ env: { LAKECRYPT_ACCESS_KEY: 'root', LAKECRYPT_SECRET_KEY: SECRET }, file: false });
    log.info({ config: redactConfig(cfg) }, 'config');
    log.info({ config: cfg }, 'config (unredacted object: the redact paths still catch secretKey)');
    expect(lines.join('\n')).not.toContain(SECRET);
  });

  it('works with a stream destination', async () => {
    const { lines, destination } = capture();
    const log = createLogger({ destination });
    log.info({ secretKey: SECRET }, 'x');
    await new Promise((r) => setImmediate(r));
    expect(lines).toHaveLength(1);
    expect(lines.join('')).not.toContain(SECRET);
  });
});

describe('access log', () => {
  it('builds the record', () => {
    expect(
      accessLogLine({ reqId: 'r1', op: 'GetObject', bucket: 'lake', key: 'a/b', status: 206, ms: 12.34567, bytesIn: 0, bytesOut: 100, range: 'bytes=0-99', accessKey: 'analyst' }),
    ).toEqual({ type: 'access', reqId: 'r1', op: 'GetObject', bucket: 'lake', key: 'a/b', status: 206, ms: 12.346, bytesIn: 0, bytesOut: 100, range: 'bytes=0-99', accessKey: 'analyst' });
    const anon = accessLogLine({ reqId: 'r2', op: 'ListBuckets', status: 403, ms: 1, bytesIn: 0, bytesOut: 200 });
    expect(anon).toMatchObject({ bucket: '', accessKey: '-' });
    expect(anon).not.toHaveProperty('key');
  });

  it('logAccess writes one line, warn for 5xx', () => {
    const { lines, sink } = capture();
    const log = createLogger({ destination: sink });
    logAccess(log, { reqId: 'r1', op: 'PutObject', bucket: 'lake', key: 'k', status: 200, ms: 5, bytesIn: 10, bytesOut: 0, accessKey: 'root' });
    logAccess(log, { reqId: 'r2', op: 'GetObject', bucket: 'lake', key: 'k', status: 500, ms: 5, bytesIn: 0, bytesOut: 0, accessKey: 'root' });
    expect(lines.map((l) => JSON.parse(l).level)).toEqual(['info', 'warn']);
    expect(JSON.parse(lines[0]!)).toMatchObject({ msg: 'access', type: 'access', op: 'PutObject', bytesIn: 10 });
  });
});
