"""A test suite through the pytest plugin vs the same suite with pytest-recording, wall time.

Forty tests, each sending the documented create with ``requests`` and checking the 201,
written twice into a temporary folder: once with the ``graph_vcr_env`` fixture (the plugin's
proxy), once with pytest-recording's in-process ``@pytest.mark.vcr``, both on the same
cassette (the bundled documented create). Each suite runs as one fresh ``python -m pytest``
process, as a developer runs it: on every CPU the benchmark was given (the plugin's proxy is
a child pytest starts, not a proxy the benchmark could put on a CPU of its own). After one
warm-up run of each (the plugin's first run in a project makes the CA once), the two run
back to back a few times, in alternating order; the figure is the median of the pairs'
ratios, which the machine's changing load affects least.

Each run also splits its time in two, from a ``conftest.py`` both suites share that notes
when each test's call phase ended (``time.monotonic()``: one clock for every process here):
the fixed cost, from starting ``python -m pytest`` to the end of the first test (pytest's
start, collection, and what each tool does once: pytest-recording imports vcrpy, the plugin
starts its proxy), and the cost per test, the time from the first test's end to the last's
over the 39 tests between.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import harness

TESTS = 40
RUNS = 5
TARGET = 1.3
ROOT = Path(__file__).resolve().parent.parent
CASSETTE = ROOT / "cassettes" / "create-virtualappointment-me.yaml"

COMMON = """\
import json
from pathlib import Path

import pytest
import requests

URL = "https://graph.microsoft.com/beta/me/onlineMeetings/MSpkYzE3Njc0Yy04MWQ5LTRhZGItYmZi/virtualAppointment"
HEADERS = {"Content-Type": "application/json"}
BODY = json.dumps({
    "@odata.type": "#microsoft.graph.virtualAppointment",
    "settings": {"@odata.type": "microsoft.graph.virtualAppointmentSettings",
                 "allowClientToJoinUsingBrowser": "true"},
    "appointmentClients": [{"@odata.type": "microsoft.graph.virtualAppointmentUser",
                            "emailAddress": "gradya@contoso.com", "displayName": "Grady Archie",
                            "smsCapablePhoneNumber": "123-456-7890"}],
    "externalAppointmentId": "AAMkADKnAAA=",
    "externalAppointmentUrl": "https://anyschedulingsystem.com/api/appointments/MkADKnAAA=",
})
CASSETTES = Path(__file__).parent / "cassettes"
"""

PLUGIN = """
pytestmark = pytest.mark.graph_vcr(cassette="create.yaml")


@pytest.fixture(scope="module")
def graph_vcr_cassette_dir():
    return CASSETTES
"""

VCR = """
pytestmark = [pytest.mark.vcr, pytest.mark.default_cassette("create.yaml")]


@pytest.fixture(scope="module")
def vcr_cassette_dir():
    return str(CASSETTES)
"""

TEST = """

def test_create_{n:02d}({fixture}):
    response = requests.put(URL, data=BODY, headers=HEADERS, timeout=30)
    assert response.status_code == 201
    assert response.json()["id"] == "0c7fda79-ff00-f57f-37e3-28183b6d09b5"
"""


# Shared by both suites: when each test's call phase ended, for the fixed and per-test costs.
CLOCK = """\
import json
import time
from pathlib import Path

ENDS = []


def pytest_runtest_logreport(report):
    if report.when == "call":
        ENDS.append(time.monotonic())


def pytest_sessionfinish(session):
    Path(__file__).with_name("clock.json").write_text(json.dumps(ENDS))
"""


@dataclass(frozen=True)
class Run:
    """One ``python -m pytest`` of a suite: its wall time, the fixed cost and the per-test cost."""

    wall: float  # seconds
    first: float  # seconds from starting pytest to the end of the first test
    per_test: float  # seconds a test, first test's end to the last's


def write_suite(folder: Path, header: str, fixture: str) -> Path:
    """A self-contained project: its own rootdir (so its own pytest cache) and cassette."""
    (folder / "cassettes").mkdir(parents=True)
    shutil.copy(CASSETTE, folder / "cassettes" / "create.yaml")
    (folder / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (folder / "conftest.py").write_text(CLOCK, encoding="utf-8")
    tests = "".join(TEST.format(n=n, fixture=fixture) for n in range(TESTS))
    (folder / "test_create.py").write_text(COMMON + header + tests, encoding="utf-8")
    return folder


def timed(folder: Path) -> Run:
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    elapsed = time.monotonic() - start
    if result.returncode != 0 or f"{TESTS} passed" not in result.stdout:
        raise RuntimeError(f"suite in {folder} failed:\n{result.stdout}\n{result.stderr}")
    ends = json.loads((folder / "clock.json").read_text(encoding="utf-8"))
    return Run(elapsed, ends[0] - start, (ends[-1] - ends[0]) / (len(ends) - 1))


@dataclass(frozen=True)
class Result:
    """The medians of the pairs: the time ratio, and each tool's wall, fixed and per-test."""

    ratio: float
    plugin: Run
    vcr: Run


def medians(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.wall for r in runs),
        statistics.median(r.first for r in runs),
        statistics.median(r.per_test for r in runs),
    )


def describe(run: Run) -> str:
    per_test = run.per_test * 1000
    return f"{run.wall:.2f} s (first test after {run.first:.2f} s, then {per_test:.1f} ms a test)"


def run() -> Result:
    with harness.every_cpu(), tempfile.TemporaryDirectory(prefix="graph-vcr-bench-") as tmp:
        ours = write_suite(Path(tmp) / "plugin", PLUGIN, "graph_vcr_env")
        theirs = write_suite(Path(tmp) / "vcr", VCR, "")
        timed(ours), timed(theirs)  # warm-up: our CA is made once per project
        pairs: list[tuple[Run, Run]] = []
        for n in range(RUNS):  # back to back, the order alternating: load hits both alike
            if n % 2:
                mine, vcr = timed(ours), timed(theirs)
            else:
                vcr, mine = timed(theirs), timed(ours)
            pairs.append((mine, vcr))
    result = Result(
        statistics.median(m.wall / v.wall for m, v in pairs),
        medians([m for m, _ in pairs]),
        medians([v for _, v in pairs]),
    )
    print(f"pytest suite: {TESTS} tests replaying the documented create, one python -m pytest each")
    print(f"  pytest-recording (in-process vcr marker): {describe(result.vcr)}")
    print(f"  graph-vcr-proxy plugin:                   {describe(result.plugin)}")
    print(f"  ratio {result.ratio:.2f}x (median of {RUNS} pairs; target <= {TARGET}x)")
    return result


if __name__ == "__main__":
    run()
