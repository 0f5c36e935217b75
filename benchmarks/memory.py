"""Memory: the peak RSS of a replay proxy serving a 10,000-interaction cassette, against
vcrpy's loading the same file.

    python benchmarks/memory.py

Ours is ``graph-vcr-proxy replay --cassette FILE`` as a user starts it, once it has loaded
the file and answered requests from it: one for each of :data:`SPREAD` interactions across
the cassette (each response is parsed when first played), the last one :data:`REPEATS`
times more, and one request it has no recording of (the miss explanation scans every
recorded request). vcrpy's is ``Cassette.load(path=...)`` in a fresh interpreter, all it
does before it can answer. Both are the kernel's high-water mark of the process's resident
set (``VmHWM``), imports included: everything a worker holding the cassette costs. The
targets: at most half of vcrpy's, and at most :data:`MOST_MB` whatever vcrpy's is.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import lookup
from harness import Row
from replay_speed import REPEATS as ALLOW_REPEATS

SPREAD = 100
REPEATS = 50
MOST_MB = 150.0
TARGET = 0.5

VCRPY = """
import sys
from vcr.cassette import Cassette
tape = Cassette.load(path=sys.argv[1])
assert len(tape) > 0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(int(line.split()[1]) / 1024)
"""


def vcrpy_peak_mb(path: Path) -> float:
    """vcrpy's peak loading ``path``, in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", VCRPY, str(path)],
        capture_output=True,
        text=True,
        cwd=harness.ROOT,
        timeout=harness.START_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"vcrpy's load failed: {done.stderr.strip()[-2000:]}")
    return float(done.stdout.split()[-1])


def replay_peak_mb(confdir: Path, path: Path, count: int) -> float:
    """The peak of a replay proxy of ``path`` (``count`` interactions, ``lookup.build``'s)
    that has answered from it."""
    with (
        harness.ours("replay", confdir, "--cassette", str(path), *ALLOW_REPEATS) as proxy,
        harness.client(proxy.url, confdir) as http,
    ):
        step = max(1, count // SPREAD)
        for n in [*range(0, count, step), *[count - 1] * REPEATS]:
            request, _ = lookup.interaction(n)
            response = harness.create(request.uri, request.body)(http)
            if response.status_code != 201:
                raise RuntimeError(f"interaction {n}: {response.status_code} {response.text}")
        missed = harness.create(harness.URL + "?unrecorded=1")(http)
        if missed.status_code != 501:
            raise RuntimeError(f"expected a miss, got {missed.status_code}: {missed.text}")
        return harness.peak_rss_mb(proxy.process.pid)


def run(confdir: Path, large: Path) -> Row:
    ours = replay_peak_mb(confdir, large, lookup.LARGE)
    theirs = vcrpy_peak_mb(large)
    return Row(
        f"peak RSS replaying {lookup.LARGE:,} vs vcrpy loading them",
        f"{ours:.0f} MB",
        f"{theirs:.0f} MB",
        ours / theirs,
        f"<= {TARGET:.2f}",
        note=f"and ours <= {MOST_MB:.0f} MB; {large.stat().st_size / 1e6:.0f} MB cassette",
        ours_value=ours,
        ours_most=MOST_MB,
    )


if __name__ == "__main__":
    harness.pin_client()
    with tempfile.TemporaryDirectory(prefix="graph-vcr-bench-") as tmp:
        folder = Path(tmp)
        path, _ = lookup.build(folder, lookup.LARGE)
        harness.print_rows([run(harness.make_confdir(folder), path)])
