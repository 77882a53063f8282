import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { register as globalRegistry } from 'prom-client';
import { Metrics } from '../../src/ops/metrics.ts';

describe('metrics', () => {
  it('renders every lakecrypt_ series plus process metrics, on a private registry', async () => {
    const m = new Metrics();
    let depth = 7;
    m.setQueueDepthSource(() => depth);
    m.observeRequest({ op: 'GetObject', status: 200, seconds: 0.02, bytesIn: 0, bytesOut: 1000 });
    m.startRequest('PutObject')(200, 500, 0);
    m.addCryptoBytes('encrypt', 500);
    m.addCryptoBytes('decrypt', 1000);
    m.requestFailed('GetObject', 'KeyRevoked');
    m.integrityFailed('TagMismatch');
    m.setBuildInfo('9.9.9');
    let enc = 100;
    m.setSources({ cryptoBytes: () => ({ encrypt: enc, decrypt: 0 }), epochAgeSeconds: () => 0.2, cmkUp: () => ({ a: true, b: false }) });
    m.keyCacheHit();
    m.keyCacheMiss(2);
    m.keyUnwrap('local');
    m.setRewrapPending('lake', 42);
    m.addRewrapDone('lake', 3);
    m.revocationDenied('dek');
    const text = await m.render();
    for (const name of [
      'lakecrypt_requests_total{op="GetObject",status="200"} 1',
      'lakecrypt_requests_total{op="PutObject",status="200"} 1',
      'lakecrypt_request_duration_seconds_bucket{le="0.025",op="GetObject"} 1',
      'lakecrypt_request_duration_seconds_count{op="PutObject"} 1',
      'lakecrypt_received_bytes_total 500',
      'lakecrypt_sent_bytes_total 1000',
      'lakecrypt_crypto_bytes_total{direction="encrypt"} 600',
      'lakecrypt_request_errors_total{op="GetObject",code="KeyRevoked"} 1',
      'lakecrypt_integrity_failures_total{reason="TagMismatch"} 1',
      `lakecrypt_build_info{version="9.9.9",node="${process.version}"} 1`,
      'lakecrypt_revocation_epoch_age_seconds 0.2',
      'lakecrypt_cmk_up{cmk="a"} 1',
      'lakecrypt_cmk_up{cmk="b"} 0',
      'lakecrypt_crypto_bytes_total{direction="decrypt"} 1000',
      'lakecrypt_crypto_pool_queue_depth 7',
      'lakecrypt_key_cache_hits_total 1',
      'lakecrypt_key_cache_misses_total 2',
      'lakecrypt_key_unwraps_total{provider="local"} 1',
      'lakecrypt_rewrap_pending{dataset="lake"} 42',
      'lakecrypt_rewrap_done_total{dataset="lake"} 3',
      'lakecrypt_revocation_denials_total{level="dek"} 1',
      'lakecrypt_revocation_denials_total{level="kek"} 0',
      'process_cpu_user_seconds_total',
      'nodejs_heap_size_used_bytes',
    ]) {
      expect(text).toContain(name);
    }
    depth = 3;
    enc = 150; // the engine's counter grew by 50 since the last scrape
    const again = await m.render();
    expect(again).toContain('lakecrypt_crypto_pool_queue_depth 3');
    expect(again).toContain('lakecrypt_crypto_bytes_total{direction="encrypt"} 650');
    expect(m.contentType).toMatch(/^text\/plain/);
    expect(await globalRegistry.metrics()).not.toContain('lakecrypt_');
  });

  it('the release version lakecrypt_build_info reports is package.json\'s', async () => {
    const { VERSION } = await import('../../src/version.ts');
    const pkg = JSON.parse(readFileSync(path.join(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string };
    expect(VERSION).toBe(pkg.version);
  });

  it('two instances do not collide; a throwing depth source does not break render', async () => {
    const a = new Metrics({ defaultMetrics: false });
    const b = new Metrics({ defaultMetrics: false, labels: { instance: 'gw-b' } });
    a.keyCacheHit();
    a.setQueueDepthSource(() => {
      throw new Error('pool closed');
    });
    expect(await a.render()).toContain('lakecrypt_key_cache_hits_total 1');
    expect(await b.render()).toContain('lakecrypt_key_cache_hits_total{instance="gw-b"} 0');
  });
});
