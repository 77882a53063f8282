/** Pure parts of the benchmark: warp summary parsing, target evaluation, statistics, SVG well-formedness. */
import { XMLValidator } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import { barChart, evaluateTargets, markdown, type Row } from '../../bench/lib/report.ts';
import { median, percentile } from '../../bench/lib/stats.ts';
import { parseWarp } from '../../bench/lib/tools.ts';

const row = (scenario: string, lakecrypt: number | null, minio: number | null = null, minio_sse: number | null = null): Row =>
  ({ scenario, unit: scenario.endsWith('-ms') ? 'ms' : 'MiB/s', lakecrypt, minio, minio_sse });

describe('bench report', () => {
  it('parses warp summaries (cluster total, or per-operation lines)', () => {
    const mixed = [
      'Operation: GET, 45%, Concurrency: 8, Ran 19s.',
      ' * Throughput: 205.25 MiB/s, 205.25 obj/s',
      'Operation: STAT, 30%, Concurrency: 8, Ran 19s.',
      ' * Throughput: 136.83 obj/s',
      '\x1b[1mCluster Total: 273.67 MiB/s, 456.13 obj/s over 20s.\x1b[0m',
    ].join('\n');
    expect(parseWarp(mixed)).toEqual({ mibps: 273.67, objps: 456.13 });
    const old = 'Operation: GET\n * Average: 1.5 GiB/s, 1536 obj/s\nOperation: PUT\n * Average: 512 KiB/s, 0.5 obj/s\n';
    expect(parseWarp(old)).toEqual({ mibps: 1536.5, objps: 1536.5 });
    expect(parseWarp('warp: <ERROR> cannot connect')).toBeNull();
  });

  it('marks targets met and missed', () => {
    const rows = [
      row('put-large-c1', 80, 100, 70), row('get-large-c1', 79, 100, 70), row('get-small-p50-ms', 2.4, 2),
      row('range-1mib-small-object-ms', 10), row('range-1mib-huge-object-ms', 12.5), row('rss-peak-mib-5gib-upload', 300),
      row('key-unwraps-per-1000-gets', 1), row('crypto-pipeline-encrypt', 1000), row('rewrap-headers-per-s', null),
      row('multipart-4x-MBps', 1, 2, 3), row('put-small-p50-ms', 7.6, 5), row('gateway-cpu-ms-per-mib-get-large-c1', 0.7),
      row('gateway-cpu-ms-per-mib-get-large-c4', 0.8), row('gateway-cpu-ms-per-mib-put-large-c1', 2.1),
    ];
    evaluateTargets(rows, { unwrapsAllowedPer1000: 1 });
    const met = Object.fromEntries(rows.map((r) => [r.scenario, r.met]));
    expect(met).toEqual({
      'put-large-c1': true, 'get-large-c1': false, 'get-small-p50-ms': true, 'range-1mib-small-object-ms': undefined,
      'range-1mib-huge-object-ms': false, 'rss-peak-mib-5gib-upload': false, 'key-unwraps-per-1000-gets': true,
      'crypto-pipeline-encrypt': true, 'rewrap-headers-per-s': null, 'multipart-4x-MBps': undefined,
      'put-small-p50-ms': false, 'gateway-cpu-ms-per-mib-get-large-c1': true,
      // under 2.0 but above its c1 row: c4 must not cost more per MiB than c1
      'gateway-cpu-ms-per-mib-get-large-c4': false, 'gateway-cpu-ms-per-mib-put-large-c1': false,
    });
    const md = markdown({ date: 'd', machine: { cpu: 'x', cores: 2 }, quick: true, results: rows, notes: ['n'] });
    expect(md).toContain('| put-large-c1 | MiB/s | 80 | 100 | 70 | 0.80x | 1.14x |');
    // a two-part target says which part held
    expect(rows[1]!.detail).toBe('0.8x minio missed, 1.0x minio_sse met');
    expect(rows[0]!.detail).toBeUndefined();
    const half = [row('put-large-c4', 75, 100, 80)];
    evaluateTargets(half);
    expect(half[0]).toMatchObject({ met: false, detail: '0.7x minio met, 1.0x minio_sse missed' });
    expect(markdown({ date: 'd', machine: {}, quick: true, results: half, notes: [] })).toContain('| **missed** (0.7x minio met, 1.0x minio_sse missed) |');
  });

  it('computes medians and nearest-rank percentiles', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile([7], 99)).toBe(7);
  });

  it('draws well-formed SVG, escaping labels', () => {
    const svg = barChart('T <&>', 'MiB/s', [row('a<b', 1, 2, null), row('c', 3, null, 4)]);
    expect(XMLValidator.validate(svg)).toBe(true);
    expect((svg.match(/<rect /g) ?? []).length).toBe(1 + 3 + 4); // background + legend + bars
  });
});
