"""A real SIP softphone for tests: the project's baresip agent (dialer/demo/softphone.py) with
what a test inspects: calls answered and ended, and what the phone heard.

It sends a known audio file (a 440 Hz tone) and dumps what it hears to a WAV file per call, so
tests check audio, not only signalling.
"""

from __future__ import annotations

import time
from pathlib import Path

from dialer.demo.softphone import AgentSoftphone
from tests.audio import AudioReport, analyse_wav

SOURCE_TONE_HZ = 440.0
SOURCE_FILE = Path(__file__).resolve().parents[1] / "asterisk-config" / "sounds" / "agent-tone.wav"


class Softphone(AgentSoftphone):
    """One baresip process registered as `endpoint`, dumping what each call received."""

    def __init__(self, workdir: Path, endpoint: str, password: str, sip_port: int, *,
                 auto_answer: bool = True, tone: Path = SOURCE_FILE) -> None:
        super().__init__(workdir, endpoint, password, sip_port, tone, auto_answer=auto_answer, dump_heard=True)

    def answered_calls(self) -> int:
        return self.log_text().count("Call established")

    def heard_files(self) -> list[Path]:
        """One WAV per call with what the phone received (newest last)."""
        return sorted(self.workdir.glob("dump-*-dec.wav"))

    def wait_for_call_end(self, calls: int = 1, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_text().count("terminated (duration") >= calls:
                return
            time.sleep(0.1)
        raise TimeoutError(f"no call ended on {self.endpoint} within {timeout} s")

    def last_heard(self) -> AudioReport:
        files = self.heard_files()
        if not files:
            raise AssertionError(f"{self.endpoint} recorded no received audio")
        return analyse_wav(files[-1])
