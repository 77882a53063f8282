/**
 * Work the object layer does on the side (dropping an overwritten version's header, the final header of a
 * streamed PUT, clean-ups on failure paths) must not fail the request, and must not fail silently either: each
 * failure is a warn line naming the step and a count in lakecrypt_best_effort_failures_total.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { GetObjectCommand, PutObjectCommand, CreateBucketCommand } from '@aws-sdk/client-s3';
import { createBackend } from '../../src/backend/index.ts';
import type { Backend } from '../../src/backend/types.ts';
import { S3Error } from '../../src/errors.ts';
import { createLogger } from '../../src/ops/logger.ts';
import { createMetrics } from '../../src/ops/metrics.ts';
import { startTestGateway } from '../../tools/gateway.ts';
import { makeTmpDir } from '../../tools/tmp.ts';

describe('best-effort steps of the object layer', () => {
  it('an overwrite whose old header cannot be deleted still succeeds; the failure is logged and counted', async () => {
    const real = createBackend({ kind: 'fs', dataDir: makeTmpDir('lakecrypt-be-').path });
    let failDeletes = false;
    const backend = new Proxy(real, {
      get(target, prop, recv) {
        if (prop === 'deleteObject') {
          return async (bucket: string, key: string) => {
            if (failDeletes && key.startsWith('h/')) throw new S3Error('ServiceUnavailable', 'injected: backend refuses the delete');
            return target.deleteObject(bucket, key);
          };
        }
        const v: unknown = Reflect.get(target, prop, recv);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    }) as Backend;
    const lines: string[] = [];
    const log = createLogger({ level: 'warn', destination: new Writable({ write: (c: Buffer, _e, cb) => (lines.push(c.toString()), cb()) }) });
    const metrics = createMetrics({ defaultMetrics: false });
    // an overwrite's old header object to drop: format 1 (inline headers go with their data object)
    const gw = await startTestGateway('fs', { inlineHeaderMax: 0, backend, log, onBestEffortFailure: (what) => metrics.bestEffortFailed(what) });
    try {
      const s3 = gw.client();
      await s3.send(new CreateBucketCommand({ Bucket: 'best-effort' }));
      await s3.send(new PutObjectCommand({ Bucket: 'best-effort', Key: 'k', Body: 'first' }));
      failDeletes = true;
      await s3.send(new PutObjectCommand({ Bucket: 'best-effort', Key: 'k', Body: 'second' }));
      const got = await s3.send(new GetObjectCommand({ Bucket: 'best-effort', Key: 'k' }));
      expect(await got.Body!.transformToString()).toBe('second');
      await gw.running.gateway.store.settled();
      await expect.poll(() => lines.some((l) => l.includes('"what":"previous-header-delete"') && l.includes('injected'))).toBe(true);
      const text = await metrics.render();
      expect(text).toMatch(/lakecrypt_best_effort_failures_total\{what="previous-header-delete"\} 1/);
    } finally {
      await gw.close();
    }
  });
});
