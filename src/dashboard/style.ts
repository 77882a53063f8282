/** The dashboard's stylesheet (inline in the page: no external assets on the admin port). */
export const DASHBOARD_CSS = /* css */ `
  :root { --fg:#1d2430; --muted:#6b7280; --line:#e5e7eb; --ok:#15803d; --warn:#b45309; --bad:#b91c1c; --accent:#1d4ed8; }
  * { box-sizing: border-box; }
  /* the hidden attribute must win over any display rule below (the sign-in page once showed the empty panels) */
  [hidden] { display: none !important; }
  body { font: 14px/1.45 system-ui, sans-serif; color: var(--fg); margin: 0; background: #f8fafc; }
  header { display:flex; align-items:center; justify-content:space-between; padding: 10px 20px; background:#0f172a; color:#fff; }
  header h1 { font-size: 16px; margin: 0; letter-spacing: .02em; }
  header .right { display:flex; gap: 14px; align-items: center; font-size: 12px; }
  main { padding: 16px 20px; display: grid; grid-template-columns: minmax(420px, 1.25fr) minmax(360px, 1fr); gap: 16px; }
  section { background:#fff; border:1px solid var(--line); border-radius: 8px; padding: 12px 14px; min-width: 0; }
  section.wide { grid-column: span 2; }
  section h2 { font-size: 13px; text-transform: uppercase; color: var(--muted); margin: 0 0 8px; letter-spacing: .05em; }
  section h3 { font-size: 12px; color: var(--muted); margin: 10px 0 4px; font-weight: 600; }
  ul.tree, ul.tree ul { list-style: none; margin: 0; padding-left: 18px; }
  ul.tree { padding-left: 0; }
  ul.tree li { margin: 4px 0; }
  .node { display: inline-flex; gap: 8px; align-items: baseline; flex-wrap: wrap; }
  .tag { font-size: 11px; padding: 1px 6px; border-radius: 9px; border: 1px solid var(--line); white-space: nowrap; }
  .active, .ok { color: var(--ok); border-color: var(--ok); }
  .decrypt-only, .disabled, .running, .stale { color: var(--warn); border-color: var(--warn); }
  .revoked, .destroyed, .pending-destruction, .bad, .failed { color: var(--bad); border-color: var(--bad); }
  .count, .muted { color: var(--muted); font-variant-numeric: tabular-nums; }
  .num { font-variant-numeric: tabular-nums; }
  button { font: inherit; font-size: 12px; padding: 2px 9px; border: 1px solid var(--accent); color: var(--accent); background: #fff; border-radius: 5px; cursor: pointer; }
  button:hover { background: #eff6ff; }
  button.danger { border-color: var(--bad); color: var(--bad); }
  button.danger:hover { background: #fef2f2; }
  header button { color: #fff; border-color: #94a3b8; background: transparent; }
  .bar { height: 10px; background: var(--line); border-radius: 5px; overflow: hidden; width: 140px; display:inline-block; vertical-align: middle; }
  .bar > div { height: 100%; background: var(--ok); }
  table { border-collapse: collapse; width: 100%; font-size: 12px; }
  td, th { text-align: left; padding: 3px 6px; border-bottom: 1px solid var(--line); vertical-align: top; }
  th { color: var(--muted); font-weight: 600; }
  #login { max-width: 360px; margin: 80px auto; }
  #login input { width: 100%; margin: 4px 0 10px; padding: 6px; font: inherit; }
  .err { color: var(--bad); }
  #msg { min-height: 1.4em; margin: 0; padding: 6px 20px 0; font-size: 12px; }
  svg.chart { width: 100%; height: auto; display: block; }
  svg.chart text { font: 10px system-ui, sans-serif; fill: var(--muted); }
  svg.chart .axis { stroke: #9ca3af; stroke-width: 1; }
  svg.chart .grid { stroke: var(--line); stroke-width: 1; }
  .legend span { margin-right: 12px; font-size: 12px; }
  .legend b { font-variant-numeric: tabular-nums; }
  td code { word-break: break-all; }
  dialog { border: 1px solid var(--line); border-radius: 8px; max-width: 520px; padding: 16px 18px; }
  dialog::backdrop { background: rgba(15, 23, 42, .45); }
  dialog h3 { margin: 0 0 8px; font-size: 15px; }
  dialog p { margin: 0 0 10px; }
  dialog menu { display: flex; justify-content: flex-end; gap: 8px; padding: 0; margin: 12px 0 0; }
  dialog input { font: inherit; width: 9em; padding: 3px 5px; }
`;
