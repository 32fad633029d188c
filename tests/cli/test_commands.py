"""The `dialer` command as an admin meets it: a missing dependency or a piped, closed output
is one sentence and a non-zero exit status, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from dialer.provision.ports import free_local_port
from tests.conftest import AUDIT_KEYS_DIR


def dialer(args: list[str], env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dialer", *args], env={**os.environ, "DIALER_CONFIG": "", **env},
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_serve_without_asterisk_says_so_in_one_sentence(pg_dsn: str, redis_url: str, redis_prefix: str,
                                                        tmp_path: Path) -> None:
    # Nothing listens on the ARI port: the start gives up after its 15 s wait.
    env = {"DIALER_PG_DSN": pg_dsn, "DIALER_REDIS_URL": redis_url, "DIALER_REDIS_PREFIX": f"{redis_prefix}serve:",
           "DIALER_ARI_PORT": str(free_local_port()), "DIALER_HTTP_PORT": str(free_local_port()),
           "DIALER_STATE_DIR": str(tmp_path / "state"), "DIALER_RECORDINGS_DIR": str(tmp_path / "recordings"),
           "DIALER_RECORDING_KEYS_DIR": str(tmp_path / "keys"), "DIALER_AUDIT_KEYS_DIR": str(AUDIT_KEYS_DIR)}
    result = dialer(["serve"], env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    last = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert last == [f"dialer: Asterisk's ARI at http://127.0.0.1:{env['DIALER_ARI_PORT']}/ari does not answer: "
                    "start it ('dialer asterisk start') or set DIALER_ARI_PORT."], result.stderr[-3000:]


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_output_piped_into_a_reader_that_left_is_no_traceback(redis_url: str, redis_prefix: str) -> None:
    # `dialer dnc status | head -1` closes the pipe before every line is written.
    env = {**os.environ, "DIALER_CONFIG": "", "DIALER_REDIS_URL": redis_url, "DIALER_REDIS_PREFIX": f"{redis_prefix}pipe:"}
    result = subprocess.run(
        ["bash", "-c", f"'{sys.executable}' -m dialer dnc status | head -c 0; exit ${{PIPESTATUS[0]}}"],
        env=env, capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr, result.stderr
    assert result.returncode == 141


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_webhook_commands_refuse_what_the_api_refuses(pg_dsn: str, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from dialer.cli import main

    monkeypatch.setenv("DIALER_CONFIG", "")
    monkeypatch.setenv("DIALER_PG_DSN", pg_dsn)
    assert main(["webhook", "create", "https://crm.example.com/qa-cli", "--event", "call.ended"]) == 0
    subscription_id = json.loads(capsys.readouterr().out)["subscription_id"]
    for words, field in [
        (["rotate-secret", subscription_id, "--keep-previous", "-1"], "keep_previous_seconds"),  # was rotated, exit 0
        (["deliveries", subscription_id, "--limit", "0"], "limit"),  # printed nothing, exit 0
        (["replay", subscription_id, "--since", "2026-11-24T00:00Z", "--until", "2026-11-01T00:00Z"], "until"),
        (["update", subscription_id, "--url", "https://crm.exa mple.com/"], "url"),
    ]:
        assert main(["webhook", *words]) == 2, words
        out, err = capsys.readouterr()
        assert out == "" and err.startswith(f"dialer: {field}: ") and err.count("\n") == 1, (words, err)
    assert main(["changes", "webhook", subscription_id]) == 0
    assert [json.loads(line)["action"] for line in capsys.readouterr().out.splitlines()] == ["create"]


@pytest.mark.timeout(30)
def test_a_backup_into_a_missing_folder_is_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from dialer.cli import main

    monkeypatch.setenv("DIALER_CONFIG", "")
    assert main(["backup", "--out", str(tmp_path / "missing" / "nightly.tar.gz")]) == 2  # was a FileNotFoundError
    out, err = capsys.readouterr()
    assert out == "" and err == f"dialer: The folder {tmp_path / 'missing'} does not exist: give --out a file in an " \
                                "existing folder.\n"


@pytest.mark.timeout(60)
def test_the_user_command_says_postgresql_is_down_with_exit_status_3(monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from dialer.cli import main

    monkeypatch.setenv("DIALER_CONFIG", "")
    monkeypatch.setenv("DIALER_PG_DSN", f"postgresql://postgres@127.0.0.1:{free_local_port()}/nowhere")
    assert main(["user", "list"]) == 3  # was 2, the status of an invalid value
    assert "does not answer" in capsys.readouterr().err


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_an_agent_on_an_endpoint_asterisk_does_not_have_is_refused_in_one_sentence(
        pg_dsn: str, asterisk: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from dialer.cli import main

    for name, value in {"DIALER_CONFIG": "", "DIALER_PG_DSN": pg_dsn, "DIALER_ARI_PORT": str(asterisk.config.ari_port),
                        "DIALER_ARI_USER": asterisk.config.ari_user,
                        "DIALER_ARI_PASSWORD": asterisk.config.ari_password}.items():
        monkeypatch.setenv(name, value)
    agent_id = f"qa-cli-{uuid.uuid4().hex[:8]}"
    assert main(["agent", "create", agent_id, "--name", "Ann", "--endpoint", "agent9999x"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("dialer: Asterisk has no SIP endpoint PJSIP/agent9999x") \
        and err.count("\n") == 1, err
    assert main(["agent", "create", agent_id, "--name", "Ann", "--endpoint", "agent1016"]) == 0
    assert capsys.readouterr() == (f"{agent_id}\n", "")
    assert main(["agent", "update", agent_id, "--endpoint", "nobody-here"]) == 2
    assert "Asterisk has no SIP endpoint PJSIP/nobody-here" in capsys.readouterr().err
    # Asterisk down (or not yet installed): taken, with a warning.
    monkeypatch.setenv("DIALER_ARI_PORT", str(free_local_port()))
    assert main(["agent", "update", agent_id, "--endpoint", "agent1017"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["sip_endpoint"] == "agent1017"
    assert err == "dialer: warning: Asterisk could not be asked whether PJSIP/agent1017 exists: check it before the " \
                  "agent logs in.\n"


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_an_agent_created_without_an_endpoint_has_its_default_checked(
        pg_dsn: str, asterisk: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --endpoint the agent is called on PJSIP/<agent_id>: checked as the API checks it
    (before: not checked at all, so the agent was created on an endpoint that does not exist)."""
    from dialer.cli import main

    for name, value in {"DIALER_CONFIG": "", "DIALER_PG_DSN": pg_dsn, "DIALER_ARI_PORT": str(asterisk.config.ari_port),
                        "DIALER_ARI_USER": asterisk.config.ari_user,
                        "DIALER_ARI_PASSWORD": asterisk.config.ari_password}.items():
        monkeypatch.setenv(name, value)
    agent_id = f"qa-default-{uuid.uuid4().hex[:8]}"
    assert main(["agent", "create", agent_id, "--name", "Ann"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"dialer: Asterisk has no SIP endpoint PJSIP/{agent_id}: give one of its PJSIP " \
                                 "endpoints (agent1001, agent1001-web, ...).\n", err
    assert main(["agent", "show", agent_id]) == 1  # nothing was written
    capsys.readouterr()
    # Asterisk down: taken, with a warning naming the default.
    monkeypatch.setenv("DIALER_ARI_PORT", str(free_local_port()))
    assert main(["agent", "create", agent_id, "--name", "Ann"]) == 0
    out, err = capsys.readouterr()
    assert out == f"{agent_id}\n"
    assert err == f"dialer: warning: Asterisk could not be asked whether PJSIP/{agent_id} exists: check it before " \
                  "the agent logs in.\n"


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_disabling_an_agent_twice_is_one_change(pg_dsn: str, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from dialer.cli import main

    monkeypatch.setenv("DIALER_CONFIG", "")
    monkeypatch.setenv("DIALER_PG_DSN", pg_dsn)
    agent_id = f"qa-twice-{uuid.uuid4().hex[:8]}"
    # A simulated agent's dial string: no SIP endpoint for Asterisk to check.
    assert main(["agent", "create", agent_id, "--name", "Twice", "--endpoint", "Local/1001@agent-sim"]) == 0
    assert main(["agent", "disable", agent_id]) == 0
    assert main(["agent", "disable", agent_id]) == 0
    assert main(["agent", "enable", agent_id]) == 0
    assert main(["agent", "enable", agent_id]) == 0
    assert capsys.readouterr().out.splitlines() == [agent_id, f"disabled {agent_id}", f"{agent_id} was disabled already",
                                                    f"enabled {agent_id}", f"{agent_id} was enabled already"]
    assert main(["changes", "agent", agent_id]) == 0
    assert [json.loads(line)["action"] for line in capsys.readouterr().out.splitlines()] == ["create", "disable",
                                                                                              "enable"]
    assert main(["agent", "enable", "nobody-here"]) == 1
    assert capsys.readouterr().err == "dialer: no agent 'nobody-here'.\n"


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_check_refuses_an_unknown_campaign_and_decides_under_a_known_ones_rules(
        pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from dialer.cli import main

    for name, value in {"DIALER_CONFIG": "", "DIALER_PG_DSN": pg_dsn, "DIALER_REDIS_URL": redis_url,
                        "DIALER_REDIS_PREFIX": redis_prefix, "DIALER_STATE_DIR": str(tmp_path / "state")}.items():
        monkeypatch.setenv(name, value)
    noon_in_new_york = ["check", "+12125550142", "--at", "2026-03-02T17:00:00Z", "--json"]
    assert main([*noon_in_new_york, "--campaign", "nope"]) == 2  # was decided and audited as campaign 'nope'
    out, err = capsys.readouterr()
    assert out == "" and err == "dialer: No campaign 'nope' in the CRM: give an existing campaign's id ('dialer " \
                                "campaign list').\n"
    campaign_id = f"qa-morning-{uuid.uuid4().hex[:8]}"
    assert main(["campaign", "create", campaign_id, "--name", "Mornings", "--caller-id", "+12125550100",
                 "--window", "09:00-11:00"]) == 0
    capsys.readouterr()
    assert main([*noon_in_new_york, "--campaign", campaign_id]) == 1
    decision = json.loads(capsys.readouterr().out)
    assert decision["campaign_id"] == campaign_id
    assert any(reason["code"] == "outside_calling_window" and "the campaign's" in reason["message"]
               for reason in decision["reasons"]), decision["reasons"]
    monkeypatch.setenv("DIALER_PG_DSN", f"postgresql://postgres@127.0.0.1:{free_local_port()}/nowhere")
    assert main([*noon_in_new_york, "--campaign", campaign_id]) == 3
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"dialer: Campaign '{campaign_id}' cannot be read: ") and err.count("\n") == 1
