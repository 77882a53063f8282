/**
 * The page's script, part 2: one refresh (what it reads, and how rarely the dearer reads happen) and the panels:
 * key hierarchy with key state, age and next rotation; jobs with rate and ETA; revocations with the byte range of
 * each revoked block; CMK providers; audit head. Every value shown comes from the admin API's answer as is, so
 * the test can compare the page with the API.
 *
 * Browser JavaScript in a string (the page has no build step): no backticks and no dollar-brace in it.
 */
export const CLIENT_PANELS = String.raw`
const view = { state: null, cmks: [], routes: [], names: '', revoked: {}, revokedCount: {}, counts: {}, jobs: {} };
const force = { cmk: true, routes: true };
/** CMK status pings every provider: once a minute (the readiness ages in every state say how fresh health is). */
const CMK_EVERY = 12;
/** The routing table (bucket/prefix of each dataset): every 30 s, and when the set of datasets changed. */
const ROUTES_EVERY = 6;

async function refresh(n) {
  const wantCmk = force.cmk || n % CMK_EVERY === 0;
  const [state, text, cmk] = await Promise.all([
    api('/admin/dashboard/state'),
    fetch('/metrics').then((r) => (r.ok ? r.text() : null), () => null),
    // a refused or failed CMK read keeps the last shown status until the next round (the state poll shows health)
    wantCmk ? api('/admin/cmk').catch(() => null) : null,
  ]);
  if (cmk) view.cmks = cmk.cmks;
  force.cmk = false;
  const names = state.datasets.map((d) => d.dataset).join('\n');
  if (force.routes || names !== view.names || n % ROUTES_EVERY === 0) {
    try {
      view.routes = (await api('/admin/datasets')).datasets;
      view.names = names;
      force.routes = false;
    } catch { /* the panel keeps its last answer */ }
  }
  // revoked blocks are resolved (object, byte range) by the server once per change of the list, not per poll
  for (const d of state.datasets) {
    if (d.revokedBlocks === view.revokedCount[d.dataset]) continue;
    if (!d.revokedBlocks) view.revoked[d.dataset] = [];
    else {
      try {
        view.revoked[d.dataset] = (await api('/admin/dashboard/revoked/' + enc(d.dataset))).revoked;
      } catch { continue; }
    }
    view.revokedCount[d.dataset] = d.revokedBlocks;
  }
  view.state = state;
  renderTree();
  renderRoutes();
  renderJobs();
  renderRevocations();
  renderCmks();
  renderAudit();
  if (text) sampleMetrics(text, Date.parse(state.now) || Date.now());
  $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
}

const btn = (act, cls, label, ds, v) =>
  '<button class="' + cls + '" data-act="' + act + '" data-dataset="' + esc(ds) + '"' + (v === undefined ? '' : ' data-version="' + v + '"') + '>' + label + '</button>';

function byState(versions) {
  const n = {};
  for (const v of versions) n[v.state] = (n[v.state] || 0) + 1;
  return Object.keys(n).map((s) => '<span class="tag ' + s + '">' + n[s] + ' ' + s + '</span>').join(' ');
}

function rotationText(d) {
  if (!d.rotation) return 'no rotation policy';
  if (!d.rotation.dueAt) return 'every ' + d.rotation.everyDays + ' d (no active version)';
  const left = (Date.parse(d.rotation.dueAt) - Date.parse(view.state.now)) / 1000;
  return 'next rotation ' + (left > 0 ? 'in ' + dur(left) : 'due now') + ' (' + when(d.rotation.dueAt) + '; every ' + d.rotation.everyDays + ' d, checked hourly)';
}

function renderTree() {
  const { datasets } = view.state;
  const ids = [...new Set(view.cmks.map((c) => c.id).concat(datasets.map((d) => d.cmkId)))];
  $('tree').innerHTML = ids.map((id) => {
    const c = view.cmks.find((x) => x.id === id);
    const versions = c ? c.versions.map((v) => '<span class="tag ' + esc(v.state) + '">v' + v.version + ' ' + esc(v.state) + '</span>').join(' ') : '';
    const ds = datasets.filter((d) => d.cmkId === id).map((d) => {
      const counted = view.counts[d.dataset];
      const vs = d.versions.map((v) => {
        let acts = '';
        if (v.state === 'active' || v.state === 'decrypt-only') acts += btn('revoke', 'revoke danger', 'Revoke', d.dataset, v.version);
        if (v.state === 'revoked') acts += btn('restore', 'restore', 'Restore', d.dataset, v.version);
        if (v.state === 'decrypt-only' || v.state === 'revoked') acts += ' ' + btn('destroy', 'destroy danger', 'Destroy…', d.dataset, v.version);
        if (v.state === 'pending-destruction') acts += btn('cancel-destroy', 'cancel-destroy', 'Cancel destroy', d.dataset, v.version);
        const objs = counted ? '<span class="count objects">' + (counted.byVersion[v.version] || 0) + ' objects</span>' : '';
        return '<li class="version" data-dataset="' + esc(d.dataset) + '" data-version="' + v.version + '" data-state="' + esc(v.state) + '"><span class="node">v' + v.version +
          ' <span class="tag ' + esc(v.state) + '">' + esc(v.state) + '</span><span class="count">created ' + esc(when(v.createdAt)) + (v.cmkVersion ? ', CMK v' + v.cmkVersion : '') + '</span>' + objs +
          (v.destroyAt ? '<span class="count due">destroyed at ' + esc(when(v.destroyAt)) + '</span>' : '') + acts + '</span></li>';
      }).join('');
      const anyRevoked = d.versions.some((v) => v.state === 'revoked');
      return '<li class="dataset" data-dataset="' + esc(d.dataset) + '"><span class="node"><b>' + esc(d.dataset) + '</b>' + byState(d.versions) +
        '<span class="count active-age" data-age="' + (d.activeAgeSeconds ?? '') + '">' + (d.activeVersion ? 'active v' + d.activeVersion + ', age ' + dur(d.activeAgeSeconds) : 'no active version') + '</span></span><br>' +
        '<span class="node"><span class="count rotation">' + esc(rotationText(d)) + '</span>' +
        btn('rotate', 'rotate', 'Rotate KEK', d.dataset) + btn('revoke', 'revoke-all danger', 'Revoke all', d.dataset) +
        (anyRevoked ? btn('restore', 'restore-all', 'Restore all', d.dataset) : '') + btn('count', 'count-objects', 'Count objects', d.dataset) +
        (counted ? '<span class="count">counted ' + esc(new Date(counted.at).toLocaleTimeString()) + ': ' + counted.total + ' objects</span>' : '') + '</span><ul>' + vs + '</ul></li>';
    }).join('');
    const health = c ? (c.ok ? '<span class="tag ok">ok</span>' : '<span class="tag bad">unreachable</span>') : '';
    return '<li class="cmk" data-cmk="' + esc(id) + '"><span class="node"><b>CMK ' + esc(id) + '</b> <span class="count">' + esc(c ? c.kind : '') + '</span>' + health + ' ' + versions + '</span><ul>' + ds + '</ul></li>';
  }).join('');
}

function renderRoutes() {
  $('datasets').tBodies[0].innerHTML = view.routes.map((d) =>
    '<tr class="dataset-row" data-dataset="' + esc(d.dataset) + '"><td>' + esc(d.dataset) + '</td><td><code>' + esc(d.bucket + '/' + (d.prefix || '')) + '*</code></td><td>' +
    esc(d.cmkId || '-') + '</td><td>' + (d.activeVersion ? 'v' + d.activeVersion : '-') + '</td><td>' + (d.configured ? 'config' : d.registered ? 'registry' : 'bucket') + '</td></tr>').join('');
}

/** Progress of a job as [done, total or null, unit]; the rate and ETA come from the job's own figure or two polls. */
function progressOf(kind, j) {
  if (kind === 'adopt') return [j.scanned || 0, j.state === 'running' ? null : (j.scanned || 0), 'objects'];
  if (j.phase === 'keys' || (j.mode === 'header-keys' && j.phase !== 'finished')) {
    const done = j.headerKeysRewrapped || 0;
    return [done, done + (j.headerKeysPending || 0), 'header keys'];
  }
  if (j.mode === 'header-keys') return [j.headerKeysRewrapped || 0, j.headerKeysRewrapped || 0, 'header keys'];
  return [j.done || 0, j.total || 0, 'headers'];
}
function jobRow(kind, ds, j) {
  const [done, total, unit] = progressOf(kind, j);
  const running = j.state === 'running';
  const key = kind + ' ' + ds;
  const prev = view.jobs[key];
  const now = Date.now();
  let rate = kind === 'adopt' ? j.objectsPerSec : (j.mode === 'header-keys' ? null : j.headersPerSec);
  if ((rate === undefined || rate === null) && prev && running && now > prev.t && done >= prev.done) rate = ((done - prev.done) * 1000) / (now - prev.t);
  view.jobs[key] = { t: now, done };
  // a walk does not know its total before its end: while it runs, the bar never claims 100%
  let pct = total ? Math.floor((done / total) * 100) : running ? 0 : 100;
  if (running) pct = Math.min(pct, 99);
  const eta = running && rate > 0 && total ? dur((total - done) / rate) : running ? '-' : 'finished ' + when(j.finishedAt);
  const state = j.state + (kind === 'rewrap' && j.mode ? ' (' + j.mode + ')' : '');
  return '<tr class="job-row ' + kind + '-row" data-dataset="' + esc(ds) + '" data-kind="' + kind + '"><td>' + esc(ds) + '</td><td>' + kind + '</td><td><span class="tag ' + esc(j.state) + '">' + esc(state) + '</span></td>' +
    '<td><span class="bar"><div style="width:' + pct + '%"></div></span> <span class="pct">' + pct + '%</span> <span class="count done">' + done + (total === null ? '' : '/' + total) + ' ' + unit + '</span></td>' +
    '<td class="rate num">' + (rate > 0 ? (rate < 10 ? rate.toFixed(1) : Math.round(rate)) + ' ' + unit + '/s' : '-') + '</td><td class="eta">' + esc(eta) + '</td>' +
    '<td class="pending num">' + (j.pending ?? '-') + '</td></tr>';
}
function renderJobs() {
  const rows = [];
  for (const d of view.state.datasets) {
    if (d.rewrap) rows.push(jobRow('rewrap', d.dataset, d.rewrap));
    if (d.adopt) rows.push(jobRow('adopt', d.dataset, d.adopt));
  }
  $('jobs').tBodies[0].innerHTML = rows.join('') || '<tr><td colspan="7" class="count">no re-wrap or adopt job yet</td></tr>';
}

function renderRevocations() {
  const rev = [];
  for (const d of view.state.datasets) {
    for (const v of d.versions) {
      if (v.state === 'revoked' || v.state === 'pending-destruction' || v.state === 'destroyed') {
        rev.push('<tr class="revoked-version" data-dataset="' + esc(d.dataset) + '" data-version="' + v.version + '"><td>' + esc(d.dataset) + '</td><td>KEK v' + v.version + '</td><td><span class="tag ' + esc(v.state) + '">' + esc(v.state) + '</span>' +
          (v.destroyAt ? ' <span class="count due">due ' + esc(when(v.destroyAt)) + '</span>' : '') + '</td></tr>');
      }
    }
  }
  for (const c of view.cmks) for (const v of c.versions) if (v.state !== 'active') rev.push('<tr><td>CMK ' + esc(c.id) + '</td><td>v' + v.version + '</td><td><span class="tag ' + esc(v.state) + '">' + esc(v.state) + '</span>' + (v.destroyAt ? ' <span class="count due">due ' + esc(when(v.destroyAt)) + '</span>' : '') + '</td></tr>');
  $('revocations').tBodies[0].innerHTML = rev.join('') || '<tr><td class="count">no revoked key version</td></tr>';

  const blocks = [];
  for (const d of view.state.datasets) {
    for (const b of view.revoked[d.dataset] || []) {
      const what = b.part === null ? 'whole object' : 'block ' + b.block + (b.parts > 1 ? ' of part ' + b.part : '');
      let range = '-';
      if (b.range) {
        range = 'bytes ' + b.range.start + '-' + b.range.end + ' (' + bytes(b.range.end - b.range.start + 1) + ')';
        if (b.partRange) range += '; bytes ' + b.partRange.start + '-' + b.partRange.end + ' of part ' + b.part;
      }
      blocks.push('<tr class="revoked-block" data-dataset="' + esc(d.dataset) + '" data-oid="' + esc(b.oid) + '" data-block="' + (b.block ?? '*') + '"><td>' + esc(d.dataset) + '</td><td class="object"><code>' +
        esc(b.bucket !== null ? b.bucket + '/' + b.key : 'oid ' + b.oid) + '</code></td><td>' + esc(what) + '</td><td class="range num">' + esc(range) + '</td><td class="count">' +
        esc(b.note || (b.size !== null ? 'object size ' + b.size + ' B, ' + (b.parts > 1 ? b.parts + ' parts (ranges per part too)' : 'one part') + ', block size ' + bytes(b.blockSize) : '')) + '</td></tr>');
    }
  }
  $('blocks').tBodies[0].innerHTML = blocks.join('') || '<tr><td colspan="5" class="count">no revoked block</td></tr>';
}

function renderCmks() {
  const r = view.state.ready;
  const ages = r.cmks || {};
  const ids = [...new Set(view.cmks.map((c) => c.id).concat(Object.keys(ages)))];
  $('cmks').tBodies[0].innerHTML = ids.map((id) => {
    const c = view.cmks.find((x) => x.id === id);
    const a = ages[id];
    const ok = a ? a.ok : c ? c.ok : false;
    return '<tr class="cmk-row" data-cmk="' + esc(id) + '"><td>' + esc(id) + '</td><td>' + esc(c ? c.kind : '-') + '</td><td><span class="tag ' + (ok ? 'ok' : 'bad') + '">' + (ok ? 'up' : 'down') + '</span></td>' +
      '<td class="num">' + (a && a.ageMs !== null ? dur(a.ageMs / 1000) + ' ago' : 'never') + '</td><td>' + (c ? c.versions.map((v) => 'v' + v.version + ' ' + esc(v.state)).join(', ') : '-') + '</td><td class="num">' +
      (c ? c.datasets : '-') + '</td><td class="err">' + esc((a && a.error) || (c && c.error) || '') + '</td></tr>';
  }).join('');
  const e = r.epoch;
  $('epoch').innerHTML = 'Gateway ' + (r.ready ? '<span class="tag ok">ready</span>' : '<span class="tag bad">not ready: ' + esc(r.failing || '') + '</span>') +
    ' · revocation epoch confirmed ' + (e.ageMs === null ? 'never' : (e.ageMs / 1000).toFixed(1) + ' s ago') + ' (bound ' + (e.boundMs / 1000) + ' s)';
}

function renderAudit() {
  const a = view.state.audit;
  if (!a) {
    $('audit-head').textContent = 'The audit chain is the whole lake\'s: the root administrator sees its head.';
    return;
  }
  const top = a.entries[a.entries.length - 1];
  $('audit-head').innerHTML = 'Head: entry <b class="num" id="head-seq">' + a.head + '</b>' + (top && top.seq === a.head ? ' <code>' + esc(top.hash.slice(0, 16)) + '…</code> at ' + esc(when(top.ts)) : '');
  $('audit').tBodies[0].innerHTML = a.entries.slice().reverse().map((e) =>
    '<tr><td class="num">' + e.seq + '</td><td>' + esc(when(e.ts)) + '</td><td>' + esc(e.event) + '</td><td>' + esc(e.actor) + '</td><td><code>' + esc(JSON.stringify(e.details)) + '</code></td></tr>').join('');
}
`;
