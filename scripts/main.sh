#!/usr/bin/env bash
# The main job on the embedded default (local disk): installs what it needs (scripts/setup.sh),
# stores the sample volumes, reads them back, prints timings and cache statistics.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/main_job.py "$@"
