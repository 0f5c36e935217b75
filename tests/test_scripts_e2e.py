"""Every ``mitmdump`` line the README, the docs and the docstrings show, run as a user runs
it; and our scripts two by two in both orders, where a fault fires first whichever comes first.

Each run is a real ``mitmdump`` (this environment's) on 127.0.0.1 with a port the OS picks and a
throwaway confdir, started in a temporary folder that holds the checkout's ``proxy_addons`` and
``cassettes`` (so the documented relative paths work and what a line writes lands there), with
a real client trusting the CA it generated. Nothing goes to the internet: an upstream a line
names on 127.0.0.1 is replaced by a local stand-in, and a line that answers no Graph request
itself is probed with a request to a local server.
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import queue
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from helpers import documented_graph

from proxy_addons.cassette import examples

ROOT = Path(__file__).resolve().parent.parent
MITMDUMP = Path(sys.executable).with_name("mitmdump")
LISTENING = re.compile(r"listening at (?:http://)?\[?([\d.:a-f]+)\]?:(\d+)")
OUR_SCRIPT = re.compile(r"-s\s+proxy_addons/(\w+\.py)")
LOCAL_UPSTREAM = re.compile(r"graph_upstream=http://127\.0\.0\.1:\d+")
HEADERS = {**examples.REQUEST_HEADERS, "Authorization": "Bearer test-token"}
LOCAL_LISTEN = ("--listen-host", "127.0.0.1", "--listen-port", "0", "--set", "flow_detail=0")
MODE_SCRIPTS = frozenset({"replay.py", "record.py", "emulator.py"})

# Documented mitmdump lines that run no script of ours: mitmproxy's own tools, named where the
# docs say how our addons relate to them. A new one must be added here, or it fails below.
NOT_OURS = {
    "mitmdump -s": "names the option, not a command line",
    "mitmdump -w": "mitmproxy's own flow saving, named",
    "mitmdump -w FILE": "mitmproxy's own flow saving, named",
    "mitmdump -nr FILE": "mitmproxy's own flow reading, named",
    "mitmdump -w session.mitm --set hardump=session.har": "plain mitmproxy capture (no addon)",
    "mitmdump -s benchmarks/trivial_201.py": "the benchmark's peer (benchmarks/, run there)",
    "mitmdump --server-replay FILE --set server_replay_reuse=true": "the benchmark's peer",
    "mitmdump -w FILE --map-remote "
    "'\\|https://graph\\.microsoft\\.com/\\|http://127.0.0.1:PORT/'": "the benchmark's peer",
}


# --- the documented lines -----------------------------------------------------------------


def command_lines(text: str) -> list[str]:
    """The ``mitmdump`` command lines in a text: code lines (continued by a trailing
    backslash) that start with it, and code spans (``\\`...\\```, across a line break too)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [line.strip() for line in joined.splitlines() if line.strip().startswith("mitmdump ")]
    spans = re.findall(r"`+(mitmdump [^`]*)`+", text)
    return [shlex.join(shlex.split(line, comments=True)) for line in [*lines, *spans]]


def docstrings(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        documented = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
        if isinstance(node, documented) and (doc := ast.get_docstring(node)) is not None:
            yield doc


def documented_lines() -> list[str]:
    found: list[str] = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        found += command_lines(page.read_text())
    for path in sorted((ROOT / "proxy_addons").rglob("*.py")):
        for doc in docstrings(path):
            found += command_lines(doc)
    return list(dict.fromkeys(found))


DOCUMENTED_LINES = documented_lines()
OURS = [line for line in DOCUMENTED_LINES if OUR_SCRIPT.search(line)]


def test_every_documented_mitmdump_line_is_run_here_or_named_as_not_ours():
    assert set(DOCUMENTED_LINES) - set(OURS) == set(NOT_OURS)
    assert len(OURS) >= 6  # the README's and each addon module's own


# --- running one ------------------------------------------------------------------------------


class Mitmdump:
    """A running mitmdump: its address, the CA its clients trust, and what it printed."""

    def __init__(self, process: subprocess.Popen[str], ca: Path) -> None:
        self.process = process
        self.ca = ca
        self.port = 0
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.process.stdout:  # type: ignore[union-attr]
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 60) -> re.Match[str]:
        """The first line from now on that matches; an AssertionError if mitmdump exits."""
        while True:
            line = self._lines.get(timeout=timeout)
            if line is None:
                status = self.process.wait(10)
                raise AssertionError(f"mitmdump exited with {status}:\n{''.join(self.output)}")
            self.output.append(line)
            if found := pattern.search(line):
                return found

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> httpx.Client:
        verify = ssl.create_default_context(cafile=str(self.ca))
        return httpx.Client(proxy=self.url, verify=verify, timeout=30)

    def stop(self) -> int:
        """SIGTERM, as a user's Ctrl-C or service manager stops it; its exit status."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError("mitmdump did not stop on SIGTERM") from None


def run_in(folder: Path) -> dict[str, str]:
    """Put the checkout's ``proxy_addons`` and ``cassettes`` in ``folder``; the environment
    that imports this checkout's package."""
    for name in ("proxy_addons", "cassettes"):
        (folder / name).symlink_to(ROOT / name, target_is_directory=True)
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


def command(argv: Sequence[str], folder: Path) -> list[str]:
    return [str(MITMDUMP), *argv, *LOCAL_LISTEN, "--set", f"confdir={folder / 'confdir'}"]


@contextmanager
def mitmdump(argv: list[str], folder: Path) -> Iterator[Mitmdump]:
    """``mitmdump ARGV`` run in ``folder`` on 127.0.0.1, once it listens."""
    process = subprocess.Popen(
        command(argv, folder),
        cwd=folder,
        env=run_in(folder),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    running = Mitmdump(process, folder / "confdir" / "mitmproxy-ca-cert.pem")
    try:
        running.port = int(running.wait_for(LISTENING).group(2))
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def create(client: httpx.Client, base: str = examples.GRAPH_BETA) -> httpx.Response:
    url = examples.ME_URL.replace(examples.GRAPH_BETA, base)
    return client.put(url, content=examples.REQUEST_BODY, headers=HEADERS)


def argv_of(line: str, upstream: str) -> list[str]:
    """A documented line's arguments, its local upstream pointed at the test's stand-in."""
    return shlex.split(LOCAL_UPSTREAM.sub(f"graph_upstream={upstream}", line))[1:]


def expected_status(line: str) -> int:
    """What the line's proxy answers a documented create with: a fault that fires on the
    first request, else the mode's 201 (replay's, the recorder's upstream, the emulator)."""
    if "graph_faults=" in line:
        spec = re.search(r"graph_faults=(\S+)", line).group(1)  # type: ignore[union-attr]
        assert spec.startswith("throttle:"), f"no probe for the fault {spec!r}"
        return 429
    return 201


@pytest.mark.parametrize("line", OURS, ids=[re.sub(r"\W+", "_", line)[9:70] for line in OURS])
def test_the_documented_line_starts_serves_one_of_our_requests_and_stops(line, tmp_path):
    scripts = set(OUR_SCRIPT.findall(line))
    with documented_graph() as upstream, mitmdump(argv_of(line, upstream), tmp_path) as proxy:
        if "--mode reverse:" in line:  # the emulator as Graph itself, over plain HTTP
            with httpx.Client(timeout=30) as client:
                response = create(client, f"{proxy.url}/beta")
            expected = 201
        elif scripts & MODE_SCRIPTS or "graph_faults=" in line:
            with proxy.client() as client:
                response = create(client)
            expected = expected_status(line)
        else:  # nothing of ours answers Graph here: other traffic passes, untouched
            with proxy.client() as client:
                response = client.get(f"{upstream}/elsewhere")
            expected = 200
        status = proxy.stop()
    output = "".join(proxy.output)
    assert (response.status_code, status) == (expected, 0), output
    if expected == 201 and "record.py" in scripts:
        cassette = re.search(r"graph_cassette=(\S+)", line).group(1)  # type: ignore[union-attr]
        assert "virtualAppointment" in (tmp_path / cassette).read_text()
    elif expected == 201 and "replay.py" in scripts:
        assert response.json() == json.loads(examples.RESPONSE_BODY)


# --- our scripts two by two ---------------------------------------------------------------

SCRIPTS = (
    "fault_injection.py",
    "replay.py",
    "record.py",
    "emulator.py",
    "unreachable_upstream.py",
    "summary.py",
    "web_tags.py",
)
# Each pair with the fault injector, in both orders; once each, the pairs of scripts that bring
# the same addon or two modes (test_script_chain.py holds every pair in both orders in-process,
# and the last test below all of them at once).
WITH_FAULTS = [pair for pair in itertools.permutations(SCRIPTS, 2) if "fault_injection.py" in pair]
SHARING = ("replay.py", "record.py", "emulator.py", "unreachable_upstream.py")
OTHERS = list(itertools.combinations(SHARING, 2))


def pair_ids(pairs: Sequence[tuple[str, str]]) -> list[str]:
    return [f"{a}+{b}" for a, b in pairs]


def run_args(order: Sequence[str], upstream: str, folder: Path) -> list[str]:
    """These scripts in this order, with a fault for the first request (where the fault
    injector is one of them) and a recorder that records from the local stand-in. Beside
    replay, which reads the same ``graph_cassette``, the recorder's cassette holds the
    documented create already, added to (replay refuses a cassette that does not exist)."""
    argv = [arg for name in order for arg in ("-s", f"proxy_addons/{name}")]
    if "fault_injection.py" in order:
        argv += ["--set", "graph_faults=throttle:times=1"]
    if "record.py" in order:
        argv += ["--set", "graph_cassette=rec.yaml", "--set", f"graph_upstream={upstream}"]
        if "replay.py" in order:
            argv += ["--set", "graph_record_mode=new_episodes"]
            shutil.copy(
                ROOT / "cassettes" / "create-virtualappointment-me.yaml", folder / "rec.yaml"
            )
    return argv


@pytest.mark.parametrize(("first", "second"), WITH_FAULTS, ids=pair_ids(WITH_FAULTS))
def test_a_fault_fires_first_whichever_order_the_scripts_come_in(first, second, tmp_path):
    with (
        documented_graph() as upstream,
        mitmdump(run_args([first, second], upstream, tmp_path), tmp_path) as proxy,
        proxy.client() as client,
    ):
        faulted = create(client)
        answered = create(client) if {first, second} & MODE_SCRIPTS else None
        status = proxy.stop()
    assert (faulted.status_code, status) == (429, 0), "".join(proxy.output)
    assert answered is None or answered.status_code == 201


@pytest.mark.parametrize(("first", "second"), OTHERS, ids=pair_ids(OTHERS))
def test_two_scripts_bringing_the_same_addon_or_two_modes_start_answer_and_stop(
    first, second, tmp_path
):
    with (
        documented_graph() as upstream,
        mitmdump(run_args([second, first], upstream, tmp_path), tmp_path) as proxy,
        proxy.client() as client,
    ):
        response = create(client)
        status = proxy.stop()
    assert (response.status_code, status) == (201, 0), "".join(proxy.output)


def test_all_scripts_in_reverse_order_answer_in_the_documented_order(tmp_path):
    with (
        documented_graph() as upstream,
        mitmdump(run_args(SCRIPTS[::-1], upstream, tmp_path), tmp_path) as proxy,
        proxy.client() as client,
    ):
        answers = [create(client).status_code for _ in range(2)]
        status = proxy.stop()
    assert (answers, status) == ([429, 201], 0), "".join(proxy.output)


def test_an_option_a_script_refuses_is_one_error_and_mitmdump_exits_at_start(tmp_path):
    argv = ["-s", "proxy_addons/fault_injection.py", "--set", "graph_faults=bogus"]
    result = subprocess.run(
        command(argv, tmp_path),
        cwd=tmp_path,
        env=run_in(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "unknown fault kind 'bogus'" in result.stdout + result.stderr


def test_a_script_reloaded_by_mitmdump_comes_back_fresh_and_the_others_stay(tmp_path):
    """mitmdump reloads a script whose file changes: here a copy of the fault injector's, beside
    replay. Its throttle fires once again (a fresh rule); replay answers as before."""
    (tmp_path / "mine").mkdir()
    copy = tmp_path / "mine" / "fault_injection.py"
    shutil.copy(ROOT / "proxy_addons" / "fault_injection.py", copy)
    argv = ["-s", "proxy_addons/replay.py", "-s", str(copy)]
    argv += ["--set", "graph_faults=throttle:times=1", "--set", "graph_allow_playback_repeats=true"]
    with mitmdump(argv, tmp_path) as proxy, proxy.client() as client:
        before = [create(client).status_code for _ in range(2)]
        mtime = copy.stat().st_mtime + 5
        os.utime(copy, (mtime, mtime))
        proxy.wait_for(re.compile(r"Loading script .*mine/fault_injection\.py"))
        proxy.wait_for(re.compile(r"fault rules: throttle:times=1"))
        after = [create(client).status_code for _ in range(2)]
        status = proxy.stop()
    assert (before, after, status) == ([429, 201], [429, 201], 0), "".join(proxy.output)
