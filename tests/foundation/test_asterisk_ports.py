"""An Asterisk whose ARI or SIP port another program holds is refused at once, with one sentence
naming the port and the setting that moves it, instead of a minute's wait for an ARI that never
answers; a restart on the same ports right after a stop still starts."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialer.provision.asterisk import AsteriskInstance, ProvisionError, ensure_install
from dialer.provision.ports import free_local_port, port_taken
from dialer.settings import from_environment
from tests.conftest import RUN_ID


@pytest.fixture(scope="module")
def spare_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsteriskInstance]:
    """A real instance of the project's Asterisk on free ports of its own, not started: the
    session's `asterisk` is shared by every test and is not stopped here."""
    settings = from_environment(
        instance=f"test-{RUN_ID}-ports",
        ari_port=free_local_port(),
        sip_port=free_local_port(),
        carrier_port=free_local_port(),
        ari_password=f"test-{uuid.uuid4().hex}",
        state_root=str(tmp_path_factory.mktemp("asterisk-ports-state")),
        agents=2,
        supervisors=1,
        rtp_start=30000,
        rtp_end=40000,
    )
    instance = AsteriskInstance.for_settings(ensure_install(settings, say=lambda _: None), settings)
    try:
        yield instance
    finally:
        instance.stop()
        instance.remove()


def _tcp_listener(port: int, *, reuse_address: bool = False) -> socket.socket:
    listener = socket.socket()
    if reuse_address:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen()
    return listener


def _udp_socket(port: int) -> socket.socket:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", port))
    return udp


@pytest.mark.timeout(10)
def test_a_live_socket_counts_as_taken_and_a_time_wait_connection_does_not() -> None:
    port = free_local_port()
    # Listening with SO_REUSEADDR as Asterisk's HTTP server does (Linux lets a later bind past
    # a TIME_WAIT connection only when its listener had it too).
    with _tcp_listener(port, reuse_address=True) as listener, socket.create_connection(("127.0.0.1", port)):
        accepted, _ = listener.accept()
        # The server's side closes first: its end of the connection stays in TIME_WAIT on
        # `port`, as Asterisk's ARI connections do after it stops.
        accepted.close()
        assert port_taken("127.0.0.1", port, socket.SOCK_STREAM)
    assert not port_taken("127.0.0.1", port, socket.SOCK_STREAM)
    with _udp_socket(port):
        assert port_taken("127.0.0.1", port, socket.SOCK_DGRAM)
    assert not port_taken("127.0.0.1", port, socket.SOCK_DGRAM)
    # An address this machine does not have is not "taken": Asterisk reports that one itself.
    assert not port_taken("192.0.2.1", port, socket.SOCK_DGRAM)


@pytest.mark.integration
@pytest.mark.timeout(20)
def test_start_refuses_at_once_when_another_program_holds_the_ari_port(spare_instance: AsteriskInstance) -> None:
    with _tcp_listener(spare_instance.config.ari_port):
        began = time.monotonic()
        with pytest.raises(ProvisionError) as refused:
            spare_instance.start()
        took = time.monotonic() - began
    assert took < 1.0
    assert str(refused.value) == (
        f"Another program holds Asterisk instance {spare_instance.config.name}'s port "
        f"{spare_instance.config.ari_port} (ARI, TCP): stop it, or move the instance to other ports "
        "(DIALER_ARI_PORT=...)."
    )
    assert spare_instance.pid() is None


@pytest.mark.integration
@pytest.mark.timeout(20)
def test_start_refuses_at_once_when_another_program_holds_the_sip_port(spare_instance: AsteriskInstance) -> None:
    with _udp_socket(spare_instance.config.sip_port):
        began = time.monotonic()
        with pytest.raises(ProvisionError, match=rf"port {spare_instance.config.sip_port} \(SIP, UDP\): .*"
                                                 r"\(DIALER_SIP_PORT=\.\.\.\)\.$"):
            spare_instance.start()
        assert time.monotonic() - began < 1.0
    assert spare_instance.pid() is None


@pytest.mark.integration
@pytest.mark.timeout(20)
def test_both_taken_ports_are_named_in_one_sentence(spare_instance: AsteriskInstance) -> None:
    config = spare_instance.config
    with _tcp_listener(config.ari_port), _udp_socket(config.sip_port):
        sentence = spare_instance.taken_ports_sentence()
    assert sentence is not None and "\n" not in sentence and sentence.endswith(".")
    assert f"ports {config.ari_port} (ARI, TCP) and {config.sip_port} (SIP, UDP)" in sentence
    assert "(DIALER_ARI_PORT=..., DIALER_SIP_PORT=...)" in sentence
    assert spare_instance.taken_ports_sentence() is None


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_restart_on_the_same_ports_right_after_a_stop_starts(spare_instance: AsteriskInstance) -> None:
    spare_instance.start()
    first = spare_instance.pid()
    # Asterisk's own sockets are what the probe sees while it runs, and a second start of the
    # running instance is no refusal (it is already up).
    assert port_taken("127.0.0.1", spare_instance.config.ari_port, socket.SOCK_STREAM)
    assert port_taken(spare_instance.config.sip_bind, spare_instance.config.sip_port, socket.SOCK_DGRAM)
    spare_instance.start()
    for _ in range(5):  # connections Asterisk closes: TIME_WAIT on its ARI port after the stop
        assert spare_instance.ari_answers() is not None
    spare_instance.stop()
    with socket.socket() as plain, pytest.raises(OSError):
        # Without SO_REUSEADDR the bind fails: the TIME_WAIT connections are there, and the
        # check below does not count them.
        plain.bind(("127.0.0.1", spare_instance.config.ari_port))
    assert spare_instance.taken_ports_sentence() is None
    began = time.monotonic()
    spare_instance.restart()
    print(f"\nrestart on the same ports: {time.monotonic() - began:.1f} s")
    assert spare_instance.pid() not in (None, first)
    assert spare_instance.ari_answers() is not None


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_dialer_asterisk_start_gives_the_sentence_and_a_non_zero_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dialer.cli import main

    ari_port, sip_port = free_local_port(), free_local_port()
    monkeypatch.setenv("DIALER_INSTANCE", f"test-{RUN_ID}-ports-cli")
    monkeypatch.setenv("DIALER_ARI_PORT", str(ari_port))
    monkeypatch.setenv("DIALER_SIP_PORT", str(sip_port))
    monkeypatch.setenv("DIALER_CARRIER_PORT", str(free_local_port()))
    monkeypatch.setenv("DIALER_ARI_PASSWORD", f"test-{uuid.uuid4().hex}")
    monkeypatch.setenv("DIALER_STATE_DIR", str(tmp_path / "state"))
    with _tcp_listener(ari_port), _udp_socket(sip_port):
        assert main(["asterisk", "start"]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("dialer: ")]
    assert len(lines) == 1, err
    assert f"ports {ari_port} (ARI, TCP) and {sip_port} (SIP, UDP)" in lines[0]
    assert "DIALER_ARI_PORT=..., DIALER_SIP_PORT=..." in lines[0]
