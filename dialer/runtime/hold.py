"""Hold from the agent's phone: the lead hears music, not silence.

A phone (the browser console's Hold button, a desk phone's) holds with a re-INVITE
(`a=sendonly`); Asterisk reports `ChannelHold` / `ChannelUnhold` on the agent's channel and
leaves what the other party hears to the application. Every kind of call answers the same way:
music on hold (the `default` class, asterisk-config/musiconhold.conf) into the call's bridge
until the agent resumes. The recording keeps running, so the hold is in it too.
"""

from __future__ import annotations

import structlog

from dialer.ari.client import AriClient
from dialer.ari.errors import AriError
from dialer.ari.models import ChannelHold, ChannelUnhold, Event

log = structlog.get_logger(__name__)


async def hold_music(ari: AriClient, event: Event, *, agent_channel: str, bridge_id: str) -> None:
    """Start or stop the bridge's music when `event` is the agent's channel holding or resuming."""
    try:
        match event:
            case ChannelHold(channel=channel) if channel.id == agent_channel:
                await ari.start_bridge_moh(bridge_id)
                log.info("call_held", bridge_id=bridge_id)
            case ChannelUnhold(channel=channel) if channel.id == agent_channel:
                await ari.stop_bridge_moh(bridge_id)
                log.info("call_resumed", bridge_id=bridge_id)
    except AriError as error:
        # The bridge may be gone (the call ended while on hold): nothing to play to.
        log.warning("hold_music_failed", bridge_id=bridge_id, error=str(error))
