"""Where the dialplan's sounds are, as Asterisk sees them (the `SOUNDS` global of
extensions.conf): the same for every call, so it is read once and kept."""

from __future__ import annotations

from dialer.ari.client import AriClient


class DialplanSounds:
    def __init__(self, ari: AriClient) -> None:
        self._ari = ari
        self._directory: str | None = None

    async def media(self, name: str) -> str:
        """The ARI media URI of one of the dialplan's sounds, e.g. `sound:/.../safe-harbor`."""
        if self._directory is None:
            self._directory = await self._ari.get_global_variable("SOUNDS")
        return f"sound:{self._directory}/{name}"
