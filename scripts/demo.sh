#!/usr/bin/env bash
# Set up from nothing and run the main job on the embedded default (SQLite, folder stores, no server).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/dj-flows demo "$@"
