"""Run a module's every test twice: with the compiled accelerator (kernel/_ctdecode.c, _records.c) and with its
pure-Python references (CTTOP_PURE_PYTHON's choice), which must answer the same.

A module opts in with ``from tests.accelerated import accelerator`` (the fixture is autouse there).
"""

from __future__ import annotations

import pytest

from cttop.kernel import native


@pytest.fixture(autouse=True, params=["compiled", "pure"])
def accelerator(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The compiled accelerator's types and functions, or their Python references."""
    assert native.BUILT is not None, "the accelerator was not built: scripts/setup.sh builds it"
    monkeypatch.setattr(native, "DEFAULT", native.BUILT if request.param == "compiled" else None)
    return str(request.param)
