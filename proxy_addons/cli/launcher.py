"""Start ``graph-vcr-proxy`` as a child process and wait for it to listen.

The demo, the pytest plugin and the end-to-end tests all need a real proxy on a free
loopback port; this is the one way they get it. The child prints ``proxy listening on`` and
the CA path when ready; both are read from its stdout, which a thread keeps draining so the
child never blocks on a full pipe. A child that runs for a whole test run keeps only the last
lines of its output (``keep_lines``): enough to show why a test failed, bounded in memory.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from proxy_addons.common.control_pipe import REPLY

READY = "proxy listening on "
CA_LINE = "CA certificate: "
LONGEST_KEPT_LINE = 4000  # characters of one line kept when the output is bounded


class ProxyFailedToStart(RuntimeError):
    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # one line: the proxy's own last words, or what went wrong


@dataclass
class RunningProxy:
    url: str
    ca: Path
    process: subprocess.Popen[str]
    stdout: deque[str] = field(default_factory=deque)
    stderr: deque[str] = field(default_factory=deque)
    # The control pipe's reply lines (``control_pipe.py``), kept out of ``stdout``; None at
    # the end of the child's output.
    replies: queue.Queue[str | None] = field(default_factory=queue.Queue)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self, timeout: float = 15) -> int:
        return stop(self.process, timeout)

    def last_lines(self, count: int = 10) -> list[str]:
        """The last ``count`` lines the child wrote to stderr (its log), oldest first."""
        lines = list(self.stderr)[-count:]
        return [line.rstrip("\n") for line in lines]


def stop(process: subprocess.Popen[str], timeout: float = 15) -> int:
    """SIGTERM, as a user's Ctrl-C would, then the exit status (killed if it hangs)."""
    if process.stdin is not None:
        # A line the child died before reading stays buffered, and closing would try to
        # flush it into the broken pipe: the stop must go on all the same.
        with contextlib.suppress(OSError):
            process.stdin.close()
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(timeout)


def _drain(
    stream: IO[str],
    sink: deque[str],
    lines: queue.Queue[str | None] | None = None,
    ready: threading.Event | None = None,
    replies: queue.Queue[str | None] | None = None,
) -> None:
    """Keep what ``stream`` says in ``sink`` and, until ``ready``, hand it to ``lines``; the
    control pipe's reply lines go to ``replies`` instead, whole.

    A reply may come after the start of a line the child's other output left unended (a
    custom matcher's ``print(..., end="")`` runs there): it is found wherever it starts, and
    what came before it is kept as output."""
    bounded = sink.maxlen is not None
    for line in stream:
        if replies is not None and REPLY in line:
            line, _, reply = line.partition(REPLY)
            replies.put(reply)
            if not line:
                continue
            line += "\n"
        if bounded and len(line) > LONGEST_KEPT_LINE:
            line = line[:LONGEST_KEPT_LINE] + " [...]\n"
        sink.append(line)
        if lines is not None and (ready is None or not ready.is_set()):
            lines.put(line)
    if lines is not None:
        lines.put(None)
    if replies is not None:
        replies.put(None)


def listen_arguments(confdir: Path) -> list[str]:
    """A free loopback port and the given CA folder: how every launched proxy starts."""
    return ["--listen-host", "127.0.0.1", "--listen-port", "0", "--confdir", str(confdir)]


def command(mode: str, *args: str, confdir: Path) -> list[str]:
    return [sys.executable, "-m", "proxy_addons.cli", mode, *listen_arguments(confdir), *args]


def session_command(*args: str, confdir: Path) -> list[str]:
    """The pytest plugin's proxy, switched per test over the control endpoint (session.py)."""
    return [sys.executable, "-m", "proxy_addons.testing.child", *listen_arguments(confdir), *args]


@dataclass
class Starting:
    """A proxy child that was spawned and has not said yet where it listens."""

    process: subprocess.Popen[str]
    stdout: deque[str]
    stderr: deque[str]
    lines: queue.Queue[str | None]
    started: threading.Event = field(default_factory=threading.Event)
    replies: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def ready(self, timeout: float = 60) -> RunningProxy:
        """Wait for the two start-up lines; a child that fails (or is too slow) is stopped."""
        url = ca = None
        deadline = time.monotonic() + timeout
        try:
            while url is None or ca is None:
                try:
                    line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    message = f"no '{READY}' line within {timeout}s"
                    raise ProxyFailedToStart(message, message) from None
                if line is None:
                    self.process.wait(timeout)
                    code, said = self.process.returncode, "".join(self.stderr).strip()
                    last = said.splitlines()[-1] if said else f"exit status {code}"
                    raise ProxyFailedToStart(
                        f"proxy exited with {code}: {said}", last.removeprefix("graph-vcr-proxy: ")
                    )
                if line.startswith(READY):
                    url = line[len(READY) :].strip()
                elif line.startswith(CA_LINE):
                    ca = Path(line[len(CA_LINE) :].strip())
        except BaseException:
            stop(self.process)
            raise
        self.started.set()  # nobody reads ``lines`` any more: stop filling it,
        with contextlib.suppress(queue.Empty):  # and let go of what came in meanwhile
            while True:
                self.lines.get_nowait()
        return RunningProxy(url, ca, self.process, self.stdout, self.stderr, self.replies)


# The children whose stdin only this process may hold (``spawn(tie_stdin=True)``).
_TIED: weakref.WeakSet[subprocess.Popen[str]] = weakref.WeakSet()


def _let_go_of_tied_stdins() -> None:
    """In a child forked from this process: point its copies of the tied pipes at
    /dev/null. A fork (a test's ``multiprocessing`` helper, say) inherits every descriptor,
    and one that outlived a test run killed with -9 would hold the pipe open: the proxy
    would never read its EOF and would serve on with nobody to stop it. The descriptor
    numbers stay valid, so the file objects that name them still close cleanly."""
    for process in list(_TIED):
        if process.stdin is None:
            continue
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, process.stdin.fileno())
            os.close(devnull)


@functools.cache
def _watch_forks() -> None:
    if hasattr(os, "register_at_fork"):  # POSIX
        os.register_at_fork(after_in_child=_let_go_of_tied_stdins)


def spawn(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    tie_stdin: bool = False,
    keep_lines: int | None = None,
) -> Starting:
    """Run ``argv``, its output drained by threads so it never blocks on a full pipe.

    ``keep_lines`` bounds how many lines of each stream are kept (None: all, for a child
    that lives as long as one test).

    ``tie_stdin`` gives the child a pipe as stdin whose write end only this process holds:
    when this process ends, however it ends, the child reads EOF (the session proxy then
    stops itself); a process forked from this one lets go of its copy at once.
    """
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if tie_stdin else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Whatever bytes the child writes (a custom matcher runs there), the threads that
        # read its output must read on: one that stopped would lose every reply after.
        errors="backslashreplace",
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None and process.stderr is not None
    if tie_stdin:
        _watch_forks()
        _TIED.add(process)
    starting = Starting(process, deque(maxlen=keep_lines), deque(maxlen=keep_lines), queue.Queue())
    threading.Thread(
        target=_drain,
        args=(process.stdout, starting.stdout, starting.lines, starting.started, starting.replies),
        daemon=True,
    ).start()
    threading.Thread(target=_drain, args=(process.stderr, starting.stderr), daemon=True).start()
    return starting


def start(
    argv: Sequence[str],
    *,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    tie_stdin: bool = False,
    keep_lines: int | None = None,
) -> RunningProxy:
    """Run ``argv`` and wait for its two start-up lines; the caller stops it."""
    return spawn(argv, env=env, tie_stdin=tie_stdin, keep_lines=keep_lines).ready(timeout)


@contextmanager
def running_proxy(
    mode: str, *args: str, confdir: Path, timeout: float = 60, env: dict[str, str] | None = None
) -> Iterator[RunningProxy]:
    """A proxy in ``mode`` on a free 127.0.0.1 port; stopped when the block ends."""
    proxy = start(command(mode, *args, confdir=confdir), timeout=timeout, env=env)
    try:
        yield proxy
    finally:
        proxy.stop()
