"""Loading a 10,000-interaction cassette: ours against vcrpy's ``Cassette.load``, same file.

    python benchmarks/loading.py

Ours is everything replay does before it can answer: ``cassette.load`` (vcrpy's YAML
serializer and ``Request``s, every interaction's shape checked by the pydantic model) and
building the ``CassetteIndex``. vcrpy's is ``Cassette.load(path=...)``, everything it does
before it can answer. Each load runs alone in a fresh interpreter, as it does in a proxy
or a test process, with imports done before the clock starts; the two alternate. The time
is the loading process's CPU time (user + system: what the load costs; on an idle machine
the same as the clock, and unlike the clock not stretched by other processes), the median
of its rounds; the ratio is ours / vcrpy's.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import lookup
from harness import Row

ROUNDS = 3

OURS = """
import sys, time
from proxy_addons.cassette import cassette
from proxy_addons.cassette.matching import CassetteIndex
start = time.process_time()
index = CassetteIndex(cassette.load(sys.argv[1]))
print(time.process_time() - start)
"""
VCRPY = """
import sys, time
from vcr.cassette import Cassette
start = time.process_time()
tape = Cassette.load(path=sys.argv[1])
print(time.process_time() - start)
"""


def run(large: Path) -> Row:
    ours: list[float] = []
    vcrpy: list[float] = []
    for _ in range(ROUNDS):
        ours.append(harness.time_child(OURS, str(large)))
        vcrpy.append(harness.time_child(VCRPY, str(large)))
    mine, theirs = statistics.median(ours), statistics.median(vcrpy)
    return Row(
        f"loading {lookup.LARGE:,} interactions vs vcrpy's",
        harness.seconds(mine),
        harness.seconds(theirs),
        mine / theirs,
        "<= 0.50",
        note=f"CPU time, {large.stat().st_size / 1e6:.0f} MB file, {ROUNDS} fresh processes",
    )


if __name__ == "__main__":
    harness.pin_client()
    with tempfile.TemporaryDirectory(prefix="graph-vcr-bench-") as tmp:
        path, _ = lookup.build(Path(tmp), lookup.LARGE)
        harness.print_rows([run(path)])
