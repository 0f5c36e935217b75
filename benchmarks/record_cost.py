"""Cost of recording one more interaction into a cassette of 100 vs 10,000 interactions.

    python benchmarks/record_cost.py

Ours: one ``CassetteWriter.append`` (lock, layout check, one write, fsync as shipped), and
the same without fsync (``--no-fsync``) to show what the fsync itself costs on this disk.
vcrpy: ``Cassette._save()`` after appending, which is how vcrpy persists: it serialises and
rewrites the whole file. Both use the same interactions (a Graph create, ~1.5 KB each).
The ratio 10,000 / 100 is the point: ~1x means O(1) per interaction, ~100x means O(n).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from vcr.cassette import Cassette
from vcr.request import Request

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Row, print_rows

from proxy_addons.cassette import cassette, examples
from proxy_addons.cassette.writer import CassetteWriter

SIZES = (100, 10_000)
APPENDS = 200  # timed appends per size, ours
VCRPY_SAVES = {100: 50, 10_000: 3}  # vcrpy's rewrites are slow at 10,000: fewer of them


def interaction(n: int) -> tuple[Request, dict]:
    request, response = examples.documented_interaction(
        examples.ME_URL.replace(examples.MEETING_ID, f"meeting-{n}")
    )
    return request, response


def prepared(folder: Path, size: int) -> Path:
    path = folder / f"c{size}.yaml"
    path.write_text(cassette.cassette_text(interaction(n) for n in range(size)))
    return path


def ours_per_append(path: Path, size: int, *, fsync: bool = True) -> float:
    writer = CassetteWriter(path, fsync=fsync)
    blocks = [cassette.interaction_yaml(*interaction(size + i)) for i in range(APPENDS)]
    writer.append(blocks[0])  # first append opens the file
    times = []
    for block in blocks[1:]:
        start = time.perf_counter()
        writer.append(block)
        times.append(time.perf_counter() - start)
    writer.close()
    return statistics.median(times)


def vcrpy_per_save(path: Path, size: int) -> float:
    vcr_cassette = Cassette.load(path=str(path), record_mode="new_episodes")
    times = []
    for i in range(VCRPY_SAVES[size]):
        vcr_cassette.append(*interaction(size + APPENDS + i))
        start = time.perf_counter()
        vcr_cassette._save(force=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.3g} ms"


def run(folder: Path) -> list[Row]:
    """Median ms per added interaction at each size, ours (with and without fsync) and
    vcrpy's, as rows."""
    ms: dict[str, float] = {}
    for size in SIZES:
        ms[f"ours_{size}"] = ours_per_append(prepared(folder, size), size) * 1e3
        ms[f"nofsync_{size}"] = ours_per_append(prepared(folder, size), size, fsync=False) * 1e3
        ms[f"vcrpy_{size}"] = vcrpy_per_save(prepared(folder, size), size) * 1e3
    small, large = SIZES

    def pair(name: str) -> str:
        return f"{_ms(ms[f'{name}_{small}'])} / {_ms(ms[f'{name}_{large}'])}"

    def growth(name: str) -> float:
        return ms[f"{name}_{large}"] / ms[f"{name}_{small}"]

    return [
        Row(
            f"record one more, into {small} / {large:,} (fsync)",
            pair("ours"),
            f"vcrpy {pair('vcrpy')}",
            note=f"growth: ours {growth('ours'):.2f}x, vcrpy {growth('vcrpy'):.0f}x",
        ),
        Row(
            f"record one more, into {small} / {large:,} (no fsync)",
            pair("nofsync"),
            "",
            note=f"growth: {growth('nofsync'):.2f}x",
        ),
    ]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="graph-vcr-record-cost-") as tmp:
        print_rows(run(Path(tmp)))
