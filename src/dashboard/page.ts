/**
 * The admin dashboard: one self-contained page (no build step, no external assets) served on the admin port.
 * It logs in through POST /admin/login (HttpOnly session cookie) and reads the admin API; graphs come from
 * the open /metrics endpoint. State-changing calls carry the session's CSRF token (X-Lakecrypt-CSRF), which the
 * page holds in memory only: from the login answer, or after a reload from GET /admin/whoami. Everything it
 * shows is already available to an admin through the CLI; every action asks for confirmation first.
 *
 * The script is in four parts (client-*.ts): core (API, sign-in, the one poll loop), panels, chart, actions.
 */
import { CLIENT_ACTIONS } from './client-actions.ts';
import { CLIENT_CHART } from './client-chart.ts';
import { CLIENT_CORE } from './client-core.ts';
import { CLIENT_PANELS } from './client-panels.ts';
import { DASHBOARD_CSS } from './style.ts';

const BODY = /* html */ `
<header><h1>lakecrypt admin</h1><span class="right"><span id="updated"></span><span id="who"></span><button id="logout" hidden>Sign out</button></span></header>
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
<div id="app" hidden>
<p id="msg" class="muted"></p>
<main>
  <section style="grid-row: span 2">
    <h2>Keys: CMK → dataset → KEK versions</h2>
    <ul class="tree" id="tree"></ul>
  </section>
  <section>
    <h2>Requests and errors</h2>
    <div class="legend"><span style="color:#1d4ed8">requests <b id="now-rps">-</b></span><span style="color:#b91c1c">errors <b id="now-eps">-</b></span></div>
    <svg class="chart" id="rate-chart" viewBox="0 0 600 170" role="img" aria-label="S3 requests and errors per second"></svg>
  </section>
  <section>
    <h2>Latency (S3 requests, all operations)</h2>
    <div class="legend"><span style="color:#15803d">p50 <b id="now-p50">-</b></span><span style="color:#b45309">p99 <b id="now-p99">-</b></span></div>
    <svg class="chart" id="latency-chart" viewBox="0 0 600 170" role="img" aria-label="p50 and p99 latency in milliseconds"></svg>
  </section>
  <section class="wide">
    <h2>Jobs: re-wrap and adopt</h2>
    <table id="jobs"><thead><tr><th>dataset</th><th>job</th><th>state</th><th>progress</th><th>rate</th><th>ETA</th><th>left after it</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Revoked key versions</h2>
    <table id="revocations"><tbody></tbody></table>
  </section>
  <section>
    <h2>CMK providers</h2>
    <table id="cmks"><thead><tr><th>CMK</th><th>kind</th><th>health</th><th>last good check</th><th>versions</th><th>datasets</th><th></th></tr></thead><tbody></tbody></table>
    <p class="count" id="epoch"></p>
  </section>
  <section class="wide">
    <h2>Revoked blocks</h2>
    <table id="blocks"><thead><tr><th>dataset</th><th>object</th><th>what</th><th>plaintext bytes</th><th></th></tr></thead><tbody></tbody></table>
  </section>
  <section class="wide">
    <h2>Datasets (routing)</h2>
    <table id="datasets"><thead><tr><th>dataset</th><th>routes</th><th>CMK</th><th>active</th><th>origin</th></tr></thead><tbody></tbody></table>
  </section>
  <section class="wide">
    <h2>Audit trail</h2>
    <p><span id="audit-head"></span> <button id="verify">Verify chain</button> <span id="verify-result" class="count"></span></p>
    <table id="audit"><thead><tr><th>#</th><th>time</th><th>event</th><th>actor</th><th>details</th></tr></thead><tbody></tbody></table>
  </section>
</main>
</div>
<dialog id="confirm">
  <form method="dialog">
    <h3 id="confirm-title"></h3>
    <p id="confirm-text"></p>
    <div id="confirm-extra"></div>
    <menu><button value="cancel" id="confirm-cancel">Cancel</button><button value="ok" id="confirm-ok">OK</button></menu>
  </form>
</dialog>`;

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>lakecrypt admin</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>${DASHBOARD_CSS}</style>
</head>
<body>${BODY}
<script>
${CLIENT_CORE}
${CLIENT_PANELS}
${CLIENT_CHART}
${CLIENT_ACTIONS}
</script>
</body>
</html>`;
