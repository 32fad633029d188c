"""HTTP basic auth for ARI, written by hand: aiohttp.BasicAuth is deprecated in 3.14 (and its
replacement is new there), and the provisioning code uses urllib."""

from __future__ import annotations

import base64


def basic_auth(user: str, password: str) -> str:
    """The `Authorization` header value."""
    if ":" in user:
        raise ValueError("an ARI user name cannot contain ':' (HTTP basic auth)")
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def basic_auth_header(user: str, password: str) -> dict[str, str]:
    return {"Authorization": basic_auth(user, password)}
