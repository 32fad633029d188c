"""`POST /v1/lead-imports` and its status and report, on the real HTTP app with PostgreSQL (through
the outbox for the fixtures) and Redis; the routes added to the app as the lead wires them."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from compliance_rules.store import DncStore
from crm_bridge.backoff import Backoff
from crm_bridge.outbox import Outbox
from crm_bridge.pg import DatabaseUnavailable
from crm_bridge.store import CrmStore, TokenRole
from dialer.api import lead_imports
from dialer.api.http import ApiDependencies
from dialer.api.lead_imports import SERVICE
from dialer.app import build_app
from tests.leads.plan import MAPPING, make_lead_file
from tests.leads.test_import import load_lists, seed_crm

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@dataclass
class Api:
    client: TestClient[Any, Any]
    dsn: str
    spool: Path
    crm: str
    agent: str

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.crm}"}

    async def wait_done(self, import_id: str) -> dict[str, Any]:
        async with asyncio.timeout(60):
            while True:
                response = await self.client.get(f"/v1/lead-imports/{import_id}", headers=self.auth())
                body: dict[str, Any] = await response.json()
                if body["status"] in ("done", "failed"):
                    return body
                await asyncio.sleep(0.1)


async def start_api(dsn: str, dnc: DncStore, state: Path, spool: Path) -> AsyncIterator[Api]:
    store = await CrmStore.open(dsn)
    async with Outbox(state, dsn, poll_interval=0.1) as outbox:
        await outbox.put("agent_upsert", {"agent_id": "ann", "name": "Ann"})
        assert await outbox.flush(10)
        crm = (await store.issue_token(TokenRole.CRM)).secret
        agent = (await store.issue_token(TokenRole.AGENT, agent_id="ann")).secret
        app = build_app(ApiDependencies(store=store, records=outbox, dnc=dnc), lead_import_spool=spool)
        app[SERVICE].backoff = Backoff(initial=0.05, maximum=0.1)
        async with TestClient(TestServer(app)) as client:
            yield Api(client, dsn, spool, crm, agent)
    await store.close()


@pytest.fixture
async def api(crm_dsn: str, dnc: DncStore, tmp_path: Path) -> AsyncIterator[Api]:
    async for running in start_api(crm_dsn, dnc, tmp_path / "state", tmp_path / "spool"):
        yield running


def query(**params: str) -> str:
    return "/v1/lead-imports?" + urlencode(params)


async def test_upload_is_imported_and_reported(api: Api, dnc: DncStore) -> None:
    plan = make_lead_file(2_000, seed=3)
    conn = await asyncpg.connect(api.dsn)
    await seed_crm(conn, plan)
    await load_lists(dnc, plan)
    path = api.spool.parent / "upload.csv"
    plan.write(path)

    async def chunks() -> AsyncIterator[bytes]:  # a streamed upload, in pieces
        data = path.read_bytes()
        for start in range(0, len(data), 50_000):
            yield data[start : start + 50_000]

    response = await api.client.post(query(map=MAPPING, campaign_id="medsupp", label="october.csv"), data=chunks(),
                                      headers={**api.auth(), "Content-Type": "text/csv"})
    assert response.status == 202, await response.text()
    body = await response.json()
    import_id = body["import_id"]
    assert response.headers["Location"] == f"/v1/lead-imports/{import_id}" == body["status_url"]
    assert body["status"] in ("queued", "running")

    done = await api.wait_done(import_id)
    expected = plan.recount()
    statuses = Counter(status for status, _, _ in expected)
    assert done["status"] == "done" and done["label"] == "october.csv" and done["campaign_id"] == "medsupp"
    assert {key: done["counts"][key] for key in statuses} == dict(statuses)
    assert done["list_dates"]["federal"] and "warnings" not in done
    # Times as in every other body: ISO-8601 UTC with Z.
    assert body["created_at"].endswith("Z") and done["created_at"] == body["created_at"]
    assert done["finished_at"].endswith("Z") and done["finished_at"] >= done["created_at"]

    report = await api.client.get(f"/v1/lead-imports/{import_id}/report.csv", headers=api.auth())
    assert report.status == 200 and report.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(await report.text())))
    assert [(r["status"], frozenset(filter(None, r["reasons"].split(";")))) for r in rows] == [
        (status, reasons) for status, reasons, _ in expected]
    assert await conn.fetchval("SELECT count(*) FROM leads WHERE import_id = $1", import_id) == statuses["accepted"]
    assert await conn.fetchval("SELECT count(*) FROM campaign_leads WHERE campaign_id = 'medsupp'") == statuses["accepted"]
    # The upload is gone once its leads are in the CRM; the report stays.
    assert not (api.spool / import_id / "source.csv").exists() and (api.spool / import_id / "report.csv").exists()
    await conn.close()


async def test_an_upload_into_a_lead_list_joins_its_campaigns(api: Api) -> None:
    conn = await asyncpg.connect(api.dsn)
    await conn.execute("INSERT INTO campaigns (campaign_id, name) VALUES ('annuity', 'Annuities')")
    await conn.execute("INSERT INTO lead_lists (list_id, name) VALUES ('fall', 'Fall mailers')")
    await conn.execute("INSERT INTO campaign_lists (campaign_id, list_id) VALUES ('annuity', 'fall')")
    response = await api.client.post(query(map="name=Name,phone=Phone", list_id="fall"),
                                     data=b"Name,Phone\nDana Lee,2127365501\nLee Park,3122440177\n",
                                     headers={**api.auth(), "Content-Type": "text/csv"})
    assert response.status == 202, await response.text()
    done = await api.wait_done((await response.json())["import_id"])
    assert done["status"] == "done" and done["list_id"] == "fall", done
    accepted = done["counts"]["accepted"]
    assert accepted >= 1
    assert await conn.fetchval("SELECT count(*) FROM leads WHERE import_id = $1 AND list_id = 'fall'",
                               done["import_id"]) == accepted
    assert await conn.fetchval("SELECT count(*) FROM campaign_leads WHERE campaign_id = 'annuity' AND "
                               "list_id = 'fall'") == accepted
    await conn.close()


@pytest.mark.parametrize(
    ("url", "body", "token", "status", "error", "field"),
    [
        (query(map="phone=Phone"), b"Phone\n2125550142\n", "none", 401, "unauthorized", None),
        (query(map="phone=Phone"), b"Phone\n2125550142\n", "agent", 403, "forbidden", None),
        (query(map="fone=Phone"), b"Phone\n2125550142\n", "crm", 422, "invalid_mapping", "map"),
        (query(), b"Phone\n2125550142\n", "crm", 422, "invalid_mapping", "map"),
        (query(map="phone=Telephone"), b"Phone\n2125550142\n", "crm", 422, "invalid_file", "body"),
        (query(map="phone=Phone"), b"", "crm", 422, "invalid_file", "body"),
        (query(map="phone=Phone"), b"\xff\xfeP\n", "crm", 422, "invalid_file", "body"),
        (query(map="phone=Phone", campaign_id="nope"), b"Phone\n2125550142\n", "crm", 422, "unknown_campaign",
         "campaign_id"),
        (query(map="phone=Phone", colour="blue"), b"Phone\n2125550142\n", "crm", 422, "unknown_field", "colour"),
        (query(map="phone=Phone", list_id="nope"), b"Phone\n2125550142\n", "crm", 422, "unknown_list", "list_id"),
        # The label becomes the leads' source: no direction override may make it read as another.
        (query(map="phone=Phone", label="oct\u202evsc.csv"), b"Phone\n2125550142\n", "crm", 422,
         "invisible_characters", "label"),
    ],
)
async def test_bad_requests_get_a_reason_and_leave_nothing_behind(
    api: Api, url: str, body: bytes, token: str, status: int, error: str, field: str | None
) -> None:
    headers = {} if token == "none" else api.auth(api.agent if token == "agent" else api.crm)
    response = await api.client.post(url, data=body, headers=headers)
    assert response.status == status
    answer = await response.json()
    assert answer["error"] == error and answer.get("field") == field and answer["message"]
    assert not any(api.spool.iterdir()) if api.spool.exists() else True


async def test_a_file_that_cannot_be_imported_ends_failed_with_its_reason(api: Api) -> None:
    body = b"Phone,Name\n2125550142,Dana\n" + b"2125550143,\xff\xfe\n"
    response = await api.client.post(query(map="phone=Phone,name=Name"), data=body, headers=api.auth())
    assert response.status == 202
    import_id = (await response.json())["import_id"]
    done = await api.wait_done(import_id)
    assert done["status"] == "failed" and "line 3 is not UTF-8" in done["error"]
    report = await api.client.get(f"/v1/lead-imports/{import_id}/report.csv", headers=api.auth())
    assert report.status == 409 and (await report.json())["error"] == "report_not_ready"
    missing = await api.client.get("/v1/lead-imports/imp_nope", headers=api.auth())
    assert missing.status == 404 and (await missing.json())["error"] == "import_not_found"


async def test_an_import_waits_out_a_database_outage(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    real = lead_imports.import_leads
    failures = iter([DatabaseUnavailable("PostgreSQL does not answer"), OSError("connection reset")])

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        error = next(failures, None)
        if error is not None:
            raise error
        return await real(*args, **kwargs)

    monkeypatch.setattr(lead_imports, "import_leads", flaky)
    response = await api.client.post(query(map="phone=Phone"), data=b"Phone\n2125550142\n2125550143\n",
                                     headers=api.auth())
    import_id = (await response.json())["import_id"]
    done = await api.wait_done(import_id)
    assert done["status"] == "done" and done["counts"]["rows"] == 2


async def test_an_import_failing_unforeseen_fails_alone_and_the_next_imports_run(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first import's result file cannot be written (a directory stands where it goes): that
    # error escaped the worker, which died, and every later import stayed `queued` for ever.
    real = lead_imports.import_leads
    broken: list[str] = []

    async def result_unwritable(plan: Any, *args: Any, **kwargs: Any) -> Any:
        if not broken:
            broken.append(plan.import_id)
            (plan.source.parent / "result.json").mkdir()
        return await real(plan, *args, **kwargs)

    monkeypatch.setattr(lead_imports, "import_leads", result_unwritable)
    ids = []
    for phone in ("2125550142", "2125550143"):
        response = await api.client.post(query(map="phone=Phone"), data=f"Phone\n{phone}\n".encode(),
                                         headers=api.auth())
        assert response.status == 202, await response.text()
        ids.append((await response.json())["import_id"])
    failed, done = await api.wait_done(ids[0]), await api.wait_done(ids[1])
    assert broken == [ids[0]]
    assert failed["status"] == "failed" and failed["error"].startswith("internal error (IsADirectoryError"), failed
    assert done["status"] == "done" and done["counts"]["rows"] == 1, done
    # And the worker is still there for the one after.
    response = await api.client.post(query(map="phone=Phone"), data=b"Phone\n2125550144\n", headers=api.auth())
    assert (await api.wait_done((await response.json())["import_id"]))["status"] == "done"


async def test_a_restarted_api_finishes_the_imports_it_had_accepted(crm_dsn: str, dnc: DncStore, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    import_id = f"imp_{uuid.uuid4().hex[:12]}"
    job = spool / import_id
    job.mkdir(parents=True)
    (job / "source.csv").write_text("Phone,Name\n2125550142,Dana\n7185550199,Lee\n")
    (job / "job.json").write_text(json.dumps({"import_id": import_id, "label": "before-restart.csv",
                                              "mapping": {"phone": ["Phone"], "name": "Name"}, "campaign_id": None,
                                              "created_at": "2026-11-29T08:00:00+00:00"}))
    (spool / "imp_abandoned").mkdir()  # an upload that never got its 202: cleared
    async for api in start_api(crm_dsn, dnc, tmp_path / "state", spool):
        done = await api.wait_done(import_id)
        assert done["status"] == "done" and done["counts"]["accepted"] == 2
        assert not (spool / "imp_abandoned").exists()
        conn = await asyncpg.connect(crm_dsn)
        assert sorted(await conn.fetchval("SELECT array_agg(first_name) FROM leads WHERE import_id = $1", import_id)) \
            == ["Dana", "Lee"]
        await conn.close()


def test_the_openapi_paths_describe_exactly_the_routes() -> None:
    from dialer.api.lead_imports import routes
    from dialer.app import openapi_document

    served = {(route.spec.method.lower(), route.spec.path) for route in routes.routes}
    documented = {(method, path) for path, item in openapi_document()["paths"].items()
                  if path.startswith("/v1/lead-imports") for method in item if method in {"get", "post"}}
    assert served == documented and len(served) == 3


