"""Cassette lookup: vcrpy's linear scan against our index, on the same files, in one process.

    python benchmarks/lookup.py [N]

Builds an N-interaction cassette (distinct meeting ids, the documented create body with a
distinct externalAppointmentId each) and a 100-interaction one, loads each with both tools,
then times finding the response for the LAST request (the worst case of a scan). vcrpy is
driven directly (``Cassette.load``, ``can_play_response_for``, ``play_response``) with the
``VCR`` default matchers (method and URL parts). That spares it the body comparison our
index also makes: with vcrpy's ``body`` matcher added, each of its lookups parses every
recorded JSON body and is several times slower again. Loading is timed apart, each load in
a fresh interpreter (``loading.py``).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vcr import matchers
from vcr.cassette import Cassette
from vcr.request import Request

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Row, print_rows

from proxy_addons.cassette import cassette, examples
from proxy_addons.cassette.matching import CassetteIndex

SMALL = 100
LARGE = 10_000
MATCH_ON = (
    matchers.method,
    matchers.scheme,
    matchers.host,
    matchers.port,
    matchers.path,
    matchers.query,
)


def interaction(n: int) -> tuple[Request, dict[str, Any]]:
    """The n-th interaction of a generated cassette: its own meeting id and bodies."""
    url = examples.ME_URL.replace(examples.MEETING_ID, f"MSpkYzE3Njc0Yy04MWQ5-{n:08d}")
    request, response = examples.documented_interaction(url)
    body = json.loads(examples.REQUEST_BODY)
    body["externalAppointmentId"] = f"AAMkADKnAAA-{n}"
    request.body = json.dumps(body, indent=4)
    answer = json.loads(examples.RESPONSE_BODY)
    answer["externalAppointmentId"] = body["externalAppointmentId"]
    answer["id"] = f"0c7fda79-ff00-f57f-37e3-{n:012d}"
    response["body"]["string"] = json.dumps(answer, indent=4)
    return request, response


def build(folder: Path, n: int) -> tuple[Path, Request]:
    """An n-interaction cassette and the last request in it."""
    pairs = [interaction(i) for i in range(n)]
    path = folder / f"bench-{n}.yaml"
    path.write_text(cassette.cassette_text(pairs), encoding="utf-8")
    return path, pairs[-1][0]


def _per_call(action: Callable[[], Any], budget: float = 0.5, most: int = 20_000) -> float:
    """Mean seconds per call, calling until ``budget`` seconds or ``most`` calls."""
    calls, start = 0, time.perf_counter()
    while calls < most and (calls == 0 or time.perf_counter() - start < budget):
        action()
        calls += 1
    return (time.perf_counter() - start) / calls


def vcrpy_lookup(path: Path, last: Request) -> float:
    """Seconds per vcrpy lookup of ``last`` in the cassette at ``path``."""
    tape = Cassette.load(path=str(path), match_on=MATCH_ON, allow_playback_repeats=True)

    def lookup() -> None:
        assert tape.can_play_response_for(last)
        tape.play_response(last)

    return _per_call(lookup, most=50)


def our_lookup(path: Path, last: Request) -> float:
    """Seconds per lookup of ``last`` in our index of the cassette at ``path``."""
    index = CassetteIndex(cassette.load(path), allow_repeats=True)  # as vcrpy's above
    body = last.body

    def lookup() -> None:
        assert index.lookup(last.method, last.uri, body) is not None

    return _per_call(lookup)


def measure(path: Path, last: Request) -> tuple[float, float]:
    """Seconds per lookup of ``last``: vcrpy's, ours (each tool's cassette freed after)."""
    return vcrpy_lookup(path, last), our_lookup(path, last)


def _time(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.1f} ms"


def run(folder: Path, large: tuple[Path, Request] | None = None) -> list[Row]:
    """The lookup rows: the last of ``LARGE`` interactions (the cassette ``large`` if built
    already), and how a lookup grows from ``SMALL`` to ``LARGE``."""
    vcr_small, ours_small = measure(*build(folder, SMALL))
    vcr_large, ours_large = measure(*(large or build(folder, LARGE)))
    return [
        Row(
            f"lookup, last of {LARGE:,} interactions (time)",
            _time(ours_large),
            f"vcrpy {_time(vcr_large)}",
            note=f"{vcr_large / ours_large:,.0f}x faster",
        ),
        Row(
            f"lookup time growth, {SMALL} to {LARGE:,}",
            f"{ours_large / ours_small:.1f}x",
            f"vcrpy {vcr_large / vcr_small:.0f}x",
            note="1x: the same cost in any cassette",
        ),
    ]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="graph-vcr-bench-") as tmp:
        print_rows(run(Path(tmp)))
