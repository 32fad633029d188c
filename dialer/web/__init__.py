"""The browser side of the consoles: static pages and scripts served by `dialer serve`.

`STATIC_DIR` holds `softphone.js` (the browser phone every console uses), `phone-check.html`
(a page to try a phone endpoint by hand; the browser tests drive it) and `vendor/` (SIP.js,
pinned, with its manifest and licence). Serve it as `/static/`; nothing needs building.
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
