"""Cassette lookup: vcrpy's linear scan against our index, on the same file, in one run.

    python benchmarks/lookup.py [N]

Builds an N-interaction cassette (distinct meeting ids, the documented create body with a
distinct externalAppointmentId each) and a 100-interaction one, then measures for each: the
time to load the file, and the time to find the response for the LAST request (the worst
case of a scan). vcrpy is driven directly (``Cassette.load``, ``can_play_response_for``,
``play_response``) with the ``VCR`` default matchers (method and URL parts). That spares it
the body comparison our index also makes: with vcrpy's ``body`` matcher added, each of its
lookups parses every recorded JSON body and is several times slower again.
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

from proxy_addons import cassette, examples
from proxy_addons.matching import CassetteIndex

SMALL = 100
MATCH_ON = (
    matchers.method,
    matchers.scheme,
    matchers.host,
    matchers.port,
    matchers.path,
    matchers.query,
)


def _interaction(n: int) -> tuple[Request, dict[str, Any]]:
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
    pairs = [_interaction(i) for i in range(n)]
    path = folder / f"bench-{n}.yaml"
    path.write_text(cassette.cassette_text(pairs), encoding="utf-8")
    return path, pairs[-1][0]


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def _per_call(action: Callable[[], Any], budget: float = 0.5, most: int = 20_000) -> float:
    """Mean seconds per call, calling until ``budget`` seconds or ``most`` calls."""
    calls, start = 0, time.perf_counter()
    while calls < most and (calls == 0 or time.perf_counter() - start < budget):
        action()
        calls += 1
    return (time.perf_counter() - start) / calls


def measure(path: Path, last: Request) -> dict[str, float]:
    vcr_load, tape = _timed(
        lambda: Cassette.load(path=str(path), match_on=MATCH_ON, allow_playback_repeats=True)
    )

    def vcr_lookup() -> None:
        assert tape.can_play_response_for(last)
        tape.play_response(last)

    our_load, index = _timed(lambda: CassetteIndex(cassette.load(path)))
    body = last.body

    def our_lookup() -> None:
        assert index.lookup(last.method, last.uri, body) is not None

    return {
        "vcrpy_load_s": vcr_load,
        "ours_load_s": our_load,
        "vcrpy_lookup_s": _per_call(vcr_lookup, most=50),
        "ours_lookup_s": _per_call(our_lookup),
        "size_mb": path.stat().st_size / 1e6,
    }


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


def run(n: int = 10_000) -> dict[str, Any]:
    """Measure both tools at ``n`` and at 100 interactions; print and return the numbers."""
    with tempfile.TemporaryDirectory(prefix="graph-vcr-bench-") as tmp:
        results = {size: measure(*build(Path(tmp), size)) for size in (SMALL, n)}
    big, small = results[n], results[SMALL]
    print(f"lookup benchmark: last request of a cassette, vcrpy {_vcr_version()} vs our index")
    for size, r in ((SMALL, small), (n, big)):
        print(
            f"  {size:>6} interactions ({r['size_mb']:.1f} MB): "
            f"load: vcrpy {r['vcrpy_load_s']:.2f} s, ours {r['ours_load_s']:.2f} s; "
            f"lookup: vcrpy {_ms(r['vcrpy_lookup_s'])}, ours {_ms(r['ours_lookup_s'])}, "
            f"{r['vcrpy_lookup_s'] / r['ours_lookup_s']:.0f}x"
        )
    growth_vcr = big["vcrpy_lookup_s"] / small["vcrpy_lookup_s"]
    growth_ours = big["ours_lookup_s"] / small["ours_lookup_s"]
    print(
        f"  lookup growth from {SMALL} to {n} interactions: vcrpy {growth_vcr:.0f}x, "
        f"ours {growth_ours:.1f}x"
    )
    return {
        "n": n,
        "small": small,
        "large": big,
        "growth_vcrpy": growth_vcr,
        "growth_ours": growth_ours,
    }


def _vcr_version() -> str:
    from importlib.metadata import version

    return version("vcrpy")


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
