/**
 * The page's script, part 3: /metrics sampled at every poll, and two charts of the last five minutes with axes,
 * units and a time scale: S3 requests and errors per second, and p50/p99 latency computed from the
 * lakecrypt_request_duration_seconds histogram between two samples (summed over operations, interpolated within
 * a bucket as Prometheus' histogram_quantile does).
 *
 * Browser JavaScript in a string (the page has no build step): no backticks and no dollar-brace in it.
 */
export const CLIENT_CHART = String.raw`
const WINDOW_MS = 5 * 60 * 1000;
const metricSamples = [];
const points = [];

/** Totals of what the charts need from one /metrics text (every label set summed). */
function parseMetrics(text) {
  const m = { req: 0, err: 0, buckets: {} };
  for (const line of text.split('\n')) {
    if (!line.startsWith('lakecrypt_request')) continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1)) || 0;
    if (line.startsWith('lakecrypt_requests_total')) m.req += v;
    else if (line.startsWith('lakecrypt_request_errors_total')) m.err += v;
    else if (line.startsWith('lakecrypt_request_duration_seconds_bucket')) {
      const le = /le="([^"]+)"/.exec(line);
      if (le) m.buckets[le[1]] = (m.buckets[le[1]] || 0) + v;
    }
  }
  return m;
}

/** The q-quantile (seconds) of the observations between two cumulative bucket sets; null without any. */
function quantile(q, cur, prev) {
  const les = Object.keys(cur).filter((k) => k !== '+Inf').sort((a, b) => Number(a) - Number(b));
  const total = (cur['+Inf'] || 0) - (prev['+Inf'] || 0);
  if (!(total > 0)) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const k of les) {
    const n = (cur[k] || 0) - (prev[k] || 0);
    if (n >= rank) return lower + ((Number(k) - lower) * (rank - below)) / Math.max(n - below, 1e-9);
    lower = Number(k);
    below = n;
  }
  return lower; // in the +Inf bucket: the highest finite bound is all a histogram can say
}

function sampleMetrics(text, t) {
  const cur = { t, ...parseMetrics(text) };
  const prev = metricSamples[metricSamples.length - 1];
  metricSamples.push(cur);
  if (metricSamples.length > 2) metricSamples.shift();
  if (prev && cur.req >= prev.req && t > prev.t) {
    const dt = (t - prev.t) / 1000;
    const p50 = quantile(0.5, cur.buckets, prev.buckets);
    const p99 = quantile(0.99, cur.buckets, prev.buckets);
    points.push({ t, rps: (cur.req - prev.req) / dt, eps: (cur.err - prev.err) / dt, p50: p50 === null ? null : p50 * 1000, p99: p99 === null ? null : p99 * 1000 });
  }
  while (points.length && points[0].t < t - WINDOW_MS) points.shift();
  const last = points[points.length - 1];
  const fmt = (v, unit) => (v === null || v === undefined ? '-' : (v < 10 ? v.toFixed(2) : v.toFixed(0)) + ' ' + unit);
  $('now-rps').textContent = fmt(last && last.rps, 'req/s');
  $('now-eps').textContent = fmt(last && last.eps, 'errors/s') + (last && last.rps > 0 ? ' (' + ((100 * last.eps) / last.rps).toFixed(1) + '%)' : '');
  $('now-p50').textContent = fmt(last && last.p50, 'ms');
  $('now-p99').textContent = fmt(last && last.p99, 'ms');
  drawChart('rate-chart', t, [{ k: 'rps', color: '#1d4ed8' }, { k: 'eps', color: '#b91c1c' }], 'per second');
  drawChart('latency-chart', t, [{ k: 'p50', color: '#15803d' }, { k: 'p99', color: '#b45309' }], 'ms');
}

/** 1, 2, 5 x 10^n at or above v. */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
const two = (n) => (n < 10 ? '0' : '') + n;

function drawChart(id, now, series, unit) {
  const W = 600, H = 170, L = 52, R = 10, T = 10, B = 30;
  const x = (t) => L + ((t - (now - WINDOW_MS)) / WINDOW_MS) * (W - L - R);
  const max = niceMax(Math.max(0, ...points.flatMap((p) => series.map((s) => p[s.k] || 0))));
  const y = (v) => T + (1 - v / max) * (H - T - B);
  let out = '';
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    out += '<line class="grid" x1="' + L + '" x2="' + (W - R) + '" y1="' + y(v) + '" y2="' + y(v) + '"/>' +
      '<text x="' + (L - 4) + '" y="' + (y(v) + 3) + '" text-anchor="end">' + (max <= 1 ? v.toFixed(2) : max <= 10 ? v.toFixed(1) : Math.round(v)) + '</text>';
  }
  // time ticks on whole minutes, as the clock reads them
  const first = Math.ceil((now - WINDOW_MS) / 60000) * 60000;
  for (let t = first; t <= now; t += 60000) {
    const d = new Date(t);
    out += '<line class="axis" x1="' + x(t) + '" x2="' + x(t) + '" y1="' + (H - B) + '" y2="' + (H - B + 4) + '"/>' +
      '<text x="' + x(t) + '" y="' + (H - B + 14) + '" text-anchor="middle">' + two(d.getHours()) + ':' + two(d.getMinutes()) + '</text>';
  }
  out += '<line class="axis" x1="' + L + '" x2="' + L + '" y1="' + T + '" y2="' + (H - B) + '"/><line class="axis" x1="' + L + '" x2="' + (W - R) + '" y1="' + (H - B) + '" y2="' + (H - B) + '"/>';
  out += '<text class="y-unit" x="10" y="' + (T + (H - T - B) / 2) + '" transform="rotate(-90 10 ' + (T + (H - T - B) / 2) + ')" text-anchor="middle">' + unit + '</text>';
  out += '<text class="x-unit" x="' + (W - R) + '" y="' + (H - 2) + '" text-anchor="end">time (last 5 min, one point per ' + POLL_MS / 1000 + ' s poll)</text>';
  for (const s of series) {
    // a gap where an interval had no request (no latency to show) instead of a line through zero
    let path = '';
    let dots = '';
    let pen = 'M';
    for (const p of points) {
      if (p[s.k] === null || p[s.k] === undefined) { pen = 'M'; continue; }
      path += pen + x(p.t).toFixed(1) + ',' + y(p[s.k]).toFixed(1) + ' ';
      // a dot per sample, so a lone sample between gaps still shows
      dots += '<circle cx="' + x(p.t).toFixed(1) + '" cy="' + y(p[s.k]).toFixed(1) + '" r="1.8" fill="' + s.color + '"/>';
      pen = 'L';
    }
    out += '<path class="series" data-series="' + s.k + '" fill="none" stroke="' + s.color + '" stroke-width="1.6" d="' + path.trim() + '"/>' + dots;
  }
  $(id).innerHTML = out;
}
`;
