"""A test suite through the pytest plugin vs the same suite with pytest-recording, wall time.

Forty tests, each sending the documented create with ``requests`` and checking the 201,
written twice into a temporary folder: once with the ``graph_vcr_env`` fixture (the plugin's
proxy), once with pytest-recording's in-process ``@pytest.mark.vcr``, both on the same
cassette (the bundled documented create). Each suite runs as one fresh ``python -m pytest``
process, as a developer runs it. After one warm-up run of each (the plugin's first run in a
project makes the CA once), the two run back to back a few times, in alternating order; the
figure is the median of the pairs' ratios, which the machine's changing load affects least.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = 40
RUNS = 5
TARGET = 1.5
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


def write_suite(folder: Path, header: str, fixture: str) -> Path:
    """A self-contained project: its own rootdir (so its own pytest cache) and cassette."""
    (folder / "cassettes").mkdir(parents=True)
    shutil.copy(CASSETTE, folder / "cassettes" / "create.yaml")
    (folder / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    tests = "".join(TEST.format(n=n, fixture=fixture) for n in range(TESTS))
    (folder / "test_create.py").write_text(COMMON + header + tests, encoding="utf-8")
    return folder


def wall_time(folder: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0 or f"{TESTS} passed" not in result.stdout:
        raise RuntimeError(f"suite in {folder} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def run() -> float:
    with tempfile.TemporaryDirectory(prefix="graph-vcr-bench-") as tmp:
        ours = write_suite(Path(tmp) / "plugin", PLUGIN, "graph_vcr_env")
        theirs = write_suite(Path(tmp) / "vcr", VCR, "")
        wall_time(ours), wall_time(theirs)  # warm-up: our CA is made once per project
        pairs: list[tuple[float, float]] = []
        for n in range(RUNS):  # back to back, the order alternating: load hits both alike
            if n % 2:
                mine, vcr = wall_time(ours), wall_time(theirs)
            else:
                vcr, mine = wall_time(theirs), wall_time(ours)
            pairs.append((mine, vcr))
    ratio = statistics.median(m / v for m, v in pairs)
    mine = statistics.median(m for m, _ in pairs)
    vcr = statistics.median(v for _, v in pairs)
    print(f"pytest suite: {TESTS} tests replaying the documented create, one python -m pytest each")
    print(
        f"  pytest-recording (in-process vcr marker): {vcr:.2f} s; graph-vcr-proxy plugin: "
        f"{mine:.2f} s; ratio {ratio:.2f}x (median of {RUNS} pairs; target <= {TARGET}x)"
    )
    return ratio


if __name__ == "__main__":
    run()
