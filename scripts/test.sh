#!/usr/bin/env bash
# The README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${LAKECRYPT_CACHE:-$HOME/.cache/lakecrypt}/bin:$PATH"
bash scripts/test-deps.sh && npx vitest run
