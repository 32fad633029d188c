"""A real SIP softphone for tests: Debian's baresip, registered to an agent endpoint.

It auto-answers, sends a known audio file (a 440 Hz tone) and dumps what it hears to a WAV
file (baresip's sndfile module), so tests check audio, not only signalling.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.audio import AudioReport, analyse_wav

SOURCE_TONE_HZ = 440.0
SOURCE_FILE = Path(__file__).resolve().parents[1] / "asterisk-config" / "sounds" / "agent-tone.wav"


class Softphone:
    """One baresip process registered as `endpoint` on 127.0.0.1:`sip_port`."""

    def __init__(
        self, workdir: Path, endpoint: str, password: str, sip_port: int, listen_port: int, *, auto_answer: bool = True
    ) -> None:
        self.workdir = workdir
        self.endpoint = endpoint
        self.log = workdir / "baresip.log"
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "config").write_text(
            "\n".join(
                [
                    f"sip_listen 127.0.0.1:{listen_port}",
                    "module_path /usr/lib/baresip/modules",
                    "module g711.so",
                    "module aufile.so",
                    "module sndfile.so",
                    "module_app account.so",
                    "module_app menu.so",
                    f"audio_source aufile,{SOURCE_FILE}",
                    f"audio_player aufile,{workdir / 'player.wav'}",
                    f"snd_path {workdir}",
                    "",
                ]
            )
        )
        (workdir / "accounts").write_text(
            f"<sip:{endpoint}@127.0.0.1:{sip_port}>;auth_pass={password};"
            f"answermode={'auto' if auto_answer else 'manual'};regint=600\n"
        )
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> None:
        if shutil.which("baresip") is None:
            raise RuntimeError("baresip is not installed: run scripts/bootstrap.sh (apt-get install baresip)")
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                ["baresip", "-f", str(self.workdir), "-v"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.registered:
                return
            if self._process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"baresip did not register {self.endpoint}: {self.log.read_text(errors='replace')[-800:]}")

    @property
    def registered(self) -> bool:
        return bool(re.search(r"200 OK .*binding", self.log.read_text(errors="replace")))

    def answered_calls(self) -> int:
        return self.log.read_text(errors="replace").count("Call established")

    def heard_files(self) -> list[Path]:
        """One WAV per call with what the phone received (newest last)."""
        return sorted(self.workdir.glob("dump-*-dec.wav"))

    def wait_for_call_end(self, calls: int = 1, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.read_text(errors="replace").count("terminated (duration") >= calls:
                return
            time.sleep(0.1)
        raise TimeoutError(f"no call ended on {self.endpoint} within {timeout} s")

    def last_heard(self) -> AudioReport:
        files = self.heard_files()
        if not files:
            raise AssertionError(f"{self.endpoint} recorded no received audio")
        return analyse_wav(files[-1])

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


@contextlib.contextmanager
def running_softphone(
    workdir: Path, endpoint: str, password: str, sip_port: int, listen_port: int
) -> Iterator[Softphone]:
    phone = Softphone(workdir, endpoint, password, sip_port, listen_port)
    phone.start()
    try:
        yield phone
    finally:
        phone.stop()
