"""One running lab: build it, start its generators, watch them, and take it all down again.

Cleanup must happen on every way out: a normal return, an exception, Ctrl-C,
SIGTERM and SIGHUP (an SSH hang-up). :func:`exits_on_signals` turns the two
signals into an exception so ``finally`` blocks run, and :func:`signals_held`
keeps a second signal from interrupting the cleanup itself. If the lab is
killed outright, its generators die with it (parent-death signal) and
``cttop lab --cleanup TAG`` removes its namespaces.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import IO

from cttop.kernel import sysctl
from cttop.kernel.netns import NetnsSpec
from cttop.lab import topology
from cttop.lab.scenarios import Generator, Scenario
from cttop.lab.topology import Lab, LabError

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_GRACE = 2.0


class LabSignalled(BaseException):
    """SIGTERM or SIGHUP arrived; a BaseException so that nothing on the way catches it as an error."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum: int, frame: FrameType | None) -> None:
    raise LabSignalled(signum)


@contextmanager
def exits_on_signals() -> Iterator[None]:
    saved = {s: signal.signal(s, _raise) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


@contextmanager
def signals_held() -> Iterator[None]:
    """Ignore Ctrl-C, SIGTERM and SIGHUP while the body (the cleanup) runs."""
    saved = {s: signal.signal(s, signal.SIG_IGN) for s in _SIGNALS}
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


@dataclass
class _Running:
    gen: Generator
    proc: subprocess.Popen[bytes]
    stderr: IO[bytes]


class LabSession:
    def __init__(self, scenario: Scenario, seconds: float) -> None:
        self.scenario = scenario
        self.seconds = seconds
        self.lab = Lab.new()
        self.running: list[_Running] = []
        self.notes: list[str] = []  # what the person should know about the lab built, one line each
        self.max_entries = sysctl.read_int(NetnsSpec(), "nf_conntrack_max") or 0

    @property
    def router_spec(self) -> NetnsSpec:
        return NetnsSpec(name=self.lab.router)

    def start(self) -> None:
        """Build the namespaces and start the traffic; on failure the caller's :meth:`close` cleans up."""
        self.build()
        for key, value in self.scenario.router_sysctls.items():
            topology.write_proc_sys(self.lab.router, key, value)
        if self.scenario.setup is not None:
            self.scenario.setup(self.lab)
        # The generators outlive the run by a margin; the lab stops them first, their own bound is the backstop.
        gens = self.scenario.generators(self.lab, self.seconds + 5, self.max_entries)
        for gen in (g for g in gens if g.first):
            self._spawn(gen)
            # Bounded by the generator's own alarm; Ctrl-C or SIGTERM here still reaches the caller's cleanup.
            self.running[-1].proc.wait()
            if failed := self.failures():
                raise LabError("; ".join(failed))
        for gen in (g for g in gens if not g.first):
            self._spawn(gen)

    def _spawn(self, gen: Generator) -> None:
        err = tempfile.TemporaryFile()
        cmd = ["ip", "netns", "exec", self.lab.ns(gen.role), *gen.argv]
        try:
            # A session of their own: Ctrl-C in the terminal reaches the lab, which stops them in order.
            # preexec_fn is safe here: generators start before the TUI, while the lab has one thread.
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                    start_new_session=True, preexec_fn=self.child_setup(gen))
        except OSError as e:
            err.close()
            raise LabError(f"cannot start {gen.label} in {self.lab.ns(gen.role)}: {e.strerror}") from None
        self.running.append(_Running(gen, proc, err))

    def build(self) -> None:
        topology.create(self.lab)

    def teardown(self) -> None:
        topology.destroy(self.lab)

    def child_setup(self, gen: Generator) -> Callable[[], None]:
        """What a generator's child runs between fork and exec."""
        return die_with_parent

    def count(self) -> int:
        return sysctl.read_int(self.router_spec, "nf_conntrack_count") or 0

    def failures(self) -> list[str]:
        """One line for each generator that has already exited with an error."""
        out = []
        for r in self.running:
            code = r.proc.poll()
            if code is not None and code != 0:
                r.stderr.seek(0)
                lines = r.stderr.read().decode(errors="replace").strip().splitlines()
                why = lines[-1] if lines else f"exit status {code}"
                out.append(f"{r.gen.label} in {self.lab.ns(r.gen.role)} failed: {why}")
        return out

    def wait_full(self, deadline: float, poll: float = 0.05) -> float | None:
        """Seconds from now until the router's count reaches the max, or None if ``deadline`` came first."""
        start = time.monotonic()
        while time.monotonic() < deadline:
            if self.count() >= self.max_entries:
                return time.monotonic() - start
            time.sleep(poll)
        return None

    def stop_generators(self) -> None:
        for r in self.running:
            if r.proc.poll() is None:
                r.proc.terminate()
        end = time.monotonic() + STOP_GRACE
        for r in self.running:
            try:
                r.proc.wait(max(0.0, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                r.proc.kill()
                r.proc.wait()

    def close(self, keep: bool) -> None:
        """Stop every generator; unless ``keep``, delete the namespaces (and with them all the lab made)."""
        try:
            self.stop_generators()
        finally:
            for r in self.running:
                r.stderr.close()
            if not keep:
                self.teardown()


_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    # Runs in the child between fork and exec. The setting survives `ip netns exec`, which
    # execs the generator in place, so a generator dies even if the lab is SIGKILLed.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
