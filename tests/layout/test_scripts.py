"""Every script in scripts/ still starts (its imports resolve after code moves): `--help`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(path.name for path in (ROOT / "scripts").glob("*.py"))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("script", SCRIPTS)
def test_the_script_starts(script: str) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--help"], capture_output=True,
                            text=True, timeout=50, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
