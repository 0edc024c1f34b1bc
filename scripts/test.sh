#!/usr/bin/env bash
# Set up from nothing and run the whole test suite (lint first). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test,dask
bash scripts/system-tools.sh
lint=()
for path in dj_flows tests benchmarks flows scripts; do [ -e "$path" ] && lint+=("$path"); done
.venv/bin/ruff check "${lint[@]}"
exec .venv/bin/python -m pytest "$@"
