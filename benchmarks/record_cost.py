"""Cost of recording one more interaction into a cassette of 100 vs 10,000 interactions.

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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proxy_addons import cassette, examples
from proxy_addons.cassette_writer import CassetteWriter

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


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="graph-vcr-record-cost-") as tmp:
        folder = Path(tmp)
        results: dict[str, float] = {}
        for size in SIZES:
            results[f"ours_{size}_ms"] = ours_per_append(prepared(folder, size), size) * 1e3
            results[f"ours_nofsync_{size}_ms"] = (
                ours_per_append(prepared(folder, size), size, fsync=False) * 1e3
            )
            results[f"vcrpy_{size}_ms"] = vcrpy_per_save(prepared(folder, size), size) * 1e3
    for name in ("ours", "ours_nofsync", "vcrpy"):
        results[f"{name}_ratio"] = results[f"{name}_10000_ms"] / results[f"{name}_100_ms"]
    print("record cost: one more interaction (median), cassette of 100 vs 10,000")
    print(
        f"  ours  (append + fsync): {results['ours_100_ms']:8.3f} ms vs "
        f"{results['ours_10000_ms']:8.3f} ms  ratio {results['ours_ratio']:.2f}x"
    )
    print(
        f"  ours  (append, no fsync): {results['ours_nofsync_100_ms']:6.3f} ms vs "
        f"{results['ours_nofsync_10000_ms']:8.3f} ms  ratio {results['ours_nofsync_ratio']:.2f}x"
    )
    print(
        f"  vcrpy (whole-file save): {results['vcrpy_100_ms']:7.3f} ms vs "
        f"{results['vcrpy_10000_ms']:8.3f} ms  ratio {results['vcrpy_ratio']:.1f}x"
    )
    return results


if __name__ == "__main__":
    run()
