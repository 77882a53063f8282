#!/usr/bin/env node
// The native data plane (native/dataplane.c, issue #22 design b) compiled with gcc into native/build/dataplane.node,
// with native/heap.cc (V8's memory-pressure notification for the idle trim, compiled as C++ by the same gcc).
//
//   node scripts/build-native.mjs            build when stale (missing, or older than the source or this script)
//   node scripts/build-native.mjs --force    build now
//
// No node-gyp: one gcc call against node's own headers (node_api.h, and OpenSSL's, which node ships under the
// same include directory). Nothing is linked: the node binary exports OpenSSL's symbols, resolved when node loads
// the addon. Several processes may build at once (parallel tests): each compiles to a file of its own and renames
// it into place, so a loader sees a whole old file or a whole new one. Exits 1 with a message saying what is
// missing when gcc or the headers are not there. Without a C++ compiler (gcc's cc1plus, the g++ package) the addon is
// built without native/heap.cc: lowMemory() then answers false and the gateway collects with global.gc().
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SOURCE = path.join(ROOT, 'native', 'dataplane.c');
/** The pump's other sources: the aws-chunked and chunked transfer coding readers (the header all share is PUMP_HEADER). */
export const PUMP_SOURCES = [SOURCE, path.join(ROOT, 'native', 'aws-chunked.c'), path.join(ROOT, 'native', 'http-chunked.c')];
const PUMP_HEADER = path.join(ROOT, 'native', 'pump.h');
export const HEAP_SOURCE = path.join(ROOT, 'native', 'heap.cc');
export const ADDON = path.join(ROOT, 'native', 'build', 'dataplane.node');
const SELF = fileURLToPath(import.meta.url);

const mtime = (p) => statSync(p, { throwIfNoEntry: false })?.mtimeMs;

/** Where node's headers are: <prefix>/include/node (/usr/include/node for the Debian and NodeSource packages). */
export function nodeIncludeDir() {
  const candidates = [path.join(process.config.variables.node_prefix || '/usr', 'include', 'node'), '/usr/include/node', '/usr/local/include/node'];
  return candidates.find((d) => existsSync(path.join(d, 'node_api.h')) && existsSync(path.join(d, 'openssl', 'evp.h'))) ?? null;
}

/** Why the addon must be (re)built, or null when it is up to date. */
export function staleReason() {
  const built = mtime(ADDON);
  if (built === undefined) return 'not built yet';
  for (const f of [...PUMP_SOURCES, PUMP_HEADER]) if ((mtime(f) ?? Infinity) > built) return `native/${path.basename(f)} changed`;
  if ((mtime(HEAP_SOURCE) ?? Infinity) > built) return 'native/heap.cc changed';
  if ((mtime(SELF) ?? Infinity) > built) return 'the build script changed';
  return null;
}

/** Build when stale (or always with force); returns the addon's path. Throws with a clear message when it cannot. */
export function buildNative({ force = false, quiet = false } = {}) {
  const why = force ? 'forced' : staleReason();
  if (!why) return ADDON;
  const include = nodeIncludeDir();
  if (!include) throw new Error("node's headers (node_api.h, openssl/evp.h) not found under <node prefix>/include/node or /usr/include/node: install the nodejs package that ships them");
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('gcc not found: install it (apt-get install gcc) to build native/dataplane.c');
  }
  mkdirSync(path.dirname(ADDON), { recursive: true });
  const tmp = `${ADDON}.${process.pid}.tmp`;
  const heapObj = `${ADDON}.${process.pid}.heap.o`;
  // node's headers as system headers for the C++ file: V8's own headers do not pass -Wextra
  let withHeap = true;
  try {
    execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-fPIC', '-fvisibility=hidden', '-fno-exceptions', '-fno-rtti', '-std=c++17', `-isystem${include}`, '-c', '-o', heapObj, HEAP_SOURCE], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    withHeap = false;
    if (!quiet) console.error(`[build-native] native/heap.cc not built (no C++ compiler?): the idle trim will use global.gc() (${String(e?.stderr ?? e).split('\n')[0]})`);
  }
  try {
    const inputs = withHeap ? [...PUMP_SOURCES, heapObj] : ['-DLC_NO_V8_HEAP', ...PUMP_SOURCES];
    // hidden by default: only the module's registration is exported (native/pump.h)
    execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-shared', '-fPIC', '-fvisibility=hidden', '-pthread', `-I${include}`, '-o', tmp, ...inputs], { stdio: ['ignore', 'inherit', 'inherit'] });
    renameSync(tmp, ADDON);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new Error(`gcc failed on native/dataplane.c: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    rmSync(heapObj, { force: true });
  }
  if (!quiet) console.error(`[build-native] built native/build/dataplane.node${withHeap ? '' : ' without native/heap.cc'} (${why})`);
  return ADDON;
}

if (process.argv[1] && path.resolve(process.argv[1]) === SELF) {
  try {
    buildNative({ force: process.argv.includes('--force') });
  } catch (e) {
    console.error(`[build-native] ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  }
}
