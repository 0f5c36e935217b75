"""Recording against mitmdump saving the same traffic, both forwarding to one local upstream.

    python benchmarks/recording.py

Ours: ``graph-vcr-proxy record --record-mode once --upstream http://127.0.0.1:PORT`` into a
new cassette (validation, redaction, each interaction on disk before the client gets its
answer), with ``--no-fsync`` for the ratio (mitmdump does not fsync either) and as shipped,
fsync'd, for a second row. The peer: ``mitmdump -w FILE`` with mitmproxy's own
``--map-remote`` sending the same Graph URL to the same upstream (``upstream_server.py``),
writing every flow to its flow file. The client sends the documented create; the ratio is
throughput, ours / mitmdump's, median of alternating rounds.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import Contender, Row

from proxy_addons.cassette import cassette

ROUNDS = 25
REQUESTS = 40  # per round, through each


@contextlib.contextmanager
def upstream() -> Iterator[str]:
    """``upstream_server.py`` on a free loopback port, stopped after; its base URL."""
    script = harness.BENCHMARKS / "upstream_server.py"
    process = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=harness.ROOT
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"upstream server did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[-1])}"
    finally:
        harness.stop(process)


def race(folder: Path, confdir: Path, *, fsync: bool) -> tuple[float, Contender, Contender]:
    """Ours (with or without fsync) against mitmdump -w, both forwarding to one upstream."""
    name = "fsync" if fsync else "nofsync"
    cassette_path, flows = folder / f"recorded-{name}.yaml", folder / f"recorded-{name}.mitm"
    args = ["--cassette", str(cassette_path), "--record-mode", "once"]
    with upstream() as base:
        graph = r"|https://graph\.microsoft\.com/|"
        with (
            harness.ours(
                "record", confdir, *args, "--upstream", base, *([] if fsync else ["--no-fsync"])
            ) as ours,
            harness.mitmdump(confdir, "--map-remote", f"{graph}{base}/", "-w", str(flows)) as peer,
        ):
            mine = harness.contender("ours", ours, confdir)
            theirs = harness.contender("mitmdump -w", peer, confdir)
            ratio = harness.race(mine, theirs, rounds=ROUNDS, requests=REQUESTS)
    recorded = len(cassette.load(cassette_path))
    if recorded != mine.requests + harness.WARMUP:
        raise RuntimeError(f"recorded {recorded} of {mine.requests + harness.WARMUP} requests")
    return ratio, mine, theirs


def run(folder: Path, confdir: Path) -> list[Row]:
    """The row with a target compares like with like: neither side fsyncs (mitmdump -w
    can't). The second row reports what recording as shipped (each interaction fsync'd
    before the client gets its answer) costs against the same peer."""
    ratio, mine, theirs = race(folder, confdir, fsync=False)
    durable, durable_mine, durable_theirs = race(folder, confdir, fsync=True)
    return [
        harness.throughput_row(
            "recording (--no-fsync) vs mitmdump -w", ratio, mine, theirs, ">= 0.90"
        ),
        harness.throughput_row(
            "recording as shipped (fsync) vs mitmdump -w", durable, durable_mine, durable_theirs
        ),
    ]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="graph-vcr-bench-") as tmp:
        folder = Path(tmp)
        harness.pin_client()
        harness.print_rows(run(folder, harness.make_confdir(folder)))
