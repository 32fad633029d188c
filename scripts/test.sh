#!/usr/bin/env bash
# The whole test suite: installs and starts what it needs, then lint, type checks and pytest.
# Tests run against real Asterisk 22 (their own instance on free ports), PostgreSQL (their own
# database, dropped afterwards) and Redis (their own database number and key prefix).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
# Servers up and Asterisk built; the user's own database is left alone (tests make their own).
dialer stack up --no-asterisk --no-migrate
echo "== ruff" && ruff check .
echo "== mypy --strict" && mypy
echo "== pytest" && pytest -q -p no:cacheprovider "$@"
