#!/usr/bin/env bash
# Runs every test: the Rust crates' tests (cargo) and the Python suite (pytest), against the real
# libtiledb, a real S3-compatible server on 127.0.0.1 (moto, started here and stopped on exit), the
# PyPI `radiobject` and `tiledb` packages as interop peers, and real images shipped by PyPI packages.
# Before them it checks the code: ruff (lint and format) and mypy on the Python package, stubtest of
# the native module against its stub, cargo fmt and clippy.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k cache -x`, or one tier:
# `bash scripts/test.sh -m "not slow"`; the tiers are in pyproject.toml). CI runs everything.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
START=$SECONDS
step() { printf '\033[1m== [%dm%02ds] %s\033[0m\n' $(((SECONDS - START) / 60)) $(((SECONDS - START) % 60)) "$*" >&2; }

step "set-up (scripts/setup.sh; from scratch: downloads, then the release build, ~10 min on 2 cores)"
bash scripts/setup.sh
export PATH="$ROOT/.tools/bin:$ROOT/.venv/bin:$PATH" VIRTUAL_ENV="$ROOT/.venv"
export TILEDB_PYTHON="$ROOT/.venv/bin/python"

# Local S3 server for both test suites.
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
.venv/bin/moto_server -H 127.0.0.1 -p "$port" >/tmp/radiobject-moto-$port.log 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true; wait $moto_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do
  (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
  kill -0 $moto_pid 2>/dev/null || { cat /tmp/radiobject-moto-$port.log; echo "moto_server died" >&2; exit 1; }
  sleep 0.2
done
export RADIOBJECT_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing-secret-value AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

step "ruff check, ruff format --check (Python package, tests, benches, scripts)"
PY_SRC=(radiobject-py/python tests benches scripts)
.venv/bin/ruff check "${PY_SRC[@]}"
.venv/bin/ruff format --check "${PY_SRC[@]}"
step "mypy (the radiobject package and the native module's stub; settings in pyproject.toml)"
.venv/bin/mypy
step "stubtest: radiobject/_radiobject.pyi against the compiled native module"
.venv/bin/python -m mypy.stubtest --mypy-config-file pyproject.toml radiobject._radiobject

step "cargo fmt --check, cargo clippy -D warnings (workspace, all targets; from scratch ~3-4 min)"
for tool in rustfmt clippy; do
  if ! cargo "${tool/rustfmt/fmt}" --version >/dev/null 2>&1; then
    timeout 120 rustup component add "$tool" >/dev/null 2>&1 || true
  fi
done
if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all -- --check
else
  echo "WARNING: rustfmt is not installed and could not be added: formatting NOT checked" >&2
fi
if cargo clippy --version >/dev/null 2>&1; then
  # the test profile: clippy's build scripts and proc macros are then the tests' own
  cargo clippy --profile test-fast --workspace --all-targets -- -D warnings
else
  echo "WARNING: clippy is not installed and could not be added: lints NOT checked" >&2
fi

# Profile `test-fast` (Cargo.toml): our code with overflow checks and debug assertions, optimized
# dependencies, no LTO. (`--release` could not reuse the extension's LTO-only artifacts, so it
# rebuilt every crate and thin-LTO-linked each test binary: many times slower to build, and the
# tests themselves take ~10 s either way.)
step "cargo test --profile test-fast (workspace; from scratch ~2-4 min on 2 cores)"
cargo test --profile test-fast --workspace
step "pytest ${*:-(every tier)}"
.venv/bin/python -m pytest -p no:cacheprovider --timeout=600 --durations=15 "$@"
step "all passed"
