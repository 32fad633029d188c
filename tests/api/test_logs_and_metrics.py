"""One log format with no secret in it (issue 10, item 11; issue 12, section 5), Prometheus
metrics from prometheus_client, and CLI commands that print only what was asked."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from dialer.access_log import AccessLog
from dialer.logs import command_log_level, configure_logging, redact
from dialer.metrics import Metrics, set_all
from tests.api.conftest import open_api

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(("text", "kept"), [
    ("GET /v1/agents/a1/events?access_token=dlr_abcDEF-123_x HTTP/1.1", "GET /v1/agents/a1/events?access_token="),
    ("Authorization: Bearer dlr_abc", "Authorization: Bearer "),
    ("token=abc&limit=5", "&limit=5"),
    ("the token dlr_Zz9-_ leaked", "the token "),
])
def test_secrets_are_redacted(text: str, kept: str) -> None:
    redacted = redact(text)
    assert kept in redacted and "[redacted]" in redacted
    assert "dlr_" not in redacted and "abc" not in redacted.split("[redacted]")[0][-3:]


@pytest.fixture
def json_logs() -> Iterator[None]:
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("info", "json")
    try:
        yield
    finally:
        structlog.configure(**saved)
        root.handlers, root.level = handlers, level


@pytest.mark.integration
async def test_the_access_log_is_one_json_line_per_request_without_the_token(
    json_logs: None, capsys: pytest.CaptureFixture[str], pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path,
) -> None:
    async with open_api(pg_dsn, redis_url, redis_prefix, tmp_path / "state", access_log_class=AccessLog) as api:
        capsys.readouterr()
        async with api.client.ws_connect(f"/v1/agents/{api.agent_id}/events?access_token={api.agent}") as socket:
            assert (await socket.receive_json())["type"] == "subscribed"
        await api.client.get(f"/v1/calls?token={api.crm}", headers=api.auth(api.crm))
        logging.getLogger("aiohttp.server").warning("seen %s", f"/x?access_token={api.agent}")
    output = capsys.readouterr()
    err, out = output.err, output.out
    assert api.agent not in err + out and api.crm not in err + out
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("event") == "http_request"]
    (listed,) = [line for line in requests if line["path"] == "/v1/calls"]
    assert listed["query"] == "token=[redacted]" and listed["status"] == 400  # not a parameter of this list
    assert all("timestamp" in line and "level" in line for line in lines)
    stdlib = [line for line in lines if line.get("logger") == "aiohttp.server"]
    assert stdlib and "[redacted]" in stdlib[0]["event"]


def test_commands_log_warnings_only_unless_asked() -> None:
    assert command_log_level("info", "dnc", verbose=False) == "warning"
    assert command_log_level("info", "dnc", verbose=True) == "info"
    assert command_log_level("info", "serve", verbose=False) == "info"
    assert command_log_level("error", "dnc", verbose=False) == "error"


def test_metrics_are_exposed_by_prometheus_client_with_histograms_and_the_process() -> None:
    metrics = Metrics()
    metrics.counter("dialer_calls_finished_total", "Click-to-call calls ended, by outcome").inc(outcome="busy")
    agents = metrics.gauge("dialer_campaign_agents", "Agents of a running campaign, by state")
    set_all(agents, {"ready": 2, "paused": 1}, "state", campaign="c1")
    set_all(agents, {"ready": 3}, "state", campaign="c1")
    metrics.gate_decision_seconds.labels(batch="false").observe(0.002)
    body, content_type = metrics.exposition()
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert 'dialer_calls_finished_total{outcome="busy"} 1.0' in text
    assert 'dialer_campaign_agents{campaign="c1",state="ready"} 3.0' in text
    assert 'dialer_campaign_agents{campaign="c1",state="paused"} 0.0' in text
    assert 'dialer_gate_decision_seconds_bucket{batch="false",le="0.0025"} 1.0' in text
    assert "process_cpu_seconds_total" in text or "python_gc_objects_collected_total" in text
    assert "_created" not in text
