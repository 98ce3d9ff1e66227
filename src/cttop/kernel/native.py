"""The compiled accelerator (``_ctdecode.c``: the decoder's message walk and a dump's batched receive), where it
was built (hatch_build.py) and not turned off with ``CTTOP_PURE_PYTHON=1``. Every use of it has a pure-Python
path beside it that gives the same results (tests/unit/test_decode_compiled.py, tests/kernel/test_dump_paths.py).
"""

from __future__ import annotations

import os
from types import ModuleType

try:
    from cttop.kernel import _ctdecode as built
except ImportError:  # no C compiler where it was installed: the pure-Python paths do everything
    built = None

BUILT: ModuleType | None = built
# What the kernel layer uses unless told otherwise (None: pure Python).
DEFAULT: ModuleType | None = None if os.environ.get("CTTOP_PURE_PYTHON") else BUILT
