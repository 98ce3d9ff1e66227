"""Build the compiled accelerator (src/cttop/kernel/_ctdecode.c, _records.c, _frozen.c, _counts.c, _digests.c,
_apply.c: one module) into the wheel, or in place for an editable install.

A box without a C compiler still gets a working cttop, as a pure-Python wheel: the pure-Python decoder is the
fallback, held to the same results (tests/unit/test_decode_compiled.py). scripts/setup.sh installs the compiler and checks that the
compiled one was built, so the README's commands always have it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sysconfig
import tempfile
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# One module: the decoder and receive (_ctdecode.c), the held store's records (_records.c), their frozen
# copies for the flow list (_frozen.c), a dump counted without rows (_counts.c), a bounded view's digests
# (_digests.c) and events applied to the held store (_apply.c).
SOURCES = ("src/cttop/kernel/_ctdecode.c", "src/cttop/kernel/_records.c", "src/cttop/kernel/_frozen.c",
           "src/cttop/kernel/_counts.c", "src/cttop/kernel/_digests.c", "src/cttop/kernel/_apply.c")
MODULE = "cttop/kernel/_ctdecode"


def compile_to(out: str, root: str) -> str | None:
    """Compile the extension to ``out``: None on success, else why not (one line)."""
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    cmd = [*cc, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-I" + sysconfig.get_paths()["include"],
           *(os.path.join(root, s) for s in SOURCES), "-o", out]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as e:
        return f"{cc[0]}: {e.strerror}"
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["exit " + str(done.returncode)])[-1]
    return None


class CustomBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        name = MODULE + sysconfig.get_config_var("EXT_SUFFIX")
        if version == "editable":
            out = os.path.join(self.root, "src", name)  # the editable install imports from src/
        else:
            out = os.path.join(tempfile.mkdtemp(prefix="cttop-build-"), os.path.basename(name))
        why = compile_to(out, self.root)
        if why is not None:
            self.app.display_warning(f"cttop: the compiled decoder was not built ({why}); the pure-Python one will run")
            return
        if version != "editable":
            build_data["force_include"][out] = name
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
