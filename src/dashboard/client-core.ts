/**
 * The page's script, part 1: helpers, the admin API call (with the session's CSRF token), sign-in, and the one
 * poll loop. The loop runs one refresh at a time, the next POLL_MS after the last one started (a slow answer
 * never piles up calls), and not at all while the tab is hidden (visibilitychange restarts it). What a refresh
 * reads is cheap whatever the size of the lake: GET /admin/dashboard/state and /metrics; CMK status and the
 * routing table less often; revoked blocks only when a dataset's count changed; header scans only on a click.
 *
 * Browser JavaScript in a string (the page has no build step): no backticks and no dollar-brace in it.
 */
export const CLIENT_CORE = String.raw`
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const enc = encodeURIComponent;
const POLL_MS = 5000;
let csrf = '';
let me = { root: true };

const api = async (path, opts = {}) => {
  const headers = { 'content-type': 'application/json' };
  if (csrf) headers['x-lakecrypt-csrf'] = csrf;
  const r = await fetch(path, { credentials: 'same-origin', headers, ...opts });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw Object.assign(new Error(body.message || r.statusText), { status: r.status, code: body.error });
  return body;
};
const post = (path, body) => api(path, { method: 'POST', body: JSON.stringify(body || {}) });

/** 95 -> "1 min 35 s"; what a person reads, not a number of seconds. */
function dur(sec) {
  if (sec === null || sec === undefined || !isFinite(sec)) return '-';
  const s = Math.max(0, Math.round(sec));
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min' + (s % 60 ? ' ' + (s % 60) + ' s' : '');
  if (s < 86400) return Math.floor(s / 3600) + ' h' + (Math.floor(s / 60) % 60 ? ' ' + (Math.floor(s / 60) % 60) + ' min' : '');
  return Math.floor(s / 86400) + ' d' + (Math.floor(s / 3600) % 24 ? ' ' + (Math.floor(s / 3600) % 24) + ' h' : '');
}
const when = (iso) => (iso ? new Date(iso).toLocaleString() : '-');
const bytes = (n) => (n < 1024 ? n + ' B' : n < 1048576 ? (n / 1024).toFixed(1) + ' KiB' : n < 1073741824 ? (n / 1048576).toFixed(1) + ' MiB' : (n / 1073741824).toFixed(2) + ' GiB');
function say(text, bad) {
  $('msg').textContent = text;
  $('msg').className = bad ? 'err' : 'muted';
}

// ---------------------------------------------------------------- sign-in

async function login(ev) {
  ev.preventDefault();
  $('login-err').textContent = '';
  try {
    const r = await post('/admin/login', { accessKey: $('ak').value, secretKey: $('sk').value });
    $('sk').value = '';
    signedIn(r);
  } catch (e) {
    $('login-err').textContent = 'Sign-in refused: ' + e.message;
  }
}
function signedOut() {
  csrf = '';
  $('app').hidden = true;
  $('login').hidden = false;
  $('who').textContent = '';
  $('logout').hidden = true;
  poll.started = false;
  clearTimeout(poll.timer);
  poll.timer = null;
}
function signedIn(r) {
  csrf = r.csrfToken;
  me = { root: !r.tenant, tenant: r.tenant };
  $('who').textContent = r.accessKey + (r.tenant ? ' (tenant ' + r.tenant + ')' : '');
  $('logout').hidden = false;
  $('login').hidden = true;
  $('app').hidden = false;
  $('verify').hidden = !me.root;
  if (poll.started) return; // a login after the reload check: one loop only
  poll.started = true;
  tick();
}
$('login-form').addEventListener('submit', login);
$('logout').addEventListener('click', async () => {
  // signing out locally must not depend on the server answering: the session cookie expires on its own
  await post('/admin/logout').catch(() => {});
  signedOut();
});
// A reload with a live session cookie goes straight back in.
api('/admin/whoami').then((r) => { if (r.csrfToken) signedIn(r); }, () => { /* not signed in: the form stays */ });

// ---------------------------------------------------------------- the poll loop

const poll = { started: false, busy: false, timer: null, lastStart: 0, again: false, n: 0 };
function schedule(delay) {
  clearTimeout(poll.timer);
  poll.timer = null;
  if (!poll.started || document.visibilityState === 'hidden') return;
  poll.timer = setTimeout(tick, Math.max(0, delay));
}
async function tick() {
  poll.timer = null;
  if (!poll.started || poll.busy || document.visibilityState === 'hidden') return;
  poll.busy = true;
  poll.lastStart = Date.now();
  try {
    await refresh(poll.n++);
  } catch (e) {
    if (e.status === 401 || e.status === 403) return signedOut();
    say('Refresh failed: ' + e.message, true);
  } finally {
    poll.busy = false;
    if (poll.started) schedule(poll.again ? 0 : poll.lastStart + POLL_MS - Date.now());
    poll.again = false;
  }
}
/** After an action: refresh at once (or right after the refresh under way), then every POLL_MS again. */
function refreshSoon() {
  force.cmk = force.routes = true;
  if (poll.busy) poll.again = true;
  else schedule(0);
}
document.addEventListener('visibilitychange', () => {
  if (!poll.started) return;
  if (document.visibilityState === 'hidden') {
    clearTimeout(poll.timer);
    poll.timer = null;
  } else if (!poll.busy && !poll.timer) {
    schedule(poll.lastStart + POLL_MS - Date.now());
  }
});
`;
