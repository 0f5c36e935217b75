"""The pytest side of the session proxy: start it once, switch it per test, read its journal.

Only the standard library: the pytest process never imports mitmproxy (half a second it
would pay before the first test). The proxy child (``session.py``) starts on first use; a
test then costs one ``PUT /session`` to switch it, and one ``GET /calls`` at its end for the
journal, both sent over the child's stdin and answered on its stdout (``control_pipe.py``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from proxy_addons.cli import launcher
from proxy_addons.common import control_pipe
from proxy_addons.common.control_address import (
    CALLS_PATH,
    FAULTS_PATH,
    PLAYED_PATH,
    SESSION_PATH,
)
from proxy_addons.testing import call_assertions
from proxy_addons.testing.call_assertions import Recorded, Selector
from proxy_addons.testing.journal import Call, calls_from_json
from proxy_addons.testing.vcr_settings import Plan

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock, as mitmproxy itself has none
    fcntl = None  # type: ignore[assignment]

CA_KEY = "mitmproxy-ca.pem"  # the file mitmproxy writes last when it makes a CA
LOG_LINES = 200  # the child's last lines kept, for a failing test to show (bounded memory)
TAIL_LINES = 10  # how many of them a failing test shows


class ProxyError(RuntimeError):
    """The proxy failed or refused; ``str()`` is one line naming the cause."""


@contextlib.contextmanager
def ca_lock(confdir: Path) -> Iterator[None]:
    """Held while a proxy may be creating the CA in ``confdir``: two xdist workers starting
    at once would each write a different CA, and one worker's clients would trust the other's.
    Once the CA exists, no lock is needed."""
    if fcntl is None or (confdir / CA_KEY).exists() or (confdir.exists() and not confdir.is_dir()):
        yield  # (a confdir that is a file: the proxy itself refuses it, in one line)
        return
    confdir.mkdir(parents=True, exist_ok=True)
    with open(confdir / ".graph-vcr-proxy.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class PipeControl:
    """Requests to the child's control handlers over its stdin and stdout (``control_pipe``):
    no HTTP, no mitmproxy flow, so about a millisecond less of the child's CPU each.

    One request at a time: the replies come on one queue, and a thread waiting for its own
    would drop another's (a test's threads reading ``calls`` at once each waited out the
    timeout). Over HTTP each had its own connection; here the lock is what they share."""

    def __init__(self, running: launcher.RunningProxy, timeout: float = 60) -> None:
        self.running = running
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._one_at_a_time = threading.Lock()

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON answer; an error answer raises ProxyError with its message."""
        with self._one_at_a_time:
            status, data = self._exchange(method, path, body)
        try:
            answer = json.loads(data)
        except ValueError:
            raise ProxyError(f"graph-vcr-proxy: control endpoint answered {status}") from None
        if status >= 400:
            message = answer.get("error", {}).get("message", status)
            raise ProxyError(f"graph-vcr-proxy: {message}")
        return answer

    def _exchange(self, method: str, path: str, body: Any) -> tuple[int, str]:
        request_id = next(self._ids)
        stdin = self.running.process.stdin
        try:
            assert stdin is not None
            stdin.write(control_pipe.request_line(request_id, method, path, body))
            stdin.flush()
        except (OSError, ValueError, AssertionError) as exc:  # the child is gone
            raise ProxyError(f"graph-vcr-proxy: no answer from the proxy: {exc}") from None
        return self._reply(request_id)

    def _reply(self, request_id: int) -> tuple[int, str]:
        """The reply to ``request_id``; replies to earlier requests that timed out are
        dropped on the way."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                line = self.running.replies.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise ProxyError(
                    f"graph-vcr-proxy: no answer from the proxy within {self.timeout}s"
                ) from None
            if line is None:
                self.running.replies.put(None)  # every later request fails at once too
                raise ProxyError("graph-vcr-proxy: no answer from the proxy: it has exited")
            try:
                answered, status, data = control_pipe.parse_reply(line)
            except ValueError:
                continue
            if answered == request_id:
                return status, data


class SessionProxy:
    """One session proxy child: started on first use, switched per test, stopped at the end.

    A child that fails to start is not tried again: every test that needs it fails at once
    with the same line, instead of each waiting for its own failure.
    """

    def __init__(
        self, confdir: Path, start_args: tuple[str, ...] = (), timeout: float = 60, *, root: Path
    ):
        self.confdir = confdir
        self.start_args = start_args
        self.root = root  # the only folder the child reads and writes files in
        self.timeout = timeout
        self.running: launcher.RunningProxy | None = None
        self.control: PipeControl | None = None
        self.failure: str | None = None

    def _argv(self) -> list[str]:
        root = ("--session-root", str(self.root))
        return launcher.session_command(*self.start_args, *root, confdir=self.confdir)

    def ensure_started(self) -> launcher.RunningProxy:
        if self.failure is not None:
            raise ProxyError(self.failure)
        if self.running is not None and self.running.process.poll() is None:
            return self.running
        if self.running is not None:
            self.stop()  # a child that died since: start another
        try:
            with ca_lock(self.confdir):
                self.running = launcher.start(
                    self._argv(),
                    timeout=self.timeout,
                    tie_stdin=True,
                    keep_lines=LOG_LINES,
                    env=importable_here(),
                )
        except launcher.ProxyFailedToStart as exc:
            self.failure = f"graph-vcr-proxy could not start: {exc.reason}"
            raise ProxyError(self.failure) from None
        except OSError as exc:  # no Python to run, say
            self.failure = f"graph-vcr-proxy could not start: {exc}"
            raise ProxyError(self.failure) from None
        self.control = PipeControl(self.running, self.timeout)
        return self.running

    def switch(self, plan: Plan) -> launcher.RunningProxy:
        """Make the proxy serve ``plan`` with fresh state; raises ProxyError if it refuses."""
        running = self.ensure_started()
        assert self.control is not None
        body: dict[str, Any] = {"mode": plan.mode, "args": list(plan.args)}
        if plan.missing_cassette_ok:
            body["missing_cassette_ok"] = True
        self.control.request("PUT", SESSION_PATH, body)
        return running

    def log_tail(self, count: int = TAIL_LINES) -> list[str]:
        """The child's last lines of log (empty if it is not running)."""
        return self.running.last_lines(count) if self.running is not None else []

    def calls(self) -> tuple[Call, ...]:
        return calls_from_json(self._control().request("GET", CALLS_PATH)["calls"])

    def unplayed(self) -> tuple[Recorded, ...]:
        answer = self._control().request("GET", PLAYED_PATH)["unplayed"]
        return tuple(Recorded.from_json(item) for item in answer)

    def add_faults(self, specs: list[str]) -> None:
        self._control().request("POST", FAULTS_PATH, specs)

    def clear_faults(self) -> None:
        self._control().request("DELETE", FAULTS_PATH)

    def _control(self) -> PipeControl:
        if self.control is None or self.running is None or self.running.process.poll() is not None:
            raise ProxyError("graph-vcr-proxy: the proxy is not running (stopped or crashed)")
        return self.control

    def stop(self) -> None:
        self.control = None
        if self.running is not None:
            self.running.stop()
            self.running = None


def importable_here() -> dict[str, str]:
    """``PYTHONPATH`` for the child, so that what imports here by name imports there: a
    custom matcher in a conftest or test module (``graph_vcr`` key ``matchers``) is handed
    over as ``module:qualname``, and pytest put that module's folder on this process's
    ``sys.path`` at collection (its default "prepend" import mode), before any test started
    the child. The interpreter's own folders come with the interpreter and are left out."""
    own = tuple(str(Path(p).resolve()) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix})
    added = [
        p for p in sys.path if p and Path(p).is_dir() and not str(Path(p).resolve()).startswith(own)
    ]
    given = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths = list(dict.fromkeys([*given, *added]))
    return {"PYTHONPATH": os.pathsep.join(paths)} if paths else {}


def session_root(rootdir: Path, cassette_dir: Path) -> Path:
    """The folder a test's proxy may read and write files in: the run's root folder, or the
    test's cassette folder when a ``graph_vcr_cassette_dir`` override puts it elsewhere."""
    if cassette_dir.resolve().is_relative_to(rootdir.resolve()):
        return rootdir
    cassette_dir.mkdir(parents=True, exist_ok=True)  # the child's root must be a folder
    return cassette_dir


class GraphVcrProxy:
    """What a test gets from the ``graph_vcr_proxy`` fixture: where the proxy is, what it
    serves, and the journal of this test's Graph calls."""

    def __init__(self, proxy: SessionProxy, running: launcher.RunningProxy, plan: Plan) -> None:
        self._proxy = proxy
        self.url = running.url
        self.ca = running.ca
        self.process = running.process
        self.mode = plan.mode
        self.cassette = plan.cassette
        self.record_mode = plan.record_mode

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def stopped(self) -> bool:
        """Whether ``stop()`` was called (a crashed proxy is not stopped, it is gone)."""
        return self._proxy.running is None

    @property
    def calls(self) -> tuple[Call, ...]:
        """This test's Graph requests so far, oldest first (read fresh on each access)."""
        return self._proxy.calls()

    @property
    def unplayed(self) -> tuple[Recorded, ...]:
        """The cassette's recorded interactions this test has not played (read fresh)."""
        return self._proxy.unplayed()

    # --- assertions (the rules: call_assertions.py); each fails listing the calls ---------

    def assert_called(
        self,
        target: str | Selector | None = None,
        *,
        times: int | None = None,
        method: str | None = None,
        json: Any = None,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        """``target`` (an operation, or a URL path pattern starting with ``/``) was called, at
        least once or exactly ``times`` times, with this method, JSON subset and headers."""
        __tracebackhide__ = True
        if times is not None and (isinstance(times, bool) or not isinstance(times, int)):
            raise TypeError(f"times must be an integer or None, not {times!r}")
        if times is not None and times < 0:
            raise ValueError(f"times must be 0 or more, not {times}")
        wanted = call_assertions.selector(target, method=method, json=json, headers=headers)
        _holds(call_assertions.called_failure(self.calls, wanted, times))

    def assert_not_called(
        self,
        target: str | Selector | None = None,
        *,
        method: str | None = None,
        json: Any = None,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        """No call matched (the criteria as :meth:`assert_called`'s)."""
        __tracebackhide__ = True
        unwanted = call_assertions.selector(target, method=method, json=json, headers=headers)
        _holds(call_assertions.not_called_failure(self.calls, unwanted))

    def assert_called_in_order(
        self, targets: Sequence[str | Selector], *, exact: bool = False
    ) -> None:
        """These calls happened in this order, others possibly between them; ``exact``: the
        test's calls are exactly these, in this order."""
        __tracebackhide__ = True
        if isinstance(targets, str):
            raise TypeError("assert_called_in_order takes a list of operations or Selectors")
        wanted = [call_assertions.selector(t) for t in targets]
        _holds(call_assertions.in_order_failure(self.calls, wanted, exact))

    def assert_writes_conditional(self) -> None:
        """Every PUT, PATCH and DELETE carried ``If-Match``."""
        __tracebackhide__ = True
        _holds(call_assertions.unconditional_writes_failure(self.calls))

    def assert_all_played(self) -> None:
        """Every recorded interaction of the cassette was played (vcrpy's ``all_played``)."""
        __tracebackhide__ = True
        unplayed = self.unplayed
        _holds(call_assertions.unplayed_failure(unplayed, self.calls if unplayed else ()))

    def log_tail(self, count: int = TAIL_LINES) -> list[str]:
        """The proxy child's last lines of log (shared by every test the child served)."""
        return self._proxy.log_tail(count)

    def add_fault(self, *specs: str) -> None:
        """Add fault rules (``KIND[:key=value,...]``) after the current ones, for this test."""
        self._proxy.add_faults(list(specs))

    def clear_faults(self) -> None:
        """Remove every fault rule, the marker's included."""
        self._proxy.clear_faults()

    def stop(self) -> None:
        """Stop the proxy now; the next test that needs one starts it again."""
        self._proxy.stop()


def _holds(failure: str | None) -> None:
    __tracebackhide__ = True
    if failure is not None:
        raise AssertionError(failure)
