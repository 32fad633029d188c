#!/usr/bin/env bash
# Installs what the project needs on a Debian/Ubuntu machine, idempotently and quickly the
# second time: the OS packages (debootstrap for the Asterisk root, baresip for the test
# softphone, Kamailio for the cluster's SIP edge, Chromium and fonts for the browser tests,
# ffmpeg for the recordings archive's Opus transcoding, the PostgreSQL client for backups), a virtualenv in .venv with the project and its
# dev tools (Playwright drives that Chromium; it downloads no browser of its own).
# PostgreSQL, Redis and Asterisk themselves are provisioned by `dialer stack up`.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "bootstrap: installing OS packages needs root: run as root or install sudo" >&2; exit 1; fi; }

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "bootstrap: Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)" >&2; exit 1
fi

missing=()
command -v asterisk >/dev/null || command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v baresip >/dev/null || missing+=(baresip)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# text in the consoles' screenshots
dpkg -s fonts-liberation >/dev/null 2>&1 || missing+=(fonts-liberation)
dpkg -s fonts-dejavu-core >/dev/null 2>&1 || missing+=(fonts-dejavu-core)
# Recordings are archived as Opus in Ogg (recordings/transcode.py): Debian's ffmpeg has libopus.
{ command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; } || missing+=(ffmpeg)
# The evidence packet's PDF (WeasyPrint) lays text out with Pango and HarfBuzz.
for package in libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
# dialer backup / restore run pg_dump and pg_restore.
{ command -v pg_dump >/dev/null && command -v pg_restore >/dev/null; } || missing+=(postgresql-client)
# The cluster's SIP edge (dialer/provision/kamailio.py, docs/cluster.md): the distribution's Kamailio.
{ command -v kamailio >/dev/null && command -v kamcmd >/dev/null; } || missing+=(kamailio)
# Its SIP-over-WebSocket listener for browser phones (the websocket module).
dpkg -s kamailio-websocket-modules >/dev/null 2>&1 || missing+=(kamailio-websocket-modules)
# The README's click-to-call example (run by tests/controller/test_readme.py) uses curl and jq.
command -v curl >/dev/null || missing+=(curl)
command -v jq >/dev/null || missing+=(jq)
"$python" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "bootstrap: please install ${missing[*]} with your package manager" >&2; exit 1
  fi
  echo "bootstrap: installing ${missing[*]}" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 update -q >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q "${missing[@]}" >/dev/null
  # The package's own service would take port 5060 with the stock configuration: the project
  # runs its Kamailio edges itself (dialer stack up --nodes N).
  if [[ " ${missing[*]} " == *" kamailio "* ]] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    as_root systemctl disable --now kamailio >/dev/null 2>&1 || true
  fi
fi

stamp=.venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  echo "bootstrap: installing the project and its tools into .venv" >&2
  if ! { .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -e '.[dev]'; } \
      >.venv/install.log 2>&1; then
    tail -20 .venv/install.log >&2; echo "bootstrap: pip install failed (full log: .venv/install.log)" >&2; exit 1
  fi
  rm -f .venv/.installed-* && touch "$stamp"
fi
