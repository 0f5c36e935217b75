"""What every benchmark row shares: the row itself, real proxies on loopback, one client, medians.

Every contender is a real process started the way a user starts it (``graph-vcr-proxy`` for
ours, ``mitmdump`` for mitmproxy's own tools) on 127.0.0.1 with a port the OS picks, all
trusting one CA made once with mitmproxy's own ``CertStore``, and all stopped when the row
ends. Throughput is measured by one httpx client per proxy, keep-alive, HTTPS through the
proxy, the contenders taking turns request by request, so a noisy neighbour slows both
sides of a ratio alike; a row's figure is the median of its rounds.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import ssl
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

import httpx
from mitmproxy.certs import CertStore
from rich.console import Console
from rich.table import Table

from proxy_addons.cassette import examples
from proxy_addons.cli.launcher import RunningProxy, running_proxy

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = Path(__file__).resolve().parent
URL = examples.ME_URL  # the documented create: what every throughput row sends
# mitmdump's log line once a server listens, e.g. "HTTP(S) proxy listening at 127.0.0.1:4242."
_MITMDUMP_READY = re.compile(r"listening at (?:\[[^\]]+\]|[\d.]+):(\d+)")
START_TIMEOUT = 120.0
TABLE_WIDTH = 170  # a pipe or a CI log has no width: wide enough that no cell is cut


@dataclass(frozen=True)
class Row:
    """One line of the table: what was measured, ours against the peer, and the target.

    ``ratio`` is throughput ours/peer when the target reads ``>=``, time ours/peer when it
    reads ``<=``; rows that only report a figure have no ratio.
    """

    name: str
    ours: str
    peer: str
    ratio: float | None = None
    target: str = "report"
    note: str = ""
    # A bound on ours alone as well, whatever the peer's figure (the memory row's 150 MB,
    # which its note states: the target column holds the ratio's).
    ours_value: float | None = None
    ours_most: float | None = None

    @property
    def met(self) -> bool | None:
        if self.ratio is None or self.target == "report":
            return None
        op, bound = self.target.split()
        met = self.ratio >= float(bound) if op == ">=" else self.ratio <= float(bound)
        if self.ours_most is not None:
            met = met and self.ours_value is not None and self.ours_value <= self.ours_most
        return met


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


# --- CPUs -----------------------------------------------------------------------------------
# With two CPUs or more, the client (and the upstream server) run on the first and every
# proxy and timed child on the last: the one under measurement never fights the client for
# a CPU, and the two contenders of a row take turns on the same one.


def cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


def _cpu_sets() -> tuple[set[int], set[int]] | None:
    if not hasattr(os, "sched_setaffinity") or cpus() < 2:
        return None
    allowed = sorted(os.sched_getaffinity(0))
    return {allowed[0]}, {allowed[-1]}


_SETS = _cpu_sets()
_EVERY = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def pinning_note() -> str:
    if _SETS is None:
        return ", not pinned"
    client, proxy = _SETS
    return f", client on CPU {min(client)}, proxies on CPU {min(proxy)}"


def pin_client() -> None:
    if _SETS is not None:
        os.sched_setaffinity(0, _SETS[0])


@contextlib.contextmanager
def every_cpu() -> Iterator[None]:
    """Processes started inside run on every CPU the benchmark was given, as a developer's
    run does: for a row whose measured proxy is a child the measured tool starts itself
    (the pytest plugin's), which pinning to the client's CPU would make fight the client."""
    if _EVERY is None:
        yield
        return
    pinned = os.sched_getaffinity(0)
    os.sched_setaffinity(0, _EVERY)
    try:
        yield
    finally:
        os.sched_setaffinity(0, pinned)


def pin_proxy(pid: int) -> None:
    """Every thread of the process, on the proxies' CPU."""
    if _SETS is None:
        return
    for thread in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            os.sched_setaffinity(int(thread.name), _SETS[1])


def make_confdir(folder: Path) -> Path:
    """A mitmproxy confdir whose CA exists before any proxy starts: proxies started side by
    side would otherwise each generate one, and overwrite each other's."""
    confdir = folder / "confdir"
    confdir.mkdir(exist_ok=True)
    CertStore.from_store(confdir, "mitmproxy", 2048)
    return confdir


def mitmdump_path() -> str:
    script = Path(sys.executable).with_name("mitmdump")
    if not script.exists():
        raise SystemExit(f"no mitmdump beside {sys.executable}: install the project first")
    return str(script)


@dataclass
class Mitmdump:
    url: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid


def _drain(stream: IO[str], sink: list[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        sink.append(line)
        lines.put(line)
    lines.put(None)


@contextlib.contextmanager
def mitmdump(confdir: Path, *args: str) -> Iterator[Mitmdump]:
    """``mitmdump ARGS`` on 127.0.0.1, a free port, lazy connections and no per-flow output
    (``flow_detail=0``: ours prints nothing per flow either); stopped when the block ends."""
    command = [
        mitmdump_path(),
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        "0",
        "--set",
        f"confdir={confdir}",
        "--set",
        "connection_strategy=lazy",
        "--set",
        "flow_detail=0",
        "--set",
        "termlog_verbosity=info",
        *args,
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    )
    assert process.stdout is not None
    output: list[str] = []
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_drain, args=(process.stdout, output, lines), daemon=True).start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        port = None
        while port is None:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                raise RuntimeError(f"mitmdump {' '.join(args)} exited: {''.join(output)}")
            found = _MITMDUMP_READY.search(line)
            port = int(found.group(1)) if found else None
        pin_proxy(process.pid)
        yield Mitmdump(f"http://127.0.0.1:{port}", process, output)
    finally:
        stop(process)


@contextlib.contextmanager
def ours(mode: str, confdir: Path, *args: str) -> Iterator[RunningProxy]:
    """``graph-vcr-proxy MODE ARGS`` as a user runs it, the exit summary off."""
    with running_proxy(mode, "--no-summary", *args, confdir=confdir, timeout=START_TIMEOUT) as p:
        pin_proxy(p.process.pid)
        yield p


def stop(process: subprocess.Popen[str], timeout: float = 15) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size so far (Linux ``VmHWM``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def client(proxy_url: str, confdir: Path) -> httpx.Client:
    """The client of every throughput row: httpx, keep-alive, HTTPS through the proxy."""
    verify = ssl.create_default_context(cafile=str(confdir / "mitmproxy-ca-cert.pem"))
    return httpx.Client(proxy=proxy_url, verify=verify, timeout=30)


Send = Callable[[httpx.Client], httpx.Response]


def create(url: str = URL, body: bytes = examples.REQUEST_BODY.encode()) -> Send:
    """A create as the client sends it each time: the documented one unless told otherwise."""
    headers = {**examples.REQUEST_HEADERS, "Authorization": "Bearer benchmark"}

    def send(http: httpx.Client) -> httpx.Response:
        return http.put(url, content=body, headers=headers)

    return send


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far, from ``/proc/PID/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Contender:
    """One proxy under measurement: its client, what it is sent, and its rounds so far.

    Besides requests per second, each round notes the proxy's own CPU time: what explains
    a ratio, and what a busy machine changes less than it changes the clock.
    """

    name: str
    http: httpx.Client
    send: Send
    pid: int
    expect: int = 201
    rates: list[float] = field(default_factory=list)  # requests per second, each round
    cpu: list[float] = field(default_factory=list)  # seconds of proxy CPU, each round
    requests: int = 0  # in all rounds

    def one(self) -> float:
        """Send one request; the seconds until its whole answer was read."""
        start = time.perf_counter()
        response = self.send(self.http)
        elapsed = time.perf_counter() - start
        if response.status_code != self.expect:
            raise RuntimeError(
                f"{self.name}: expected {self.expect}, got {response.status_code}: "
                f"{response.text[:300]}"
            )
        return elapsed

    @property
    def rate(self) -> float:
        return median(self.rates)

    @property
    def cpu_per_request(self) -> float:
        """Over all rounds: the kernel counts CPU time in ticks, too coarse for one round."""
        return sum(self.cpu) / self.requests


class Proxy(Protocol):
    url: str
    process: subprocess.Popen[str]


def contender(name: str, proxy: Proxy, confdir: Path, send: Send | None = None) -> Contender:
    """A contender sending ``send`` (the documented create) through ``proxy``."""
    return Contender(name, client(proxy.url, confdir), send or create(), proxy.process.pid)


def cpu_note(ours: Contender, peer: Contender) -> str:
    return f"CPU/request {ours.cpu_per_request * 1e6:,.0f} vs {peer.cpu_per_request * 1e6:,.0f} µs"


WARMUP = 30  # requests each contender gets before the rounds: connection, TLS, caches


def race(ours: Contender, peer: Contender, *, rounds: int, requests: int) -> float:
    """Throughput ours / peer: the median, over ``rounds``, of each round's ratio.

    Within a round the two take turns request by request (who goes first alternates), and
    each one's rate is its requests over the time they took: both halves of a ratio are
    measured in the same moments, so a burst of load from elsewhere slows both alike, and
    a round it hits unevenly anyway is outvoted by the others.
    """
    pair = (ours, peer)
    for _ in range(WARMUP):
        for contender in pair:
            contender.one()
    for _ in range(rounds):
        spent = [0.0, 0.0]
        cpu = [cpu_seconds(c.pid) for c in pair]
        for n in range(requests):
            for i in (0, 1) if n % 2 == 0 else (1, 0):
                spent[i] += pair[i].one()
        for i, contender in enumerate(pair):
            contender.rates.append(requests / spent[i])
            contender.cpu.append(cpu_seconds(contender.pid) - cpu[i])
            contender.requests += requests
    return median([a / b for a, b in zip(ours.rates, peer.rates, strict=True)])


def throughput_row(
    name: str, ratio: float, ours: Contender, peer: Contender, target: str = "report"
) -> Row:
    """The row of a :func:`race`: both rates, the ratio, and each side's CPU per request."""
    return Row(name, rate(ours.rate), rate(peer.rate), ratio, target, cpu_note(ours, peer))


def rate(value: float) -> str:
    return f"{value:,.0f} req/s"


def seconds(value: float) -> str:
    return f"{value:.2f} s"


def time_child(code: str, *args: str) -> float:
    """Run ``code`` with ``args`` in a fresh interpreter on the proxies' CPU; it prints the
    seconds it measured as its last line."""
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    pin_proxy(process.pid)
    out, err = process.communicate(timeout=START_TIMEOUT)
    if process.returncode != 0:
        raise RuntimeError(f"child failed: {err.strip()[-2000:]}")
    return float(out.strip().splitlines()[-1])


def print_rows(rows: Sequence[Row], title: str = "graph-vcr-proxy benchmarks") -> None:
    """The rows as one table: figures, ratio, target and whether it is met."""
    table = Table(title=title, title_justify="left")
    for column in ("row", "ours", "peer", "ratio", "target", "met", "note"):
        table.add_column(column, justify="right" if column in ("ratio", "met") else "left")
    for row in rows:
        met = {True: "yes", False: "NO", None: ""}[row.met]
        ratio = "" if row.ratio is None else f"{row.ratio:.3f}"
        table.add_row(row.name, row.ours, row.peer, ratio, row.target, met, row.note)
    Console(width=TABLE_WIDTH).print(table)
