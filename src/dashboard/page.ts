/**
 * The admin dashboard: one self-contained page (no build step, no external assets) served on the admin port.
 * It logs in through POST /admin/login (HttpOnly session cookie) and reads the admin API; graphs come from
 * the open /metrics endpoint. State-changing calls carry the session's CSRF token (X-Lakecrypt-CSRF), which the
 * page holds in memory only: from the login answer, or after a reload from GET /admin/whoami. Everything it shows is already available to an admin through the CLI.
 */
export const DASHBOARD_HTML = /* html */ `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>lakecrypt admin</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  :root { --fg:#1d2430; --muted:#6b7280; --line:#e5e7eb; --ok:#15803d; --warn:#b45309; --bad:#b91c1c; --accent:#1d4ed8; }
  * { box-sizing: border-box; }
  body { font: 14px/1.45 system-ui, sans-serif; color: var(--fg); margin: 0; background: #f8fafc; }
  header { display:flex; align-items:center; justify-content:space-between; padding: 10px 20px; background:#0f172a; color:#fff; }
  header h1 { font-size: 16px; margin: 0; letter-spacing: .02em; }
  main { padding: 16px 20px; display: grid; grid-template-columns: minmax(360px, 1.2fr) minmax(320px, 1fr); gap: 16px; }
  section { background:#fff; border:1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
  section h2 { font-size: 13px; text-transform: uppercase; color: var(--muted); margin: 0 0 8px; letter-spacing: .05em; }
  ul.tree, ul.tree ul { list-style: none; margin: 0; padding-left: 18px; }
  ul.tree { padding-left: 0; }
  ul.tree li { margin: 3px 0; }
  .node { display: inline-flex; gap: 8px; align-items: baseline; }
  .tag { font-size: 11px; padding: 1px 6px; border-radius: 9px; border: 1px solid var(--line); }
  .active { color: var(--ok); border-color: var(--ok); }
  .decrypt-only, .disabled { color: var(--warn); border-color: var(--warn); }
  .revoked, .destroyed, .pending-destruction { color: var(--bad); border-color: var(--bad); }
  .count { color: var(--muted); font-variant-numeric: tabular-nums; }
  button { font: inherit; padding: 3px 10px; border: 1px solid var(--accent); color: var(--accent); background: #fff; border-radius: 5px; cursor: pointer; }
  button:hover { background: #eff6ff; }
  .bar { height: 10px; background: var(--line); border-radius: 5px; overflow: hidden; width: 200px; display:inline-block; vertical-align: middle; }
  .bar > div { height: 100%; background: var(--ok); }
  table { border-collapse: collapse; width: 100%; font-size: 12px; }
  td, th { text-align: left; padding: 3px 6px; border-bottom: 1px solid var(--line); vertical-align: top; }
  #login { max-width: 360px; margin: 80px auto; }
  #login input { width: 100%; margin: 4px 0 10px; padding: 6px; font: inherit; }
  .err { color: var(--bad); }
  svg { width: 100%; height: 120px; }
  .legend span { margin-right: 12px; font-size: 12px; }
  td code { word-break: break-all; }
</style>
</head>
<body>
<header><h1>lakecrypt admin</h1><span id="who"></span></header>
<div id="login">
  <section>
    <h2>Sign in</h2>
    <form id="login-form">
      <label>Access key<input id="ak" autocomplete="username"></label>
      <label>Secret key<input id="sk" type="password" autocomplete="current-password"></label>
      <button type="submit" id="login-btn">Sign in</button>
      <p class="err" id="login-err"></p>
    </form>
  </section>
</div>
<main id="app" hidden>
  <section style="grid-row: span 2">
    <h2>Key hierarchy</h2>
    <ul class="tree" id="tree"></ul>
  </section>
  <section>
    <h2>Re-wrap progress</h2>
    <table id="rewrap"><thead><tr><th>dataset</th><th>progress</th><th>pending</th><th>job</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Requests and throughput</h2>
    <div class="legend"><span style="color:#1d4ed8">requests/s</span><span style="color:#15803d">MB/s in</span><span style="color:#b45309">MB/s out</span></div>
    <svg id="graph" viewBox="0 0 300 100" preserveAspectRatio="none"></svg>
  </section>
  <section>
    <h2>Datasets</h2>
    <table id="datasets"><thead><tr><th>dataset</th><th>routes</th><th>CMK</th><th>active</th><th>origin</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Revocations</h2>
    <table id="revocations"><tbody></tbody></table>
  </section>
  <section style="grid-column: span 2">
    <h2>Recent audit events</h2>
    <table id="audit"><thead><tr><th>#</th><th>time</th><th>event</th><th>actor</th><th>details</th></tr></thead><tbody></tbody></table>
  </section>
</main>
<script>
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
let csrf = '';
const api = async (path, opts = {}) => {
  const headers = { 'content-type': 'application/json' };
  if (csrf) headers['x-lakecrypt-csrf'] = csrf;
  const r = await fetch(path, { credentials: 'same-origin', headers, ...opts });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw Object.assign(new Error(body.message || r.statusText), { status: r.status });
  return body;
};
const enc = encodeURIComponent;
const scans = {};

async function login(ev) {
  ev.preventDefault();
  $('login-err').textContent = '';
  try {
    const r = await api('/admin/login', { method: 'POST', body: JSON.stringify({ accessKey: $('ak').value, secretKey: $('sk').value }) });
    signedIn(r);
  } catch (e) {
    $('login-err').textContent = 'Sign-in refused: ' + e.message;
  }
}
let running = false;
function signedIn(r) {
  csrf = r.csrfToken;
  $('who').textContent = r.accessKey;
  $('login').hidden = true;
  $('app').hidden = false;
  if (running) return; // a login after the reload check: one loop only
  running = true;
  // One refresh at a time, the next a second after the last one finished: a slow answer never piles up calls.
  const loop = async (fn) => { try { await fn(); } finally { setTimeout(() => loop(fn), 1000); } };
  loop(refresh);
  loop(sampleMetrics);
}
$('login-form').addEventListener('submit', login);
// A reload with a live session cookie goes straight back in.
api('/admin/whoami').then((r) => { if (r.csrfToken) signedIn(r); }, () => { /* not signed in: the form stays */ });

async function rotate(ds) {
  await api('/admin/keys/' + enc(ds) + '/rotate', { method: 'POST', body: JSON.stringify({ rewrap: true }) });
  refresh();
}
window.rotate = rotate;

async function refresh() {
  let cmks, datasets;
  try {
    [{ cmks }, { datasets }] = await Promise.all([api('/admin/cmk'), api('/admin/keys')]);
  } catch (e) {
    if (e.status === 403 || e.status === 401) location.reload();
    return;
  }
  // A header scan (objects per key version) costs a listing of the dataset's headers: do it on the first refresh,
  // every 15 s, and while a re-wrap job moves (and once when it stops); otherwise only the job state (?scan=0).
  const now = Date.now();
  await Promise.all(datasets.map(async (d) => {
    try {
      const last = scans[d.dataset];
      const quick = await api('/admin/rewrap/' + enc(d.dataset) + '?scan=0');
      const moved = !last || JSON.stringify(last.job) !== JSON.stringify(quick.job) || quick.running;
      if (moved || now - (last.at || 0) > 15000) scans[d.dataset] = { ...(await api('/admin/rewrap/' + enc(d.dataset))), at: now };
      else scans[d.dataset] = { ...last, job: quick.job, running: quick.running };
    } catch { /* keep the last one */ }
  }));
  const tree = cmks.map((c) => {
    const mine = datasets.filter((d) => d.cmkId === c.id);
    const versions = c.versions.map((v) => '<span class="tag ' + v.state + '">v' + v.version + ' ' + v.state + '</span>').join(' ');
    const ds = mine.map((d) => {
      const s = scans[d.dataset] || { byVersion: {} };
      const vs = d.versions.map((v) =>
        '<li class="version" data-dataset="' + esc(d.dataset) + '" data-version="' + v.version + '"><span class="node">v' + v.version +
        ' <span class="tag ' + v.state + '">' + v.state + '</span><span class="count">' + (s.byVersion[v.version] || 0) + ' objects</span></span></li>').join('');
      return '<li class="dataset" data-dataset="' + esc(d.dataset) + '"><span class="node"><b>' + esc(d.dataset) + '</b>' +
        '<span class="count">active v' + d.activeVersion + '</span> <button class="rotate" data-dataset="' + esc(d.dataset) + '">Rotate KEK</button></span><ul>' + vs + '</ul></li>';
    }).join('');
    return '<li class="cmk"><span class="node"><b>CMK ' + esc(c.id) + '</b> <span class="count">' + esc(c.kind) + (c.ok ? '' : ' unreachable') + '</span> ' + versions + '</span><ul>' + ds + '</ul></li>';
  }).join('');
  $('tree').innerHTML = tree;

  // Datasets as run-time objects (the list only: no per-object count here, it would scan on every refresh).
  try {
    const { datasets: routed } = await api('/admin/datasets');
    $('datasets').tBodies[0].innerHTML = routed.map((d) =>
      '<tr class="dataset-row" data-dataset="' + esc(d.dataset) + '"><td>' + esc(d.dataset) + '</td><td><code>' + esc(d.bucket + '/' + (d.prefix || '')) + '*</code></td><td>' +
      esc(d.cmkId || '-') + '</td><td>' + (d.activeVersion ? 'v' + d.activeVersion : '-') + '</td><td>' + (d.configured ? 'config' : d.registered ? 'registry' : 'bucket') + '</td></tr>').join('');
  } catch { /* the panel keeps its last answer */ }
  for (const b of document.querySelectorAll('button.rotate')) b.onclick = () => rotate(b.dataset.dataset);

  $('rewrap').tBodies[0].innerHTML = datasets.map((d) => {
    const s = scans[d.dataset];
    if (!s) return '';
    const pct = s.total ? Math.round(((s.total - s.pending) / s.total) * 100) : 100;
    const job = s.job ? s.job.state + ' (' + (s.job.mode === 'header-keys' ? (s.job.headerKeysRewrapped || 0) + ' header key(s)' : s.job.done + '/' + s.job.total + ' headers') + ')' : '-';
    return '<tr class="rewrap-row" data-dataset="' + esc(d.dataset) + '"><td>' + esc(d.dataset) + '</td><td><span class="bar"><div style="width:' + pct + '%"></div></span> <span class="pct">' + pct + '%</span></td><td class="pending">' + s.pending + '</td><td>' + esc(job) + '</td></tr>';
  }).join('');

  const rev = [];
  for (const d of datasets) {
    for (const v of d.versions) if (v.state === 'revoked' || v.state === 'pending-destruction' || v.state === 'destroyed') rev.push([d.dataset, 'KEK v' + v.version, v.state, v.destroyAt]);
    if (d.revokedBlocks) rev.push([d.dataset, d.revokedBlocks + ' DEK entries', 'revoked']);
  }
  for (const c of cmks) for (const v of c.versions) if (v.state !== 'active') rev.push(['CMK ' + c.id, 'v' + v.version, v.state, v.destroyAt]);
  $('revocations').tBodies[0].innerHTML = rev.length
    ? rev.map((r) => '<tr><td>' + esc(r[0]) + '</td><td>' + esc(r[1]) + '</td><td><span class="tag ' + esc(r[2]) + '">' + esc(r[2]) + '</span>' + (r[3] ? ' <span class="count due">due ' + esc(r[3]) + '</span>' : '') + '</td></tr>').join('')
    : '<tr><td class="count">none</td></tr>';

  try {
    const { entries } = await api('/admin/audit?limit=15');
    $('audit').tBodies[0].innerHTML = entries.slice().reverse().map((e) =>
      '<tr><td>' + e.seq + '</td><td>' + esc(e.ts) + '</td><td>' + esc(e.event) + '</td><td>' + esc(e.actor) + '</td><td><code>' + esc(JSON.stringify(e.details)) + '</code></td></tr>').join('');
  } catch { /* audit is best effort on the page */ }
}

const samples = [];
function metricSum(text, name) {
  let sum = 0;
  for (const line of text.split('\\n')) {
    if (line.startsWith(name + ' ') || line.startsWith(name + '{')) sum += Number(line.slice(line.lastIndexOf(' ') + 1)) || 0;
  }
  return sum;
}
async function sampleMetrics() {
  const text = await (await fetch('/metrics')).text();
  samples.push({ t: Date.now(), req: metricSum(text, 'lakecrypt_requests_total'), bin: metricSum(text, 'lakecrypt_received_bytes_total'), bout: metricSum(text, 'lakecrypt_sent_bytes_total') });
  if (samples.length > 61) samples.shift();
  const rates = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = (samples[i].t - samples[i - 1].t) / 1000 || 1;
    rates.push({ req: (samples[i].req - samples[i - 1].req) / dt, bin: (samples[i].bin - samples[i - 1].bin) / dt / 1e6, bout: (samples[i].bout - samples[i - 1].bout) / dt / 1e6 });
  }
  const max = Math.max(1, ...rates.flatMap((r) => [r.req, r.bin, r.bout]));
  const line = (k, color) => '<polyline fill="none" stroke="' + color + '" stroke-width="1.5" points="' +
    rates.map((r, i) => (i * 300 / 60).toFixed(1) + ',' + (100 - (r[k] / max) * 95).toFixed(1)).join(' ') + '"/>';
  $('graph').innerHTML = line('req', '#1d4ed8') + line('bin', '#15803d') + line('bout', '#b45309');
}
</script>
</body>
</html>`;
