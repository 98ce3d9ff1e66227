"""cttop as an unprivileged user can run it, wherever the checkout is.

Root's clone usually lives in /root (mode 700), and the venv's interpreter may be under it too (pyenv): a
process that has dropped to ``nobody`` can then execute neither. The ``nobody_cttop`` fixture copies cttop's
source and the venv's site-packages into a world-readable temporary directory and runs them with an
interpreter ``nobody`` can execute (the venv's own if reachable, else the system's of the same version, since
the C extensions are built for it). When there is none, the tests that need it skip, saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import cttop

NOBODY_UID = 65534
AS_NOBODY = ("setpriv", f"--reuid={NOBODY_UID}", f"--regid={NOBODY_UID}", "--clear-groups")


def _candidates() -> list[str]:
    v = f"{sys.version_info.major}.{sys.version_info.minor}"
    found = [os.path.realpath(sys.executable), f"/usr/bin/python{v}", f"/usr/local/bin/python{v}"]
    return list(dict.fromkeys(p for p in found if os.path.exists(p)))


def _runs_as_nobody(python: str) -> bool:
    want = f"{sys.version_info.major}.{sys.version_info.minor}"
    # Through env: setpriv itself still holds root's capabilities when it execs, so it would reach a path
    # nobody cannot; and an interpreter whose prefix it cannot read may start on another's stdlib.
    code = "import sys, json, _ctypes; print('%d.%d' % sys.version_info[:2])"
    r = subprocess.run([*AS_NOBODY, "env", "-i", python, "-I", "-c", code], capture_output=True, text=True, cwd="/",
                       check=False)
    return r.returncode == 0 and r.stdout.strip() == want


def _readable_copy(dest: Path) -> tuple[Path, Path]:
    src = Path(cttop.__file__).resolve().parent
    site = Path(sysconfig.get_paths()["purelib"])
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(src, dest / "src" / "cttop", ignore=ignore)
    shutil.copytree(site, dest / "site", ignore=ignore, symlinks=True)
    # A clone made under umask 077 has 0600 files: give everything to everyone to read.
    for root, dirs, files in os.walk(dest):
        for name in dirs + files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode | 0o444 | (0o111 if os.path.isdir(p) else 0))
    dest.chmod(0o755)
    return dest / "src", dest / "site"


@pytest.fixture(scope="session")
def nobody_cttop() -> Iterator[list[str]]:
    """The argv of cttop's CLI that ``nobody`` can run (prefix it with AS_NOBODY or a setpriv of your own)."""
    python = next((p for p in _candidates() if _runs_as_nobody(p)), None)
    if python is None:
        pytest.skip(f"no Python {sys.version_info.major}.{sys.version_info.minor} that uid {NOBODY_UID} can "
                    f"execute (tried {', '.join(_candidates())})")
    tmp = Path(tempfile.mkdtemp(prefix="cttop-nobody-"))
    try:
        src, site = _readable_copy(tmp)
        code = (f"import sys; sys.path[:0] = [{str(src)!r}, {str(site)!r}]; sys.argv[0] = 'cttop'; "
                "from cttop.cli import main; main()")
        # -I: neither the caller's cwd (often unreadable to nobody) nor PYTHON* variables on the path.
        yield [python, "-I", "-c", code]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
