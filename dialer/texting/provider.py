"""Texts through an HTTP messaging provider in the widely copied "Messages" REST shape
(Twilio's, which several providers also offer):

- send: `POST {base}/2010-04-01/Accounts/{account}/Messages.json`, HTTP basic auth (account,
  token), form-encoded `To`, `From`, `Body`, `StatusCallback`; 201 with `{"sid": ..., "status":
  "queued"}`; an error is JSON `{"code", "message", "status"}` (4xx: the request is wrong and
  sending again cannot help; 5xx: try again);
- the provider POSTs form-encoded webhooks to us, each signed: header `X-Twilio-Signature` =
  base64(HMAC-SHA1(token, the full URL it called + every form field name and value, sorted by
  name, concatenated)). Status callbacks carry `MessageSid`, `MessageStatus` (queued, sent,
  delivered, undelivered, failed) and `ErrorCode`; inbound texts carry `MessageSid`, `From`,
  `To`, `Body`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp

from crm_bridge.records import DeliveryStatus
from dialer.ari.auth import basic_auth
from dialer.texting.transport import DeliveryReceipt, InboundText, OutgoingText, TransportError

SIGNATURE_HEADER = "X-Twilio-Signature"
INBOUND_PATH = "/v1/texting/provider/inbound"
STATUS_PATH = "/v1/texting/provider/status"
_STATUSES = {status.value: status for status in DeliveryStatus}


@dataclass(frozen=True)
class ProviderConfig:
    base_url: str
    account: str
    token: str = field(repr=False)
    webhook_base_url: str  # this API as the provider reaches it (no trailing slash)
    timeout: float = 10.0

    @property
    def messages_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/2010-04-01/Accounts/{self.account}/Messages.json"

    @property
    def status_callback(self) -> str:
        return f"{self.webhook_base_url.rstrip('/')}{STATUS_PATH}"


def signature(url: str, params: Mapping[str, str], token: str) -> str:
    """The provider's webhook signature of a form POST to `url`."""
    payload = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    digest = hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signature_valid(url: str, params: Mapping[str, str], token: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(signature(url, params, token), given)


class ProviderTextTransport:
    name = "http"

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": basic_auth(self.config.account, self.config.token)},
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            )
        return self._session

    async def send(self, text: OutgoingText) -> str:
        form = {"To": text.to_number, "From": text.from_number, "Body": text.body,
                "StatusCallback": self.config.status_callback}
        try:
            async with self._client().post(self.config.messages_url, data=form) as response:
                body = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise TransportError(f"the messaging provider did not answer: {error!r}", permanent=False) from None
        if status >= 400 or not isinstance(body, dict) or not isinstance(body.get("sid"), str):
            detail = body.get("message") if isinstance(body, dict) else None
            code = body.get("code") if isinstance(body, dict) else None
            raise TransportError(f"the messaging provider refused the text ({status}, code {code}): {detail}",
                                 permanent=400 <= status < 500)
        return str(body["sid"])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- webhooks ------------------------------------------------------------------------------
    def webhook_url(self, path: str) -> str:
        return f"{self.config.webhook_base_url.rstrip('/')}{path}"

    def verify(self, path: str, params: Mapping[str, str], given: str | None) -> bool:
        return signature_valid(self.webhook_url(path), params, self.config.token, given)

    @staticmethod
    def parse_status(params: Mapping[str, str], received_at: datetime) -> DeliveryReceipt | None:
        sid, status = params.get("MessageSid"), _STATUSES.get(params.get("MessageStatus", ""))
        if not sid or status is None:
            return None
        return DeliveryReceipt(sid, status, received_at, params.get("ErrorCode") or None)

    @staticmethod
    def parse_inbound(params: Mapping[str, str], received_at: datetime) -> InboundText | None:
        sender, to = params.get("From"), params.get("To")
        if not sender or not to:
            return None
        return InboundText(sender, to, params.get("Body", ""), received_at, params.get("MessageSid"))
