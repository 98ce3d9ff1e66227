"""The compiled accelerator (``_ctdecode.c``: the decoder's message walk, the batched receive of a dump and of
events, the bounded view's digest table and a dump's flow keys; ``_records.c``: the held store's records), where
it was built (hatch_build.py) and not turned off with ``CTTOP_PURE_PYTHON=1``. Every use of it has a pure-Python
path beside it that gives the same results (tests/unit/test_decode_compiled.py, test_events_receive.py,
test_table_tally.py, test_table_records.py, tests/kernel/test_dump_paths.py), and the whole suite passes on those
paths.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import Final

from cttop.termsafe import safe_line

# What this Python expects of the extension; _ctdecode.c's API says what it offers. A checkout updated without
# building again (`pip install -e .` builds it) keeps the last build: with another API its calls would fail
# mid-view, so it is not used.
API: Final = 6


def usable(module: ModuleType | None) -> ModuleType | None:
    """``module`` if it offers this API, else None (and a line on stderr saying why)."""
    if module is None or getattr(module, "API", None) == API:
        return module
    # (The path is the install's, any bytes a directory name may hold: escaped like everything shown.)
    print(f"cttop: the compiled accelerator {safe_line(module.__file__)} is another version's (API "
          f"{safe_line(getattr(module, 'API', 1))}, not {API}): running pure Python; `pip install -e .` builds it "
          "again", file=sys.stderr)
    return None


built: ModuleType | None
try:
    from cttop.kernel import _ctdecode as built
except ImportError:  # no C compiler where it was installed: the pure-Python paths do everything
    built = None

BUILT: ModuleType | None = usable(built)
# What the kernel layer uses unless told otherwise (None: pure Python).
DEFAULT: ModuleType | None = None if os.environ.get("CTTOP_PURE_PYTHON") else BUILT
