#!/usr/bin/env bash
# Installs everything the main job and the tests need, idempotently:
#   .tools/  uv (pinned), used to build the other environments
#   .venv/   Python 3.11 with the locked dependencies (requirements/dev.lock) and radiobject itself,
#            built from this checkout by maturin (release profile)
#   .peers/  the PyPI radiobject==0.1.1 reference package (same import name as ours, so it lives in
#            its own --target directory and runs in subprocesses with PYTHONPATH pointing there)
# Needs: python3 (>= 3.11) with venv, a Rust toolchain (cargo), network access to PyPI and crates.io.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# One set-up at a time: concurrent maturin/cargo builds of the same tree race on their outputs.
exec 9>"$ROOT/.setup.lock"
flock 9

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
  || { echo "Python >= 3.11 is required (set PYTHON=...)" >&2; exit 1; }
command -v cargo >/dev/null || { echo "cargo (Rust) is required: https://rustup.rs" >&2; exit 1; }

if [ ! -x .tools/bin/uv ]; then
  log "installing uv into .tools/"
  "$PYTHON" -m venv .tools
  .tools/bin/pip install -q --disable-pip-version-check uv==0.13.9
fi
UV="$ROOT/.tools/bin/uv"
export PATH="$ROOT/.tools/bin:$PATH"   # maturin --uv finds uv here

if [ ! -x .venv/bin/python ]; then
  log "creating .venv/"
  "$UV" venv -q --python "$PYTHON" .venv
fi
export VIRTUAL_ENV="$ROOT/.venv"
stamp=.venv/.dev.lock.installed
if ! cmp -s requirements/dev.lock "$stamp" 2>/dev/null; then
  log "installing locked dependencies (requirements/dev.lock; the first time this downloads ~3 GB, torch with its CUDA libraries, about 1-2 minutes)"
  "$UV" pip install --python .venv/bin/python -r requirements/dev.lock
  cp requirements/dev.lock "$stamp"
fi

PEER=.peers/radiobject-0.1.1
if [ ! -f "$PEER/radiobject/__init__.py" ]; then
  log "installing the reference peer radiobject==0.1.1 into $PEER"
  "$UV" pip install -q --python .venv/bin/python --target "$PEER" --no-deps radiobject==0.1.1
fi

# Build and install radiobject from this checkout when its sources changed (cargo itself is
# incremental; the stamp only avoids re-running maturin for nothing).
src_hash=$(cat Cargo.lock Cargo.toml pyproject.toml $(git ls-files -co --exclude-standard radiobject-core radiobject-py radiobject-cli | sort) 2>/dev/null | sha1sum | cut -c1-40)
if [ "$(cat .venv/.radiobject.built 2>/dev/null)" != "$src_hash" ] || ! .venv/bin/python -c 'import radiobject._radiobject' 2>/dev/null; then
  log "building the extension radiobject._radiobject (cargo release build via maturin; from scratch ~5-8 min on 2 cores, ~230 crates)"
  TILEDB_PYTHON="$ROOT/.venv/bin/python" .venv/bin/maturin develop --release --uv
  # The `radiobject` command as a native binary (pip installs get `python -m radiobject` and a
  # Python entry point doing the same). Selecting radiobject-py too gives the shared crates the
  # features they have in the extension's build, so radiobject-core is reused, not rebuilt.
  log "building the radiobject command (cargo release build, linking only: ~1 min)"
  TILEDB_PYTHON="$ROOT/.venv/bin/python" cargo build --release -p radiobject-py -p radiobject-cli --bin radiobject
  install -m 755 target/release/radiobject .venv/bin/radiobject
  echo "$src_hash" > .venv/.radiobject.built
fi
log "ready: $(.venv/bin/python -c 'import radiobject; print("radiobject", radiobject.__version__, "libtiledb", ".".join(map(str, radiobject.tiledb_version())))')"
