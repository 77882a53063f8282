/**
 * What /metrics reads from a running gateway at each scrape (src/ops/metrics.ts MetricSources), and the one gauge
 * that needs a hook on the server: requests in flight. Called once by main.ts after the gateway started.
 */
import { cryptoMeter } from '../engine/index.ts';
import type { Metrics } from '../ops/metrics.ts';
import type { RunningGateway } from './start.ts';

export function wireGatewayMetrics(metrics: Metrics, gw: RunningGateway, version: string): void {
  metrics.setBuildInfo(version);
  metrics.setSources({
    cryptoBytes: () => cryptoMeter,
    epochAgeSeconds: () => {
      const a = gw.keys.epochFreshness().ageMs;
      return Number.isFinite(a) ? a / 1000 : null;
    },
    cmkUp: () => Object.fromEntries(Object.entries(gw.health.ready().cmks).map(([id, c]) => [id, c.ok])),
    keyCacheEntries: () => gw.keys.cacheEntries,
    datasets: async () => {
      const now = Date.now();
      return (await gw.keys.list()).map((d) => {
        const versions: Record<string, number> = {};
        for (const v of d.versions) versions[v.state] = (versions[v.state] ?? 0) + 1;
        const active = d.versions.find((v) => v.version === d.activeVersion);
        return { dataset: d.dataset, versions, activeAgeSeconds: active ? Math.max(0, (now - Date.parse(active.createdAt)) / 1000) : null };
      });
    },
  });
  gw.audit.onAppendFailure = () => metrics.auditAppendFailures.inc();
  gw.server.on('request', (_req, res: import('node:http').ServerResponse) => {
    metrics.requestsInFlight.inc();
    res.once('close', () => metrics.requestsInFlight.dec());
  });
}
