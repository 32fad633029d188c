"""A real SIP softphone agent for the demo: Debian's baresip, registered to an agent endpoint,
auto-answering and sending a long tone (baresip hangs up when its audio source ends, which
would end a nailed-up agent leg mid-session)."""

from __future__ import annotations

import math
import re
import shutil
import socket
import subprocess
import time
import wave
from pathlib import Path


def long_tone(path: Path, seconds: int) -> Path:
    """An 8 kHz mono 440 Hz WAV lasting `seconds` (written once, reused)."""
    if not path.exists() or path.stat().st_size < seconds * 16000:
        path.parent.mkdir(parents=True, exist_ok=True)
        period = b"".join(
            int(8000 * math.sin(2 * math.pi * 440 * i / 8000)).to_bytes(2, "little", signed=True) for i in range(400)
        )
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes(period * (seconds * 20))
    return path


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def baresip_installed() -> bool:
    return shutil.which("baresip") is not None


class AgentSoftphone:
    """One auto-answering baresip process registered as `endpoint` on 127.0.0.1:`sip_port`."""

    def __init__(self, workdir: Path, endpoint: str, password: str, sip_port: int, tone: Path) -> None:
        self.workdir = workdir
        self.endpoint = endpoint
        self.log = workdir / "baresip.log"
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "config").write_text("\n".join([
            f"sip_listen 127.0.0.1:{free_udp_port()}",
            "module_path /usr/lib/baresip/modules",
            "module g711.so",
            "module aufile.so",
            "module_app account.so",
            "module_app menu.so",
            f"audio_source aufile,{tone}",
            f"audio_player aufile,{workdir / 'heard.wav'}",
            "",
        ]))
        (workdir / "accounts").write_text(
            f"<sip:{endpoint}@127.0.0.1:{sip_port}>;auth_pass={password};answermode=auto;regint=600\n"
        )
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> None:
        """Start baresip and wait until it has registered; RuntimeError (one sentence) if not."""
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(["baresip", "-f", str(self.workdir), "-v"],
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(r"200 OK .*binding", self.log.read_text(errors="replace")):
                return
            if self._process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"baresip did not register as {self.endpoint} within {timeout:.0f} s (log: {self.log})")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)
        self._process = None
