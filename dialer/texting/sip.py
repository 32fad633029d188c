"""Texts as SIP MESSAGE through Asterisk (PJSIP), sent and received over ARI.

Sending: `PUT /endpoints/sendMessage` with `to=pjsip:PJSIP/<number>@<trunk>` (the dial-string
form: the trunk's contact URI with the number as its user, sent through the trunk endpoint) and
`from=<sip:<our number>@<domain>>`; our message id travels in an `X-Message-Id` header (ARI's
`variables` become headers), because ARI answers 202 before the MESSAGE is even sent and never
reports its SIP response: the carrier's delivery receipt is the only news of what happened.

Receiving: a MESSAGE from the carrier is matched to the trunk endpoint (pjsip.conf: by source
address and port) and routed to the trunk's `message_context`, which has no extension, so
Asterisk hands it to the ARI app subscribed to `endpoint:PJSIP/<trunk>` as
`TextMessageReceived` (the subscription is made again after every (re)connect). A delivery
receipt is a MESSAGE carrying `X-SMS-Receipt-For` (our message id) and `X-SMS-Status`
(delivered, undelivered, failed) with an SMPP-style body (`id:... stat:DELIVRD`).
"""

from __future__ import annotations

import re
from datetime import datetime

from crm_bridge.records import DeliveryStatus
from dialer.ari.client import AriClient
from dialer.ari.errors import AriError, NotFound
from dialer.ari.models import TextMessageReceived
from dialer.texting.transport import DeliveryReceipt, InboundText, OutgoingText, TransportError

MESSAGE_ID_HEADER = "X-Message-Id"
RECEIPT_FOR_HEADER = "X-SMS-Receipt-For"
RECEIPT_STATUS_HEADER = "X-SMS-Status"
RECEIPT_ERROR_HEADER = "X-SMS-Error"
_USER = re.compile(r"^(?:[^<]*<)?(?:pj)?sips?:([^@;>]+)")
_STATUSES = {"delivered": DeliveryStatus.DELIVERED, "undelivered": DeliveryStatus.UNDELIVERED,
             "failed": DeliveryStatus.FAILED, "sent": DeliveryStatus.SENT}


def uri_user(uri: str) -> str:
    """The user part of a SIP URI as ARI gives it (`<sip:+12125550142@127.0.0.1>` -> `+12125550142`)."""
    match = _USER.match(uri.strip())
    return match.group(1) if match else uri.strip()


class SipTextTransport:
    name = "sip"

    def __init__(self, ari: AriClient, trunk_endpoint: str, domain: str = "127.0.0.1") -> None:
        self.ari = ari
        self.trunk_endpoint = trunk_endpoint
        self.domain = domain

    @property
    def event_source(self) -> str:
        return f"endpoint:PJSIP/{self.trunk_endpoint}"

    async def send(self, text: OutgoingText) -> str:
        try:
            await self.ari.send_message(
                f"pjsip:PJSIP/{text.to_number}@{self.trunk_endpoint}", f"<sip:{text.from_number}@{self.domain}>",
                text.body, variables={MESSAGE_ID_HEADER: text.message_id},
            )
        except NotFound as error:
            raise TransportError(f"Asterisk has no endpoint to send through: {error}", permanent=True) from None
        except AriError as error:
            raise TransportError(f"Asterisk did not take the text: {error}", permanent=False) from None
        return text.message_id

    async def close(self) -> None:
        return None

    def parse(self, event: TextMessageReceived) -> InboundText | DeliveryReceipt | None:
        """What a `TextMessageReceived` from the trunk is (None: from another endpoint)."""
        if event.endpoint is not None and event.endpoint.resource != self.trunk_endpoint:
            return None
        message = event.message
        variables = {str(k).lower(): str(v) for k, v in (message.variables or {}).items()}
        received_at: datetime = event.timestamp
        receipt_for = variables.get(RECEIPT_FOR_HEADER.lower())
        if receipt_for:
            status = _STATUSES.get(variables.get(RECEIPT_STATUS_HEADER.lower(), "").lower(), DeliveryStatus.FAILED)
            return DeliveryReceipt(receipt_for, status, received_at, variables.get(RECEIPT_ERROR_HEADER.lower()))
        return InboundText(uri_user(message.from_), uri_user(message.to), message.body, received_at,
                           variables.get("call-id"))
