"""A cgroup below a user's systemd manager is the user's to name, on real cgroups and namespaces.

systemd delegates ``user@UID.service`` to the user, so an unprivileged user can make
``…/user@1000.service/app.slice/docker-<id>.scope`` with the id of a real container: cttop named the user's
namespace (and its flows) exactly as the container's, and an SRE would have blamed, or flushed, the container.
"""

from __future__ import annotations

import json
import uuid
from contextlib import ExitStack

import pytest

from tests.conftest import run_cttop
from tests.hostile import cgroup2_root, held_in

pytestmark = pytest.mark.kernel

CID = "5e" * 32  # the "victim" container's id


def test_a_users_cgroup_is_not_named_as_the_container_it_imitates() -> None:
    root = cgroup2_root()
    if root is None:
        pytest.skip("no cgroup v2")
    top = f"cttop-test-{uuid.uuid4().hex[:6]}.slice"
    with ExitStack() as stack:
        victim = stack.enter_context(held_in(root, f"{top}/docker-{CID}.scope"))
        user = stack.enter_context(held_in(root, f"{top}/user-4242.slice/user@4242.service/app.slice/"
                                                 f"docker-{CID}.scope"))
        unit = stack.enter_context(held_in(root, f"{top}/user-4242.slice/user@4242.service/app.slice/"
                                                 "nginx.service"))
        r = run_cttop("namespaces", "--json")
    assert r.returncode == 0, r.stderr
    by_pid = {ns["pid"]: ns for ns in json.loads(r.stdout)["namespaces"]}
    assert by_pid[victim]["container"] == f"docker:{CID[:12]}"
    # The user's namespaces are said as the user's, however their cgroups are named.
    assert by_pid[user]["container"] == f"user@4242.service/docker:{CID[:12]}"
    assert by_pid[user]["label"] == f"user@4242.service/docker:{CID[:12]}"
    assert by_pid[unit]["container"] == "user@4242.service/nginx.service"
