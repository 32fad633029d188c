"""The HTTP API app: the routes of `dialer.api` and of every slice, in one place (the
composition root of the API; route modules import only `dialer.api.http`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from dialer.api.crm import add_call_routes, add_crm_routes, add_public_routes
from dialer.api.evidence import add_evidence_routes, evidence_paths
from dialer.api.http import CALL_CONTROLS, DEPS, WRAP_UPS, ApiDependencies, bearer_auth, errors_as_json
from dialer.api.lead_imports import add_lead_import_routes, lead_import_paths
from dialer.api.openapi import openapi_document as base_document
from dialer.api.recordings import add_recording_routes, recording_paths
from dialer.campaign.api import add_campaign_routes
from dialer.campaign.openapi import campaign_paths
from dialer.campaign.runtime import CampaignRuntime
from dialer.click_to_call.api import add_click_to_call_routes
from dialer.click_to_call.requests import CallService
from dialer.monitor.api import add_monitor_routes
from dialer.monitor.openapi import monitor_paths
from dialer.monitor.runtime import MonitorRuntime
from dialer.runtime.live import CallControl
from dialer.texting.api import add_texting_routes
from dialer.texting.openapi import texting_paths
from dialer.texting.runtime import TextingRuntime
from evidence.service import EvidenceService
from recordings.reader import RecordingReader


def openapi_document() -> dict[str, Any]:
    return base_document(campaign_paths(), monitor_paths(), recording_paths(), lead_import_paths(), texting_paths(),
                         evidence_paths())


async def openapi(request: web.Request) -> web.Response:
    del request
    return web.json_response(openapi_document())


def build_app(
    deps: ApiDependencies,
    *,
    calls: CallService | None = None,
    campaigns: CampaignRuntime | None = None,
    monitors: MonitorRuntime | None = None,
    recordings: RecordingReader | None = None,
    lead_import_spool: Path | None = None,
    texting: TextingRuntime | None = None,
    evidence: EvidenceService | None = None,
) -> web.Application:
    """Every route is served; a slice this API runs without answers 503 `controller_unavailable`."""
    app = web.Application(middlewares=[errors_as_json, bearer_auth], client_max_size=256 * 1024)
    app[DEPS] = deps
    app[WRAP_UPS] = campaigns
    controls: list[CallControl] = [control for control in (calls, campaigns) if control is not None]
    app[CALL_CONTROLS] = controls
    add_public_routes(app)
    app.router.add_get("/v1/openapi.json", openapi)
    add_crm_routes(app)
    add_click_to_call_routes(app, calls)
    add_monitor_routes(app, monitors)  # before /v1/calls/{call_id}: /v1/calls/live is not a call id
    add_call_routes(app)
    add_campaign_routes(app, campaigns)
    add_recording_routes(app, recordings)
    # Uploaded lists wait here until imported (a bare app, in tests, spools to a temporary folder).
    spool = lead_import_spool or Path(tempfile.gettempdir()) / f"dialer-lead-imports-{os.getpid()}"
    add_lead_import_routes(app, spool_dir=spool)
    add_texting_routes(app, texting)
    add_evidence_routes(app, evidence)
    return app
