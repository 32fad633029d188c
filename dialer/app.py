"""The HTTP API app: the routes of `dialer.api` and of every slice, in one place (the
composition root of the API; route modules import only `dialer.api`'s helpers).

A new slice adds its `RouteTable` to `ROUTE_TABLES`; the OpenAPI document is generated from the
same tables, so it lists exactly the routes served.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from dialer.api import admin, crm, decisions, events, health, lead_imports, leads, webhooks
from dialer.api import evidence as evidence_routes
from dialer.api import openapi as meta
from dialer.api import recordings as recording_routes
from dialer.api import reports as report_routes
from dialer.api import wallboard as wallboard_routes
from dialer.api.auth import TokenVerifier
from dialer.api.http import (
    CALL_CONTROLS,
    DEPS,
    TOKENS,
    WRAP_UPS,
    ApiDependencies,
    EveryWrapUp,
    WrapUps,
    bearer_auth,
    errors_as_problems,
)
from dialer.api.idempotency import IDEMPOTENCY_LOCKS, KeyedLocks
from dialer.api.routes import RouteTable, add_routes
from dialer.campaign import api as campaign_api
from dialer.campaign import control_api as campaign_control_api
from dialer.campaign.caller_id import CallerIdCheck
from dialer.campaign.runtime import CampaignRuntime
from dialer.click_to_call import api as click_to_call_api
from dialer.click_to_call.requests import CallService
from dialer.monitor import api as monitor_api
from dialer.monitor.runtime import MonitorRuntime
from dialer.runtime.agents import EndpointReader
from dialer.runtime.live import CallControl
from dialer.texting import api as texting_api
from dialer.texting.runtime import TextingRuntime
from dialer.web import pages
from dialer.web import sessions as session_routes
from dialer.web import supervisor as supervisor_console
from dialer.web.users import UserStore
from evidence.service import EvidenceService
from recordings.reader import RecordingReader

ROUTE_TABLES: tuple[RouteTable, ...] = (
    health.routes, meta.routes, crm.routes, crm.opt_out_routes, leads.routes, decisions.routes, events.routes,
    recording_routes.routes, click_to_call_api.routes, campaign_api.agent_routes, campaign_api.campaign_routes,
    campaign_api.lead_routes, monitor_api.routes, texting_api.routes, lead_imports.routes, evidence_routes.routes,
    session_routes.routes, report_routes.routes, campaign_control_api.routes, wallboard_routes.routes,
    supervisor_console.routes,
    *admin.ROUTE_TABLES, webhooks.routes,
)
MAX_BODY_BYTES = 256 * 1024
MAX_LINE_BYTES = 64 * 1024


def openapi_document() -> dict[str, Any]:
    return meta.openapi_document(ROUTE_TABLES)


def build_app(
    deps: ApiDependencies,
    *,
    calls: CallService | None = None,
    campaigns: CampaignRuntime | None = None,
    monitors: MonitorRuntime | None = None,
    recordings: RecordingReader | None = None,
    texting: TextingRuntime | None = None,
    lead_import_spool: Path | None = None,
    evidence: EvidenceService | None = None,
    sip_credentials_file: Path | None = None,
    caller_id_check: Callable[[str], CallerIdCheck] | None = None,
    wake_webhooks: Callable[[], None] | None = None,
    sip_endpoints: EndpointReader | None = None,
) -> web.Application:
    """Every route is served; a slice this API runs without answers 503 `controller_unavailable`."""
    # A long request line gets the API's own 400 (a problem naming the parameter) rather than the
    # HTTP parser's plain-text one.
    app = web.Application(middlewares=[errors_as_problems, bearer_auth], client_max_size=MAX_BODY_BYTES,
                          handler_args={"max_line_size": MAX_LINE_BYTES})
    app[DEPS] = deps
    app[TOKENS] = TokenVerifier(deps.store)
    # A disposition ends the agent's wrap-up wherever it is in one: a campaign session, or the
    # state history of an agent who only clicks to call.
    wrap_ups: list[WrapUps] = [slice_ for slice_ in (campaigns, calls) if isinstance(slice_, WrapUps)]
    app[WRAP_UPS] = EveryWrapUp(wrap_ups) if wrap_ups else None
    app[IDEMPOTENCY_LOCKS] = KeyedLocks()
    if caller_id_check is not None:
        app[admin.CALLER_ID_CHECK] = caller_id_check
    if sip_endpoints is not None:
        app[admin.SIP_ENDPOINTS] = sip_endpoints
    if wake_webhooks is not None:
        app[webhooks.WEBHOOK_WAKE] = wake_webhooks
    controls: list[CallControl] = [control for control in (calls, campaigns) if control is not None]
    app[CALL_CONTROLS] = controls
    click_to_call_api.add_click_to_call_routes(app, calls)
    campaign_api.add_campaign_routes(app, campaigns)
    monitor_api.add_monitor_routes(app, monitors)
    recording_routes.add_recording_routes(app, recordings)
    texting_api.add_texting_routes(app, texting)
    # Uploaded lists wait here until imported (a bare app, in tests, spools to a temporary folder).
    # Their scrub reads the compliance gate's own copy of the rule data (one copy per process).
    lead_imports.add_lead_import_routes(
        app, spool_dir=lead_import_spool or Path(tempfile.gettempdir()) / f"dialer-lead-imports-{os.getpid()}",
        rulebook=deps.rulebook)
    # People sign in with a session cookie (the consoles); the agent's page gets its phone's
    # credentials from `sip_credentials_file` (Settings.sip_credentials_file).
    session_routes.add_session_routes(app, UserStore(deps.store), sip_credentials_file)
    add_routes(app, ROUTE_TABLES)
    pages.add_pages(app)
    supervisor_console.add_supervisor_page(app)
    wallboard_routes.add_wallboard(app)
    meta.install_documents(app, ROUTE_TABLES)
    evidence_routes.add_evidence_routes(app, evidence)
    return app
