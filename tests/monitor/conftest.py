"""Supervisor monitoring against the test run's real Asterisk, PostgreSQL and Redis, with
baresip softphones for the agent and the supervisor, each sending its own tone."""

from __future__ import annotations

import asyncio
import math
import uuid
import wave
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from crm_bridge.store import TokenRole
from dialer.ari.auth import basic_auth_header
from dialer.click_to_call.machine import CallTimeouts
from dialer.provision.asterisk import AsteriskInstance
from dialer.serve import dialer_services
from tests.controller.conftest import GATE_NOW, Dialer, dialer_settings, mark_lists_fresh
from tests.softphone import Softphone
from tests.waiting import until

AGENT_HZ = 440.0  # the agent's softphone (and the simulated agents) send this
SUPERVISOR_HZ = 1250.0  # the supervisor's softphone sends this, so we can tell who is heard
MONITOR_TUNING: dict[str, object] = {"ring_timeout": 6, "setup_timeout": 15.0}


def tone_wav(path: Path, hz: float, seconds: int) -> Path:
    """An 8 kHz mono sine WAV (written once, reused)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(8000 * seconds) / 8000.0
        samples = (8000 * np.sin(2 * math.pi * hz * t)).astype("<i2")
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes(samples.tobytes())
    return path


def read_wav(path: Path) -> tuple[np.ndarray[Any, Any], int]:
    with wave.open(str(path), "rb") as wav:
        rate = wav.getframerate()
        channels = wav.getnchannels()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return samples, rate


def tone_share(path: Path, hz: float, start: float = 0.0, end: float | None = None) -> float:
    """Share of the energy of [start, end) seconds within 15 Hz of `hz` (0 for silence)."""
    samples, rate = read_wav(path)
    segment = samples[max(0, int(start * rate)): None if end is None else max(0, int(end * rate))]
    if segment.size < rate // 4:
        raise AssertionError(f"{path.name}: window {start:.1f}-{end} s is too short ({segment.size} samples)")
    spectrum = np.abs(np.fft.rfft(segment)) ** 2
    total = float(spectrum[1:].sum())
    if total == 0.0:
        return 0.0
    freqs = np.fft.rfftfreq(segment.size, 1.0 / rate)
    return float(spectrum[np.abs(freqs - hz) < 15].sum() / total)


def rms_without(path: Path, hz: float) -> float:
    """RMS level of the whole file once the band around `hz` is taken out (other sound: speech)."""
    samples, rate = read_wav(path)
    spectrum = np.fft.rfft(samples)
    freqs = np.fft.rfftfreq(samples.size, 1.0 / rate)
    spectrum[np.abs(freqs - hz) < 30] = 0
    rest = np.fft.irfft(spectrum, samples.size)
    return float(np.sqrt(np.mean(rest**2)))


def wav_seconds(path: Path) -> float:
    samples, rate = read_wav(path)
    return samples.size / rate


async def ari_objects(asterisk: AsteriskInstance, *prefixes: str) -> list[str]:
    headers = basic_auth_header(asterisk.config.ari_user, asterisk.config.ari_password)
    found = []
    async with aiohttp.ClientSession(headers=headers) as session:
        for kind in ("channels", "bridges"):
            async with session.get(f"{asterisk.ari_url}/{kind}") as response:
                found += [item["id"] for item in await response.json() if item["id"].startswith(prefixes)]
    return found


async def nothing_left(asterisk: AsteriskInstance, *prefixes: str, within: float = 15.0) -> None:
    """Wait (bounded) until Asterisk holds no channel or bridge with these prefixes."""
    left: list[str] = []

    async def empty() -> bool:
        nonlocal left
        left = await ari_objects(asterisk, *prefixes)
        return not left

    try:
        await until(empty, within, interval=0.2)
    except TimeoutError:
        raise AssertionError(f"left in Asterisk: {left}") from None


async def call_ended_on(phone: Softphone, calls: int = 1, within: float = 20.0) -> None:
    """Wait until baresip logged the end of `calls` calls (a call hung up within a second of its
    start is logged as 'session closed')."""

    def ended() -> bool:
        text = phone.log_text()
        return text.count("terminated (duration") + text.count("session closed") >= calls

    await until(ended, within)


class Monitors:
    """The monitor endpoints as a supervisor's console uses them."""

    def __init__(self, client: TestClient[Any, Any], token: str) -> None:
        self.client = client
        self.token = token

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    async def start(self, call_id: str, endpoint: str, mode: str, token: str | None = None) -> tuple[int, Any]:
        response = await self.client.post(f"/v1/calls/{call_id}/monitor", json={"endpoint": endpoint, "mode": mode},
                                          headers=self.auth(token))
        return response.status, await response.json()

    async def mode(self, monitor_id: str, mode: str) -> tuple[int, Any]:
        response = await self.client.post(f"/v1/monitors/{monitor_id}/mode", json={"mode": mode},
                                          headers=self.auth())
        return response.status, await response.json()

    async def stop(self, monitor_id: str) -> tuple[int, Any]:
        response = await self.client.delete(f"/v1/monitors/{monitor_id}", headers=self.auth())
        return response.status, await response.json()

    async def get(self, monitor_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/monitors/{monitor_id}", headers=self.auth())
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body

    async def live(self) -> list[dict[str, Any]]:
        response = await self.client.get("/v1/calls/live", headers=self.auth())
        assert response.status == 200, await response.text()
        calls: list[dict[str, Any]] = (await response.json())["calls"]
        return calls

    async def wait_active(self, monitor_id: str, mode: str, within: float = 30.0) -> float:
        """Wait until the mode is wired in Asterisk; returns the loop time it was seen."""

        async def active() -> bool:
            body = await self.get(monitor_id)
            assert body["state"] in ("dialing", "connected"), body
            return bool(body["mode"] == mode and body["mode_active"])

        await until(active, within, interval=0.1)
        return asyncio.get_running_loop().time()

    async def wait_ended(self, monitor_id: str, within: float = 30.0) -> dict[str, Any]:
        async def ended() -> bool:
            return (await self.get(monitor_id))["state"] == "ended"

        await until(ended, within, interval=0.2)
        return await self.get(monitor_id)


@pytest.fixture
def phone(asterisk: AsteriskInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Softphone]]:
    """Start a baresip softphone on `endpoint` sending a `hz` tone for 3 minutes."""
    phones: list[Softphone] = []

    def start(endpoint: str, hz: float, auto_answer: bool = True) -> Softphone:
        tone = tone_wav(tmp_path_factory.getbasetemp() / f"tone-{int(hz)}.wav", hz, 180)
        softphone = Softphone(tmp_path_factory.mktemp(endpoint), endpoint, asterisk.sip_credentials(endpoint).password,
                              asterisk.config.sip_port, auto_answer=auto_answer, tone=tone)
        phones.append(softphone)
        softphone.start()
        return softphone

    yield start
    for softphone in phones:
        softphone.stop()


@pytest.fixture
async def dialer(
    asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[Dialer]:
    settings = dialer_settings(asterisk, pg_dsn, redis_url, redis_prefix, tmp_path)
    async with dialer_services(
        settings, gate_clock=lambda: GATE_NOW, timeouts=CallTimeouts(agent_ring=10.0, lead_ring=15.0),
        drain_seconds=5, monitor_overrides=MONITOR_TUNING,
    ) as services:
        await mark_lists_fresh(services)
        crm = (await services.store.issue_token(TokenRole.CRM, label="tests")).secret
        async with TestClient(TestServer(services.app)) as client:
            yield Dialer(services, client, asterisk, pg_dsn, crm, uuid.uuid4().hex[:6])
