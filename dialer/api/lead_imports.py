"""List imports over HTTP: the CRM uploads a CSV file of leads; the dialer de-duplicates it,
scrubs it like every dial, and writes the accepted leads to the CRM (`crm_bridge.lead_import`).

- `POST /v1/lead-imports?map=...[&campaign_id=...][&label=...]`, body: the CSV file (streamed to
  disk, never held in memory) -> 202 `{"import_id", "status": "queued", ...}` with `Location`.
  The mapping and the file's header are checked before the 202 (422 otherwise).
- `GET /v1/lead-imports/{import_id}` -> status (`queued`, `running`, `done`, `failed`), progress,
  counts, warnings, error.
- `GET /v1/lead-imports/{import_id}/report.csv` -> the per-row report once `done` (409 before).

A 202 means the import will happen: the upload is on disk (fsynced, with its job description)
before the answer, in the spool directory; one worker runs imports in order; an import that
meets PostgreSQL or Redis down is retried with backoff until they are back; a restarted API picks
up every spooled import that had not finished (the import itself is one transaction, keyed by
its id, so a repeat writes nothing twice). A file that cannot be imported (found in its body,
e.g. a line that is not UTF-8) ends `failed`, with the reason; so does an import that meets a
failure nobody foresaw (a bug, its result file cannot be written, its spooled upload is gone),
with `internal error (...)` as the reason: the worker goes on with the next imports.

Wiring: `add_lead_import_routes(app, spool_dir=settings.state_dir / "lead-imports")` after
`build_app`; it registers the routes and starts/stops the worker with the app.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

import asyncpg
import structlog
from aiohttp import web
from pydantic import ConfigDict, Field
from redis.exceptions import RedisError

from compliance_rules.ruleset import RuleBook, load_rulebook
from compliance_rules.scrub import BatchScrubber
from crm_bridge.backoff import Backoff
from crm_bridge.lead_import import (
    REPORT_COLUMNS,
    ImportInputError,
    ImportOutcome,
    ImportPlan,
    check_file,
    import_leads,
    new_import_id,
)
from crm_bridge.lead_mapping import LeadMapping, MappingError, parse_mapping
from crm_bridge.pg import DatabaseUnavailable
from crm_bridge.store import TokenRole
from dialer.api.http import DEPS, ApiError
from dialer.api.routes import Answer, Reply, RouteTable
from dialer.api.schema import Line, QueryModel, ResponseModel, UtcTime
from dialer.tasks import start_task, stop_tasks

log = structlog.get_logger(__name__)

IMPORTERS = (TokenRole.CRM, TokenRole.ADMIN)
MAX_UPLOAD_BYTES = 2 * 1024**3  # 2 GB: a million rows with every field is about 300 MB
HEAD_BYTES = 64 * 1024  # the header line must fit here
_IMPORT_ID = "import_id"
_TRANSIENT = (DatabaseUnavailable, OSError, TimeoutError, asyncpg.PostgresConnectionError,
              asyncpg.InterfaceError, asyncpg.CannotConnectNowError, RedisError)
# OSErrors that are about the spooled upload on disk, not a connection: retrying cannot help.
_UPLOAD_GONE = (FileNotFoundError, IsADirectoryError, NotADirectoryError)


@dataclass
class ImportJob:
    """One import as the API tracks it; `job.json` (request) and `result.json` (end) on disk."""

    import_id: str
    label: str
    mapping: dict[str, object]
    campaign_id: str | None
    created_at: str
    status: str = "queued"  # queued | running | done | failed
    progress: dict[str, object] = field(default_factory=dict)
    counts: dict[str, object] | None = None
    warnings: list[str] = field(default_factory=list)
    list_dates: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    retrying: str | None = None  # why the last attempt did not finish (PostgreSQL or Redis down)
    finished_at: str | None = None
    list_id: str | None = None  # the lead list the leads go on (they join its campaigns)

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {key: value for key, value in asdict(self).items() if value not in (None, {}, [])}
        body["status"] = self.status
        body["status_url"] = f"/v1/lead-imports/{self.import_id}"
        body["report_url"] = f"/v1/lead-imports/{self.import_id}/report.csv"
        return body


class LeadImportService:
    """The spool directory and the worker that runs its imports one at a time."""

    def __init__(self, spool_dir: Path, rulebook: RuleBook | None = None, backoff: Backoff | None = None) -> None:
        self.spool_dir = spool_dir
        self.rulebook = rulebook
        self.backoff = backoff or Backoff(initial=1.0, maximum=60.0)
        self.jobs: dict[str, ImportJob] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    # -- files ----------------------------------------------------------------------------------
    def directory(self, import_id: str) -> Path:
        return self.spool_dir / import_id

    def report_path(self, import_id: str) -> Path:
        return self.directory(import_id) / "report.csv"

    @staticmethod
    def _write_json(path: Path, data: dict[str, object]) -> None:
        """Atomically, durably: a temporary file, fsync, rename, fsync of the directory."""
        temporary = path.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        _fsync_directory(path.parent)

    def _load(self) -> None:
        """Every spooled import; those without a result are queued again (a restart mid-import)."""
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        for directory in sorted(self.spool_dir.iterdir(), key=lambda p: p.stat().st_mtime):
            request, result = directory / "job.json", directory / "result.json"
            if not request.exists():
                shutil.rmtree(directory, ignore_errors=True)  # an upload that never got its 202
                continue
            job = ImportJob(**json.loads(request.read_text(encoding="utf-8")))
            if result.exists():
                for key, value in json.loads(result.read_text(encoding="utf-8")).items():
                    setattr(job, key, value)
            else:
                self._queue.put_nowait(job.import_id)
            self.jobs[job.import_id] = job

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self, app: web.Application) -> None:
        await asyncio.to_thread(self._load)
        if self.rulebook is None:
            self.rulebook = load_rulebook()
        # Owned by this service: stopped and awaited by `stop` (the app's cleanup); a failure the
        # worker does not handle itself (its result file cannot be written) is logged at once.
        self._worker = start_task(self._run(app), "lead-import-worker")

    async def stop(self) -> None:
        """Stop the worker; an import in progress is rolled back and resumes at the next start."""
        if self._worker is not None:
            await stop_tasks([self._worker])
            self._worker = None

    # -- accepting an upload --------------------------------------------------------------------
    async def accept(self, request: web.Request, mapping: LeadMapping, label: str, campaign_id: str | None,
                     list_id: str | None = None) -> ImportJob:
        """Stream the body to the spool, checking the header first; the job is durable on return."""
        import_id = new_import_id()
        directory = self.directory(import_id)
        directory.mkdir(parents=True)
        source = directory / "source.csv"
        try:
            size = await self._receive(request, source, mapping, label)
            job = ImportJob(import_id, label, mapping.to_json(), campaign_id, datetime.now(UTC).isoformat(),
                            list_id=list_id)
            await asyncio.to_thread(self._write_json, directory / "job.json", _request_fields(job))
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        log.info("lead_import_accepted", import_id=import_id, bytes=size, label=label, campaign_id=campaign_id)
        self.jobs[import_id] = job
        self._queue.put_nowait(import_id)
        return job

    async def _receive(self, request: web.Request, source: Path, mapping: LeadMapping, label: str) -> int:
        if request.content_length is not None and request.content_length > MAX_UPLOAD_BYTES:
            raise ApiError(413, "request_too_large", f"the file is larger than {MAX_UPLOAD_BYTES} bytes")
        size = 0
        head = b""
        checked = False
        with source.open("wb") as handle:
            async for chunk in request.content.iter_chunked(1 << 20):
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    raise ApiError(413, "request_too_large", f"the file is larger than {MAX_UPLOAD_BYTES} bytes")
                if not checked:
                    head += chunk
                    if b"\n" in head or len(head) >= HEAD_BYTES:
                        self._check_head(head, source, mapping, label)
                        checked = True
                await asyncio.to_thread(handle.write, chunk)
            if not checked:
                self._check_head(head, source, mapping, label)
            await asyncio.to_thread(_flush_and_sync, handle)
        return size

    @staticmethod
    def _check_head(head: bytes, source: Path, mapping: LeadMapping, label: str) -> None:
        if not head.strip():
            raise ApiError(422, "invalid_file", "the request body is empty: send the CSV file as the body", field="body")
        try:
            check_file(ImportPlan("check", source, mapping, label), head)
        except ImportInputError as error:
            raise ApiError(422, "invalid_file", str(error), field="body") from None

    # -- the worker -----------------------------------------------------------------------------
    async def _run(self, app: web.Application) -> None:
        """Run the queued imports one after the other, for as long as the app runs. One import's
        failure never ends the worker: a failure `_run_one` does not handle itself (its result
        file cannot be written, a bug) fails that import, and the next ones go ahead; otherwise
        every later import would wait forever behind a dead worker."""
        while True:
            job = self.jobs.get(import_id := await self._queue.get())
            if job is None:  # queued and then forgotten: nothing to run, nothing to mark
                log.error("lead_import_unknown", import_id=import_id)
                continue
            try:
                await self._run_one(app, job)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.exception("lead_import_worker_error", import_id=job.import_id)
                await self._give_up(job, error)

    async def _run_one(self, app: web.Application, job: ImportJob) -> None:
        """One import to its end: done, failed (its file cannot be imported, or a bug), or
        retried with backoff while PostgreSQL or Redis is down."""
        failures = 0
        while True:
            try:
                outcome = await self._attempt(app, job)
            except ImportInputError as error:
                await self._finish(job, "failed", error=str(error))
                return
            except _TRANSIENT as error:
                if isinstance(error, _UPLOAD_GONE):  # the spooled file itself: no retry brings it back
                    raise
                failures += 1
                job.status = "queued"
                job.retrying = f"{type(error).__name__}: {error}"[:300]
                delay = self.backoff.delay(failures, random.random)
                log.warning("lead_import_retry", import_id=job.import_id, error=job.retrying, delay=round(delay, 1))
                await asyncio.sleep(delay)
                continue
            except asyncio.CancelledError:
                job.status = "queued"
                raise
            except Exception as error:  # a bug: reported, the upload kept for a manual retry
                log.exception("lead_import_failed", import_id=job.import_id)
                await self._finish(job, "failed", error=f"internal error ({type(error).__name__}); logged")
                return
            await self._finish(job, "done", outcome=outcome)
            return

    async def _give_up(self, job: ImportJob, error: Exception) -> None:
        """Mark `job` failed after an error `_run_one` did not handle: in memory first (what
        `GET /v1/lead-imports/{id}` shows at once), then in its result file when that can be
        written. When it cannot, the import runs again at the next start (it is one transaction
        keyed by its id, so nothing is written twice)."""
        job.status, job.retrying = "failed", None
        job.error = f"internal error ({type(error).__name__}: {error})"[:300] + "; logged, the next imports go on"
        job.finished_at = datetime.now(UTC).isoformat()
        try:
            await asyncio.to_thread(self._write_json, self.directory(job.import_id) / "result.json", _result(job))
        except Exception as write_error:
            log.error("lead_import_result_not_saved", import_id=job.import_id, error=repr(write_error))

    async def _attempt(self, app: web.Application, job: ImportJob) -> ImportOutcome:
        deps = app[DEPS]
        job.status = "running"
        job.progress = {}
        started = time.monotonic()

        def progress(phase: str, done: int, total: int) -> None:
            job.progress = {"phase": phase, "done": done, "total": total,
                            "seconds": round(time.monotonic() - started, 1)}

        directory = self.directory(job.import_id)
        plan = ImportPlan(job.import_id, directory / "source.csv", parse_mapping(_mapping_text(job.mapping)),
                          job.label, job.campaign_id, directory / "report.csv", list_id=job.list_id)
        assert self.rulebook is not None
        scrubber = BatchScrubber(deps.dnc, self.rulebook)
        async with deps.store.acquire() as conn:
            return await import_leads(plan, conn, scrubber, progress=progress)

    async def _finish(self, job: ImportJob, status: str, *, outcome: ImportOutcome | None = None,
                      error: str | None = None) -> None:
        job.status, job.error, job.retrying = status, error, None
        job.finished_at = datetime.now(UTC).isoformat()
        if outcome is not None:
            job.counts = outcome.counts.to_json()
            job.warnings = list(outcome.warnings)
            job.list_dates = dict(outcome.list_dates)
        directory = self.directory(job.import_id)
        await asyncio.to_thread(self._write_json, directory / "result.json", _result(job))
        if status == "done":
            (directory / "source.csv").unlink(missing_ok=True)  # the leads are in the CRM now
        log.info("lead_import_finished", import_id=job.import_id, status=status, error=error,
                 counts=job.counts)


def _result(job: ImportJob) -> dict[str, object]:
    """What `result.json` keeps of a finished import (read back over `job.json` at a restart)."""
    return {"status": job.status, "counts": job.counts, "warnings": job.warnings, "list_dates": job.list_dates,
            "error": job.error, "finished_at": job.finished_at}


def _request_fields(job: ImportJob) -> dict[str, object]:
    return {"import_id": job.import_id, "label": job.label, "mapping": job.mapping, "campaign_id": job.campaign_id,
            "created_at": job.created_at, "list_id": job.list_id}


def _mapping_text(mapping: dict[str, object]) -> str:
    pairs: list[str] = []
    for name, value in mapping.items():
        columns = value if isinstance(value, list) else [value]
        pairs += [f"{name}={column}" for column in columns]
    return ",".join(pairs)


def _flush_and_sync(handle: Any) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


SERVICE: web.AppKey[LeadImportService] = web.AppKey("lead_imports", LeadImportService)


def _job(request: web.Request) -> ImportJob:
    job = request.app[SERVICE].jobs.get(request.match_info[_IMPORT_ID])
    if job is None:
        raise ApiError(404, "import_not_found", "no such import")
    return job


class LeadImportQuery(QueryModel):
    """Where the list's columns go, and what to do with its leads."""

    unknown_parameter: ClassVar[tuple[int, str]] = (422, "unknown_field")
    map: str = Field(default="", description="field=Column pairs, e.g. name=Full Name,phone=Phone,phone=Mobile,email=E-mail,"
                                 "zip=ZIP,state=State,consent=Consent URL,consent_at=Consent Date,custom.policy=Policy")
    campaign_id: str | None = Field(default=None, description="add the accepted leads to this campaign")
    list_id: str | None = Field(default=None, description="put the accepted leads on this lead list (they join the "
                                                          "campaigns it is assigned to)")
    # A Line: the label becomes the leads' source (`import:LABEL`), shown as it is.
    label: Line | None = Field(default=None, description="a name for the import (the file's)")


class ImportCounts(ResponseModel):
    rows: int
    accepted: int
    invalid: int
    duplicate: int
    rejected: int
    reasons: dict[str, int] = Field(description="rows per reason: invalid_number, invalid_field, duplicate_in_file, "
                                                "duplicate_in_crm, dnc_federal, dnc_state, dnc_internal, litigator, "
                                                "opted_out, unknown_location")
    dnc_states: dict[str, int] = Field(default_factory=dict, description="rows on each state's list")


class ImportBody(ResponseModel):
    """One list import: its status, progress and counts."""

    model_config = ConfigDict(extra="allow")
    import_id: str
    label: str | None = None
    campaign_id: str | None = None
    list_id: str | None = None
    mapping: dict[str, Any] | None = None
    # Kept on disk as ISO text; answered as every time in a body is, `...Z` (docs/api.md).
    created_at: UtcTime | None = None
    status: Literal["queued", "running", "done", "failed"]
    progress: dict[str, Any] | None = Field(default=None, description="phase (read, duplicates, scrub, write), "
                                                                       "done, total, seconds")
    counts: ImportCounts | None = None
    warnings: list[str] | None = None
    list_dates: dict[str, str] | None = Field(default=None, description="the DNC list copies the scrub used")
    error: str | None = None
    retrying: str | None = None
    finished_at: UtcTime | None = None
    status_url: str
    report_url: str


routes = RouteTable("lead imports")
IMPORT_ID = {_IMPORT_ID: "the import's id"}


@routes.post("/v1/lead-imports", "importLeads",
             "Import a CSV file of leads (the request body, text/csv): checked, de-duplicated (in the file and "
             "against the CRM), scrubbed against the federal, state, internal, litigator and opt-out lists and the "
             "location rules; accepted leads are written to the CRM", roles=IMPORTERS, query=LeadImportQuery,
             responses={202: Answer(ImportBody, "queued; Location is the status URL",
                                    headers={"Location": "the import's status (`GET /v1/lead-imports/{import_id}`)"})},
             errors={413: "`request_too_large`", 422: "`invalid_mapping` (field `map`), `unknown_campaign`, "
                     "`unknown_list`, "
                     "`invalid_file` (the header or encoding; field `body`), `unknown_field`, `invalid_field`"},
             extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}})
async def post_lead_import(request: web.Request, query: LeadImportQuery) -> Reply:
    try:
        mapping = parse_mapping(query.map)
    except MappingError as error:
        raise ApiError(422, "invalid_mapping", str(error), field="map") from None
    campaign_id = query.campaign_id or None
    if campaign_id is not None and await request.app[DEPS].store.get_campaign(campaign_id) is None:
        raise ApiError(422, "unknown_campaign", f"there is no campaign {campaign_id!r}", field="campaign_id")
    list_id = query.list_id or None
    if list_id is not None:
        async with request.app[DEPS].store.acquire() as conn:
            if not await conn.fetchval("SELECT true FROM lead_lists WHERE list_id = $1", list_id):
                raise ApiError(422, "unknown_list", f"there is no lead list {list_id!r}", field="list_id")
    label = (query.label or "upload.csv").strip()
    if not label:
        raise ApiError(422, "invalid_field", "label must be 1-200 characters", field="label")
    job = await request.app[SERVICE].accept(request, mapping, label, campaign_id, list_id)
    return Reply(ImportBody.model_validate(job.to_json()), status=202, location=f"/v1/lead-imports/{job.import_id}",
                 exclude_unset=True)


@routes.get("/v1/lead-imports/{import_id}", "getLeadImport", "An import's status, progress and counts",
            roles=IMPORTERS, parameters=IMPORT_ID, responses={200: Answer(ImportBody, "the import")},
            errors={404: "`import_not_found`"})
async def get_lead_import(request: web.Request) -> Reply:
    return Reply(ImportBody.model_validate(_job(request).to_json()), exclude_unset=True)


@routes.get("/v1/lead-imports/{import_id}/report.csv", "getLeadImportReport", "The import's per-row report",
            roles=IMPORTERS, parameters=IMPORT_ID,
            responses={200: Answer(None, f"CSV with the columns {', '.join(REPORT_COLUMNS)}", content_type="text/csv")},
            errors={404: "`import_not_found`", 409: "`report_not_ready`: the import is queued, running or failed"})
async def get_lead_import_report(request: web.Request) -> web.StreamResponse:
    job = _job(request)
    path = request.app[SERVICE].report_path(job.import_id)
    if job.status != "done" or not path.exists():
        detail = f": {job.error}" if job.error else ""
        raise ApiError(409, "report_not_ready", f"the import is {job.status}{detail}")
    return web.FileResponse(path, headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{job.import_id}-report.csv"',
    })


def add_lead_import_routes(app: web.Application, *, spool_dir: Path, rulebook: RuleBook | None = None) -> None:
    """Run the lead-import worker with the app (the routes themselves are in `routes`)."""
    service = LeadImportService(spool_dir, rulebook)
    app[SERVICE] = service

    async def start(app: web.Application) -> None:
        await service.start(app)

    async def stop(app: web.Application) -> None:
        del app
        await service.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
