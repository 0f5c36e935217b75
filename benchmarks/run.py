"""``python benchmarks/run.py [ROW...]``: every benchmark, measured side by side in one run.

Prints one table: each row ours against the tool it replaces (or a figure to report), the
ratio and its target. ``ROW`` names run only those rows (``--list`` shows the names); each
row is also a plain function of the module named beside it, runnable on its own. Every
server runs on 127.0.0.1 with a port the OS picks and is stopped when its row ends.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import loading
import lookup
import memory
import pytest_suite
import record_cost
import recording
import replay_speed
from harness import Row


@dataclass
class Setup:
    """What the rows share: one folder, one CA, one 10,000-interaction cassette."""

    folder: Path
    confdir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.confdir = harness.make_confdir(self.folder)

    @cached_property
    def large(self) -> tuple[Path, object]:
        """``lookup.build``'s cassette of ``lookup.LARGE`` interactions and its last request."""
        return lookup.build(self.folder, lookup.LARGE)


def pytest_rows(setup: Setup) -> list[Row]:
    """``pytest_suite.run()`` prints its own lines (each suite's seconds, fixed cost and cost
    per test); the rows: the time ratio, ours / pytest-recording in-process, then each
    tool's fixed cost and cost per test side by side."""
    result = pytest_suite.run()
    plugin, vcr = result.plugin, result.vcr
    tests = pytest_suite.TESTS
    return [
        Row(
            f"{tests} plugin tests vs pytest-recording (time)",
            f"{plugin.wall:.2f} s",
            f"{vcr.wall:.2f} s",
            result.ratio,
            f"<= {pytest_suite.TARGET}",
        ),
        Row(
            "  fixed cost: pytest start to first test answered",
            f"{plugin.first:.2f} s",
            f"{vcr.first:.2f} s",
            note="pytest's own start-up included",
        ),
        Row(
            "  cost per test",
            f"{plugin.per_test * 1000:.1f} ms",
            f"{vcr.per_test * 1000:.1f} ms",
            note=f"from the first test's end to the last's, over {tests - 1} tests",
        ),
    ]


ROWS: dict[str, Callable[[Setup], list[Row]]] = {
    "replay-vs-trivial": lambda s: [replay_speed.vs_trivial(s.folder, s.confdir)],
    "replay-vs-server-replay": lambda s: [replay_speed.vs_server_replay(s.folder, s.confdir)],
    "large-vs-small": lambda s: replay_speed.large_vs_small(s.folder, s.confdir, s.large[0]),
    "loading": lambda s: [loading.run(s.large[0])],
    "memory": lambda s: [memory.run(s.confdir, s.large[0])],
    "recording": lambda s: recording.run(s.folder, s.confdir),
    "startup": lambda s: [replay_speed.startup(s.confdir, s.large[0])],
    "pytest": pytest_rows,
    "lookup": lambda s: lookup.run(s.folder, s.large),  # type: ignore[arg-type]
    "record-cost": lambda s: record_cost.run(s.folder),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="*", metavar="ROW", help="only these rows")
    parser.add_argument("--list", action="store_true", help="list the row names and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(ROWS))
        return 0
    unknown = [name for name in args.rows if name not in ROWS]
    if unknown:
        parser.error(f"no such row: {', '.join(unknown)} (see --list)")
    print(
        f"python {platform.python_version()}, mitmproxy {version('mitmproxy')}, "
        f"vcrpy {version('vcrpy')}, {platform.machine()} {platform.system()}, "
        f"{harness.cpus()} CPUs{harness.pinning_note()}",
        flush=True,
    )
    harness.pin_client()
    start = time.monotonic()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="graph-vcr-bench-") as tmp:
        setup = Setup(Path(tmp))
        for name in args.rows or ROWS:
            print(f"  measuring {name}...", file=sys.stderr, flush=True)
            rows += ROWS[name](setup)
    harness.print_rows(rows)
    print(f"{time.monotonic() - start:.0f} s")
    return 0 if all(row.met is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
