#!/usr/bin/env bash
# The main job: installs and starts what it needs, then runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/dialer demo "$@"
