"""Replay against its peers on the same mitmproxy, and what a 10,000-interaction cassette costs.

    python benchmarks/replay_speed.py

Rows (each a function of its own):

- ``vs_trivial``: ``graph-vcr-proxy replay`` of the documented create against a mitmdump addon
  that answers every request with the same prebuilt 201, the same bytes replay sends
  (``trivial_201.py``): the price of everything replay does (checks, matching, fresh
  headers, the summary, the fault hook).
- ``vs_server_replay``: against mitmproxy's own ``mitmdump --server-replay FILE`` of the same
  exchange, the flow file made by mitmdump itself (``-w``) in front of our replay addon.
- ``large_vs_small``: the last request of a 10,000-interaction cassette against the only one
  of a 1-interaction cassette holding that same interaction, and the peak RSS of the proxy
  serving the large one.
- ``startup``: seconds from starting ``graph-vcr-proxy replay`` to its "proxy listening"
  line, with the bundled cassettes and with the 10,000 interactions.

Throughput is requests per second of one httpx client per proxy (keep-alive, HTTPS through
the proxy) sending the documented create one after another; the two take turns request by
request, and each ratio is the median of the rounds' ratios (``harness.race``).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import lookup
from harness import Row
from vcr.request import Request

from proxy_addons.cassette import cassette, examples
from proxy_addons.cli.launcher import running_proxy

ROUNDS = 25
REQUESTS = 60  # per round, through each, taking turns
STARTS = 3  # start-up timings per cassette
# Every race sends one recorded request thousands of times: each recorded answer answers
# once unless repeats are allowed (as ``server_replay_reuse`` does for mitmdump's).
REPEATS = ("--allow-playback-repeats",)


def one_interaction(
    folder: Path, interaction: tuple[Request, dict[str, Any]] | None = None
) -> Path:
    """A cassette of one interaction: the documented create unless told otherwise."""
    path = folder / "one.yaml"
    pair = interaction or examples.documented_interaction(examples.ME_URL)
    path.write_text(cassette.cassette_text([pair]))
    return path


def vs_trivial(folder: Path, confdir: Path) -> Row:
    one = one_interaction(folder)
    with (
        harness.ours("replay", confdir, "--cassette", str(one), *REPEATS) as ours,
        harness.mitmdump(confdir, "-s", str(harness.BENCHMARKS / "trivial_201.py")) as peer,
    ):
        mine = harness.contender("ours", ours, confdir)
        theirs = harness.contender("trivial", peer, confdir)
        ratio = harness.race(mine, theirs, rounds=ROUNDS, requests=REQUESTS)
    return harness.throughput_row(
        "replay vs a trivial addon answering 201", ratio, mine, theirs, ">= 0.95"
    )


def flow_file(folder: Path, confdir: Path, cassette_path: Path) -> Path:
    """The documented create as mitmproxy itself saves it: mitmdump ``-w`` with our replay
    addon loaded as a script, one request through it."""
    path = folder / "documented-create.mitm"
    replay_script = harness.ROOT / "proxy_addons" / "replay.py"
    with (
        harness.mitmdump(
            confdir,
            "-s",
            str(replay_script),
            "--set",
            f"graph_cassette={cassette_path}",
            "-w",
            str(path),
        ) as dump,
        harness.client(dump.url, confdir) as http,
    ):
        response = harness.create()(http)
        if response.status_code != 201:
            raise RuntimeError(f"making the flow file: {response.status_code} {response.text}")
    if not path.exists() or path.stat().st_size == 0:
        raise RuntimeError(f"mitmdump wrote no flow to {path}: {''.join(dump.output)[-2000:]}")
    return path


def vs_server_replay(folder: Path, confdir: Path) -> Row:
    one = one_interaction(folder)
    flows = flow_file(folder, confdir, one)
    with (
        harness.ours("replay", confdir, "--cassette", str(one), *REPEATS) as ours,
        harness.mitmdump(
            confdir, "--server-replay", str(flows), "--set", "server_replay_reuse=true"
        ) as peer,
    ):
        mine = harness.contender("ours", ours, confdir)
        theirs = harness.contender("server-replay", peer, confdir)
        ratio = harness.race(mine, theirs, rounds=ROUNDS, requests=REQUESTS)
    return harness.throughput_row(
        "replay vs mitmdump --server-replay", ratio, mine, theirs, ">= 1.00"
    )


def large_vs_small(folder: Path, confdir: Path, large: Path) -> list[Row]:
    """The last interaction of ``large`` (``lookup.build``'s) against a cassette holding only
    that interaction, sent the same request."""
    last_request, last_response = lookup.interaction(lookup.LARGE - 1)
    small = one_interaction(folder, (last_request, last_response))
    with (
        harness.ours("replay", confdir, "--cassette", str(large), *REPEATS) as big,
        harness.ours("replay", confdir, "--cassette", str(small), *REPEATS) as little,
    ):
        send = harness.create(last_request.uri, last_request.body)
        mine = harness.contender("10,000", big, confdir, send)
        theirs = harness.contender("1", little, confdir, send)
        ratio = harness.race(mine, theirs, rounds=ROUNDS, requests=REQUESTS)
        rss_large = harness.peak_rss_mb(big.process.pid)
        rss_small = harness.peak_rss_mb(little.process.pid)
    return [
        harness.throughput_row(
            "last of 10,000 interactions vs a 1-interaction one", ratio, mine, theirs, ">= 0.95"
        ),
        Row(
            "peak RSS replaying 10,000 interactions (vs 1)",
            f"{rss_large:.0f} MB",
            f"{rss_small:.0f} MB",
            note=f"{large.stat().st_size / 1e6:.0f} MB cassette",
        ),
    ]


def time_to_listen(confdir: Path, cassette_path: Path | None) -> float:
    args = ["--cassette", str(cassette_path)] if cassette_path else []
    start = time.perf_counter()
    with running_proxy(
        "replay", "--no-summary", *args, confdir=confdir, timeout=harness.START_TIMEOUT
    ):
        return time.perf_counter() - start


def startup(confdir: Path, large: Path) -> Row:
    bundled, big = [], []
    for _ in range(STARTS):  # alternated, like the throughput rounds
        bundled.append(time_to_listen(confdir, None))
        big.append(time_to_listen(confdir, large))
    return Row(
        'start-up to "proxy listening": bundled / 10,000',
        f"{statistics.median(bundled):.2f} s / {statistics.median(big):.2f} s",
        "",
        note=f"median of {STARTS}",
    )


def main() -> None:
    harness.pin_client()
    with tempfile.TemporaryDirectory(prefix="graph-vcr-bench-") as tmp:
        folder = Path(tmp)
        confdir = harness.make_confdir(folder)
        large, _ = lookup.build(folder, lookup.LARGE)
        rows = [
            vs_trivial(folder, confdir),
            vs_server_replay(folder, confdir),
            *large_vs_small(folder, confdir, large),
            startup(confdir, large),
        ]
    harness.print_rows(rows)


if __name__ == "__main__":
    main()
