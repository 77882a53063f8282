#!/usr/bin/env node
// The compiled build: src/main.ts (the gateway) and src/cli/main.ts (the CLI) bundled by esbuild into plain JS,
// npm packages left external (loaded from node_modules as they are), so a start costs no TypeScript compile.
//
//   node scripts/build.mjs             build now (`npm run build`)
//   node scripts/build.mjs --if-stale  build only when dist/ is missing or older than what it was built from
//
// Plain JS (no tsx) so that checking the build costs a few stat() calls. The bundles keep their place under
// dist/src/ so that relative URLs resolved against import.meta.url still land where they do from src/: the
// worker pool's `new URL('../../workers/crypto-worker.mjs', import.meta.url)` (src/engine/pool.ts) finds the
// repository's workers/ from dist/src/main.js as it does from src/engine/pool.ts.
//
// Safe when several processes build at once (parallel tests, CLI runs): each writes every output to a file of
// its own and renames it into place (atomic), so a reader sees a whole old file or a whole new one; all
// builders write the same bytes. dist/build.json lists the inputs and when the build started: an input changed
// since (mtime at or after that instant), missing, or a changed build script makes the build stale.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const DIST = path.join(ROOT, 'dist');
const STAMP = path.join(DIST, 'build.json');
const SELF = fileURLToPath(import.meta.url);

/** Entry point -> the file the build makes of it. */
export const ENTRIES = {
  'src/main.ts': 'dist/src/main.js',
  'src/cli/main.ts': 'dist/src/cli/main.js',
};
export const GATEWAY_JS = path.join(ROOT, ENTRIES['src/main.ts']);
export const CLI_JS = path.join(ROOT, ENTRIES['src/cli/main.ts']);

const mtime = (p) => statSync(p, { throwIfNoEntry: false })?.mtimeMs;

/** Why the build must be (re)made, or null when dist/ is up to date. Without the sources (the image ships only the build) never stale. */
export function staleReason() {
  if (!existsSync(path.join(ROOT, 'src/main.ts'))) return null;
  let stamp;
  try {
    stamp = JSON.parse(readFileSync(STAMP, 'utf8'));
  } catch {
    return 'no build yet';
  }
  for (const out of Object.values(ENTRIES)) if (mtime(path.join(ROOT, out)) === undefined) return `${out} missing`;
  const since = stamp.startedAt;
  if (typeof since !== 'number' || !Array.isArray(stamp.inputs)) return 'unreadable dist/build.json';
  for (const rel of [...stamp.inputs, path.relative(ROOT, SELF)]) {
    const m = mtime(path.join(ROOT, rel));
    if (m === undefined) return `${rel} gone`;
    if (m >= since) return `${rel} changed`;
  }
  return null;
}

function writeAtomic(file, contents) {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  writeFileSync(tmp, contents);
  renameSync(tmp, file);
}

/** Build both bundles now. */
export async function build() {
  const startedAt = Date.now();
  // Loaded only when building: a fresh build's check stays free of esbuild's start-up.
  const esbuild = await import('esbuild');
  const common = {
    absWorkingDir: ROOT,
    outdir: DIST,
    outbase: ROOT,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // No keepNames: it wraps every named closure in a defineProperty of its name at creation, per request on the hot
    // path, and cost 20% of the gateway's CPU per small request (bench/ab.ts --scenario get-small, both orders: 0.92
    // vs 1.15 and 0.89 vs 1.12 CPU-ms; bench/README.md "keepNames"). Names are esbuild's only where two modules'
    // top-level names collide (a function may show as `fdOf2` in a stack); error classes set their `name` themselves.
    keepNames: false,
    sourcemap: 'linked',
    sourcesContent: false,
    metafile: true,
    write: false,
    logLevel: 'silent',
  };
  const [gateway, cli] = await Promise.all([
    // The gateway keeps its npm packages external: native addons (pkcs11js), worker files found next to their
    // package (piscina, pino) and the AWS SDK stay exactly as npm installed them.
    esbuild.build({ ...common, entryPoints: ['src/main.ts'], packages: 'external' }),
    // The CLI is a small pure-JS client: its packages (commander, the SigV4 signer) go into the bundle, which
    // saves most of its module loading (~0.25 s instead of ~0.38 s for --help on the loaded 2-core machine).
    // Bundled CommonJS packages need a `require` in the ES module. cli-progress (the --wait bar) stays lazy.
    esbuild.build({
      ...common,
      entryPoints: ['src/cli/main.ts'],
      external: ['cli-progress'],
      banner: { js: "import { createRequire as __lakecryptRequire } from 'node:module'; const require = __lakecryptRequire(import.meta.url);" },
    }),
  ]);
  const r = { outputFiles: [...gateway.outputFiles, ...cli.outputFiles], metafile: { inputs: { ...gateway.metafile.inputs, ...cli.metafile.inputs } } };
  for (const f of r.outputFiles) writeAtomic(f.path, f.contents);
  // Bundled packages change only with an install, which rewrites package-lock.json: that one file stands for them.
  const inputs = [...Object.keys(r.metafile.inputs).filter((f) => !f.startsWith('node_modules/')), 'package-lock.json'].sort();
  writeAtomic(STAMP, JSON.stringify({ startedAt, esbuild: esbuild.version, inputs }, null, 1) + '\n');
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A lock left by a builder that died (its process is gone) or that has held it far longer than a build takes. */
function abandoned(lock) {
  try {
    const pid = Number(readFileSync(lock, 'utf8'));
    if (Date.now() - (mtime(lock) ?? 0) > 120_000) return true;
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return e?.code === 'ESRCH';
  }
}

/**
 * Build when stale; returns whether this process built. One builder at a time (dist/.build.lock): the others
 * wait for its build instead of all compiling at once (parallel tests start many CLIs and gateways together).
 */
export async function ensureBuilt() {
  if (staleReason() === null) return false;
  mkdirSync(DIST, { recursive: true });
  const lock = path.join(DIST, '.build.lock');
  const deadline = Date.now() + 120_000;
  let held = false;
  while (!held) {
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
      held = true;
    } catch (e) {
      if (e?.code !== 'EEXIST') throw e;
      if (abandoned(lock)) rmSync(lock, { force: true });
      else if (Date.now() > deadline) break; // build anyway: outputs are renamed into place whole
      else await sleep(50);
      if (staleReason() === null) return false;
    }
  }
  try {
    if (staleReason() === null) return false;
    await build();
    return true;
  } finally {
    if (held) rmSync(lock, { force: true });
  }
}

if (process.argv[1] && pathToFileURL(path.resolve(process.argv[1])).href === import.meta.url) {
  const ifStale = process.argv.includes('--if-stale');
  const why = ifStale ? staleReason() : 'asked';
  if (why === null) process.exit(0);
  try {
    // The native data plane (native/dataplane.c) beside the bundles, when gcc and node's headers are here; without
    // them the gateway moves every body through Node (src/engine/dataplane.ts says why at start).
    try {
      const { buildNative } = await import('./build-native.mjs');
      buildNative({ quiet: ifStale });
    } catch (e) {
      // said once per explicit build; a --if-stale check at each launch stays quiet (the gateway warns at start)
      if (!ifStale) process.stderr.write(`[build] native data plane not built (the gateway uses the Node path): ${e instanceof Error ? e.message : String(e)}\n`);
    }
    const t0 = Date.now();
    const built = ifStale ? await ensureBuilt() : (await build(), true);
    if (built) process.stderr.write(`[build] dist/ (${why}): ${Object.values(ENTRIES).join(', ')} in ${Date.now() - t0} ms\n`);
  } catch (e) {
    // esbuild's own message names file, line and column.
    process.stderr.write(`[build] failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  }
}
