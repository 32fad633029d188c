"""A real SIP softphone agent: Debian's baresip, registered to an agent endpoint.

The demo logs one in as a real agent; the tests extend it (tests/softphone.py) to inspect what
it heard. It sends a tone as its microphone; baresip hangs up when its audio source ends,
so a nailed-up agent leg needs a tone longer than the session (`long_tone`).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import time
import wave
from pathlib import Path

from dialer.provision.ports import free_local_port

BIND_ATTEMPTS = 5  # a listen port can be taken between choosing and binding it


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


def baresip_installed() -> bool:
    return shutil.which("baresip") is not None


class AgentSoftphone:
    """One baresip process registered as `endpoint` on 127.0.0.1:`sip_port`.

    `auto_answer` answers every call; `dump_heard` writes what each call received to
    `dump-*-dec.wav` in the work directory (baresip's sndfile module).
    """

    def __init__(self, workdir: Path, endpoint: str, password: str, sip_port: int, tone: Path, *,
                 auto_answer: bool = True, dump_heard: bool = False) -> None:
        self.workdir = workdir
        self.endpoint = endpoint
        self.tone = tone
        self.dump_heard = dump_heard
        self.log = workdir / "baresip.log"
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "accounts").write_text(
            f"<sip:{endpoint}@127.0.0.1:{sip_port}>;auth_pass={password};"
            f"answermode={'auto' if auto_answer else 'manual'};regint=600\n"
        )
        self._process: subprocess.Popen[bytes] | None = None

    def _write_config(self, listen_port: int) -> None:
        modules = ["g711.so", "aufile.so", *(["sndfile.so"] if self.dump_heard else [])]
        (self.workdir / "config").write_text("\n".join([
            f"sip_listen 127.0.0.1:{listen_port}",
            "module_path /usr/lib/baresip/modules",
            *(f"module {module}" for module in modules),
            "module_app account.so",
            "module_app menu.so",
            f"audio_source aufile,{self.tone}",
            f"audio_player aufile,{self.workdir / 'heard.wav'}",
            f"snd_path {self.workdir}",
            "",
        ]))

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def registered(self) -> bool:
        return bool(re.search(r"200 OK .*binding", self.log_text()))

    def start(self, timeout: float = 15.0) -> None:
        """Start baresip and wait until it has registered; RuntimeError (one sentence) if not."""
        if not baresip_installed():
            raise RuntimeError("baresip is not installed: run scripts/bootstrap.sh (apt-get install baresip)")
        for _ in range(BIND_ATTEMPTS):
            self._write_config(free_local_port())
            if self._start_once(timeout):
                return
            if "Address already in use" not in self.log_text():
                break
        tail = self.log_text()[-800:]
        raise RuntimeError(f"baresip did not register as {self.endpoint} within {timeout:.0f} s "
                           f"(log {self.log}: {tail})")

    def _start_once(self, timeout: float) -> bool:
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(["baresip", "-f", str(self.workdir), "-v"],
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.registered:
                return True
            if self._process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        return False

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
