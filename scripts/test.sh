#!/usr/bin/env bash
# The README's test command: install what the suite needs, then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${LAKECRYPT_CACHE:-$HOME/.cache/lakecrypt}/bin:$PATH"
bash scripts/test-deps.sh
echo '[test] typecheck (tsc --noEmit)'
npx tsc --noEmit -p .
echo '[test] lint (eslint src tools: typescript-eslint type-checked rules, eslint.config.js)'
npx eslint src tools
echo '[test] build (node scripts/build.mjs: dist/, which the CLI tests and launched gateways run)'
node scripts/build.mjs
mkdir -p .cache
set +e
npx vitest run --reporter=default --reporter=json --outputFile.json=.cache/vitest-results.json
status=$?
set -e
# One plain closing line, whatever the reporter printed above it.
node -e '
  const r = JSON.parse(require("node:fs").readFileSync(".cache/vitest-results.json", "utf8"));
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed` + (r.numPendingTests ? `, ${r.numPendingTests} skipped` : ""));
' || true
exit "$status"
