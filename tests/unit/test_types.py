"""The package type-checks clean: mypy over src/cttop, with pyproject.toml's settings, finds nothing.

The hints are the code's documentation of what flows where (a rate that is None until two readings, a family
that is an int); a hint that lies is worse than none, and only a checker run on every change keeps them honest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_finds_nothing(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"), "src/cttop"],
                       capture_output=True, text=True, check=False, cwd=ROOT,
                       env={**os.environ, "MYPY_FORCE_COLOR": "0"})
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert r.stdout.startswith("Success: no issues found"), r.stdout[-2000:]
