/**
 * The page's script, part 4: actions. Each one opens a dialog that states its scope in the admin's words before
 * anything is sent; the call is the admin API's own (the CLI's), with the session's CSRF token. The audit chain
 * check walks the whole trail, so it runs on a click only.
 *
 * Browser JavaScript in a string (the page has no build step): no backticks and no dollar-brace in it.
 */
export const CLIENT_ACTIONS = String.raw`
/** Show the dialog; resolves true on confirm. */
function confirmAction(o) {
  const d = $('confirm');
  $('confirm-title').textContent = o.title;
  $('confirm-text').textContent = o.text;
  $('confirm-extra').innerHTML = o.extra || '';
  $('confirm-ok').textContent = o.ok;
  $('confirm-ok').className = o.danger ? 'danger' : '';
  d.returnValue = '';
  d.showModal();
  return new Promise((resolve) => d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true }));
}

function scopeOf(act, ds, v, rec) {
  const ver = v === undefined ? null : rec.versions.find((x) => String(x.version) === String(v));
  const next = Math.max(0, ...rec.versions.map((x) => x.version)) + 1;
  switch (act) {
    case 'rotate':
      return { title: 'Rotate the KEK of ' + ds, ok: 'Rotate', text: 'Dataset ' + ds + ' gets key version v' + next + ' for new writes; v' + rec.activeVersion +
        ' becomes decrypt-only, and a re-wrap job moves its header keys under v' + next + ' in the background. Nothing becomes unreadable.' };
    case 'revoke':
      return v === undefined
        ? { danger: true, title: 'Revoke ALL versions of ' + ds, ok: 'Revoke all versions', text: 'Revoke ALL ' + rec.versions.length + ' key versions of dataset ' + ds +
            ': its data becomes unreadable on every gateway within about a second, and writes to it are refused, until restored.' }
        : { danger: true, title: 'Revoke v' + v + ' of ' + ds, ok: 'Revoke v' + v, text: 'Revoke key version v' + v + ' (' + (ver ? ver.state : '?') + ') of dataset ' + ds +
            ': every object whose keys are still wrapped under v' + v + ' becomes unreadable on every gateway within about a second, until restored.' +
            (ver && ver.state === 'active' ? ' It is the active version: writes to ' + ds + ' are refused too.' : '') };
    case 'restore':
      return v === undefined
        ? { title: 'Restore every revoked version of ' + ds, ok: 'Restore all', text: 'Every revoked key version of dataset ' + ds + ' is restored: what they protect becomes readable again.' }
        : { title: 'Restore v' + v + ' of ' + ds, ok: 'Restore v' + v, text: 'Key version v' + v + ' of dataset ' + ds + ' is restored: what it protects becomes readable again.' };
    case 'destroy': {
      const min = view.state.deletionWaitSeconds;
      return { danger: true, title: 'Schedule destruction of v' + v + ' of ' + ds, ok: 'Schedule destruction',
        text: 'Key version v' + v + ' of dataset ' + ds + ' is refused from now on, and destroyed for good when the waiting period is over: whatever it still protects can then never be read again. Until then it can be cancelled.',
        extra: '<label>Waiting period (seconds, at least ' + min + ' = ' + dur(min) + ') <input id="destroy-wait" type="number" min="' + min + '" value="' + min + '"></label>' };
    }
    case 'cancel-destroy':
      return { title: 'Cancel the destruction of v' + v + ' of ' + ds, ok: 'Cancel destruction', text: 'The scheduled destruction of key version v' + v + ' of dataset ' + ds + ' is cancelled: the version returns to the state it had.' };
  }
  return null;
}

async function act(kind, ds, v) {
  if (kind === 'count') {
    say('Counting the objects of ' + ds + ' per key version (reads every header once)…');
    const s = await api('/admin/rewrap/' + enc(ds));
    view.counts[ds] = { byVersion: s.byVersion, total: s.total, at: Date.now() };
    say('Counted ' + s.total + ' objects in ' + ds + '.');
    renderTree();
    return;
  }
  const rec = view.state.datasets.find((d) => d.dataset === ds);
  const o = rec && scopeOf(kind, ds, v, rec);
  if (!o || !(await confirmAction(o))) return;
  const body = v === undefined ? {} : { version: Number(v) };
  let r;
  if (kind === 'rotate') r = await post('/admin/keys/' + enc(ds) + '/rotate', { rewrap: true });
  else if (kind === 'destroy') r = await post('/admin/keys/' + enc(ds) + '/destroy', { ...body, confirm: true, waitSeconds: Number($('destroy-wait').value) });
  else r = await post('/admin/keys/' + enc(ds) + '/' + kind, body);
  say(o.ok + ': done.' + (r && r.warning ? ' ' + r.warning : ''));
  refreshSoon();
}

document.addEventListener('click', (ev) => {
  const b = ev.target.closest('button[data-act]');
  if (!b) return;
  act(b.dataset.act, b.dataset.dataset, b.dataset.version).catch((e) => say(b.textContent + ' on ' + b.dataset.dataset + ' refused: ' + e.message, true));
});

$('verify').addEventListener('click', async () => {
  $('verify-result').textContent = 'verifying the whole chain…';
  try {
    const r = await api('/admin/audit/verify');
    $('verify-result').innerHTML = r.ok
      ? '<span class="tag ok">chain intact</span> <span class="num" id="verify-count">' + r.count + '</span> entries verified at ' + esc(new Date().toLocaleTimeString())
      : '<span class="tag bad">chain broken</span> at entry ' + esc(r.firstBad) + ': ' + esc(r.reason);
  } catch (e) {
    $('verify-result').innerHTML = '<span class="err">' + esc(e.message) + '</span>';
  }
});
`;
