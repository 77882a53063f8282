#!/usr/bin/env bash
# Install runtime dependencies when needed, build dist/ when it is missing or older than src/, and start the
# gateway from the build (it prints its endpoints; the root secret only on the very first start).
set -euo pipefail
cd "$(dirname "$0")/.."
stamp="node_modules/.lakecrypt-lock.sha256"
sum="$(sha256sum package-lock.json package.json | sha256sum | cut -d' ' -f1)"
if [ ! -d node_modules ] || { [ -f "$stamp" ] && [ "$(cat "$stamp")" != "$sum" ]; } || [ ! -d node_modules/esbuild ]; then
  echo "[start] npm ci..."
  npm ci --no-audit --no-fund --loglevel=error
  echo "$sum" > "$stamp"
fi
node scripts/build.mjs --if-stale
# node itself rather than `npm start`: npm's own start-up would add ~0.3 s and a second process to signal.
# --max-semi-space-size=4 --min-semi-space-size=4 --interrupt-budget=16384 --expose-gc: see docs/OPERATIONS.md "Memory" (the Dockerfile and npm start pass them too).
exec node --max-semi-space-size=4 --min-semi-space-size=4 --interrupt-budget=16384 --expose-gc dist/src/main.js "$@"
