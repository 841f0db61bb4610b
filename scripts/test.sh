#!/usr/bin/env bash
# Runs every test: the Rust crates' tests (cargo) and the Python suite (pytest), against the real
# libtiledb, a real S3-compatible server on 127.0.0.1 (moto, started here and stopped on exit), the
# PyPI `radiobject` and `tiledb` packages as interop peers, and real images shipped by PyPI packages.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k cache -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
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

echo "== cargo fmt --check, cargo clippy -D warnings (workspace, all targets)" >&2
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
  cargo clippy --workspace --all-targets --quiet -- -D warnings
else
  echo "WARNING: clippy is not installed and could not be added: lints NOT checked" >&2
fi

echo "== cargo test (workspace)" >&2
cargo test --release --workspace --quiet
echo "== pytest" >&2
.venv/bin/python -m pytest -q -p no:cacheprovider --timeout=600 "$@"
