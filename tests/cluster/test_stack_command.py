"""`dialer stack up --nodes 2`, `status` and `down`, as a user runs them (the real command, real
Asterisk nodes and Kamailio, on ports of the test's own)."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialer.cli import main
from dialer.provision.cluster import cluster_layout
from dialer.provision.ports import PORT_RANGE
from dialer.settings import from_environment
from tests.conftest import RUN_ID

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.timeout(180)]

NODES = 2


def _free(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _base_ports() -> dict[str, int]:
    """Settings' ports whose cluster layout (ports + 100 per node) is free right now."""
    for _ in range(200):
        base = random.randrange(PORT_RANGE.start, PORT_RANGE.stop - 400)
        ports = {"sip_port": base, "ari_port": base + 7, "carrier_port": base + 13}
        layout = cluster_layout(NODES, instance="x", rtp_start=44000, rtp_end=45999, **ports)
        wanted = [layout.edge_sip_port, *(p for node in layout.nodes for p in (node.ari_port, node.sip_port,
                                                                            node.carrier_port))]
        if all(_free(port) for port in wanted):
            return ports
    raise OSError("no free ports for a cluster layout")


@pytest.fixture
def stack_env(pg_dsn: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    ports = _base_ports()
    instance = f"test-stack-{RUN_ID}"
    env = {
        **os.environ, "DIALER_CONFIG": "", "DIALER_INSTANCE": instance, "DIALER_STATE_DIR": str(tmp_path / "state"),
        "DIALER_PG_DSN": pg_dsn, "DIALER_REDIS_URL": redis_url, "DIALER_ARI_PASSWORD": f"test-{uuid.uuid4().hex}",
        "DIALER_SIP_PORT": str(ports["sip_port"]), "DIALER_ARI_PORT": str(ports["ari_port"]),
        "DIALER_CARRIER_PORT": str(ports["carrier_port"]), "DIALER_RTP_START": "44000", "DIALER_RTP_END": "45999",
    }
    yield env
    if (tmp_path / "state" / "cluster.json").exists():  # the test did not bring it down itself
        dialer("stack", "down", env=env)
    cache = from_environment().cache_dir
    shutil.rmtree(cache / "kamailio" / f"{instance}-edge", ignore_errors=True)


def dialer(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dialer", *args], env=env, capture_output=True, text=True,
                          timeout=150, check=False)


def test_stack_up_with_nodes_brings_up_a_cluster_that_status_lists_and_down_stops(stack_env: dict[str, str]) -> None:
    carrier = f"127.0.0.1:{int(stack_env['DIALER_SIP_PORT']) + 50}"
    up = dialer("stack", "up", "--nodes", str(NODES), "--carrier", carrier, "--no-migrate", env=stack_env)
    assert up.returncode == 0, up.stderr
    edge_port = stack_env["DIALER_SIP_PORT"]
    ari = int(stack_env["DIALER_ARI_PORT"])
    assert f"Kamailio edge: SIP udp 127.0.0.1:{edge_port}" in up.stdout
    for index in range(NODES):
        assert f"ARI http://127.0.0.1:{ari + 100 * index}/ari" in up.stdout
    # Browser phones register at the edge too: the consoles' credentials name its WebSocket.
    ws_url = f"ws://127.0.0.1:{edge_port}/ws"
    assert f"Kamailio edge: SIP over WebSocket {ws_url}" in up.stdout
    browser = dialer("asterisk", "sip-credentials", "agent1001-web", env=stack_env)
    assert browser.returncode == 0 and f"websocket {ws_url}" in browser.stdout, browser.stdout + browser.stderr

    status = dialer("stack", "status", env=stack_env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"Kamailio edge: running, SIP udp 127.0.0.1:{edge_port}, WebSocket {ws_url}" in status.stdout
    assert status.stdout.count("running, ARI http://127.0.0.1:") == NODES
    assert status.stdout.count("(in dispatch)") == NODES

    single = dialer("stack", "up", "--no-migrate", env=stack_env)
    assert single.returncode != 0 and "A cluster of these settings is up" in single.stderr

    down = dialer("stack", "down", env=stack_env)
    assert down.returncode == 0 and f"{NODES} Asterisk nodes: stopped" in down.stdout
    after = dialer("stack", "status", env=stack_env)
    assert after.returncode == 1 and "stopped" in after.stdout


def test_impossible_clusters_are_refused_in_one_sentence(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Refused before anything is started (in process: the checks come before any IO)."""
    monkeypatch.setenv("DIALER_CONFIG", "")
    for args, message in ((["--nodes", "0"], "Cannot lay out 0 nodes"),
                          (["--nodes", "10"], "Cannot lay out 10 nodes"),
                          (["--nodes", "2", "--carrier", "somewhere"], "--carrier takes HOST:PORT"),
                          (["--nodes", "2", "--no-asterisk"], "leave out --no-asterisk")):
        assert main(["stack", "up", *args, "--no-migrate"]) != 0
        assert message in capsys.readouterr().err


def test_the_single_instance_is_not_started_over_a_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DIALER_CONFIG", "")
    monkeypatch.setenv("DIALER_STATE_DIR", str(tmp_path))
    (tmp_path / "cluster.json").write_text('{"nodes": 2, "carriers": []}\n')
    for command in (["asterisk", "start"], ["stack", "up", "--no-migrate"]):
        assert main(command) != 0
        assert "A cluster of these settings is up" in capsys.readouterr().err
