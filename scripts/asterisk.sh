#!/usr/bin/env bash
# Start, stop or check the development Asterisk: scripts/asterisk.sh start|stop|status|build|cli ...
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/dialer asterisk "$@"
