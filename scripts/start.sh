#!/usr/bin/env bash
# Install runtime dependencies when needed and start the gateway (it prints its endpoint and credentials).
set -euo pipefail
cd "$(dirname "$0")/.."
stamp="node_modules/.lakecrypt-lock.sha256"
sum="$(sha256sum package-lock.json package.json | sha256sum | cut -d' ' -f1)"
if [ ! -d node_modules ] || { [ -f "$stamp" ] && [ "$(cat "$stamp")" != "$sum" ]; } || [ ! -d node_modules/tsx ]; then
  echo "[start] npm ci..."
  npm ci --no-audit --no-fund --loglevel=error
  echo "$sum" > "$stamp"
fi
exec npm start -- "$@"
