"""Addon: what the proxy did, tallied at exit: a rich table on stderr and, if asked, JSON.

Load it alone with::

    mitmdump -s proxy_addons/summary.py --set graph_summary_json=summary.json

It only reads what the other addons wrote into ``flow.metadata`` (see ``flows.py``). The
recorder marks a flow recorded, and validation attaches problems, in hooks that may run after
this addon's, so each flow's metadata is kept and tallied at ``done`` (a small dict per
flow, not the flow and its bodies). Only our Graph routes count.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from mitmproxy import ctx, exceptions, http
from mitmproxy.addonmanager import Loader
from rich.console import Console
from rich.table import Table

from proxy_addons import flows
from proxy_addons.routes import Operation

# The answer sources, as columns; a flow nobody answered went upstream (or got no answer).
SOURCES = ("replay", "emulator", "upstream", "fault", "check", "no-response")
# Validation findings: "problems" are errors, "notes" what was accepted but is worth knowing.
COLUMNS = ("requests", *SOURCES, "recorded", "problems", "notes")
OTHER_ROUTE = "other"  # one of our URLs with a method Graph refuses


def source_of(metadata: dict[str, Any], has_response: bool) -> str:
    by = metadata.get(flows.ANSWERED_BY)
    if by:
        return str(by)
    return "upstream" if has_response else "no-response"


def tally(seen: list[tuple[dict[str, Any], bool]]) -> dict[str, Any]:
    """The summary of every flow seen: per route, per answer source, per fault kind."""
    order = [op.value for op in Operation] + [OTHER_ROUTE]
    routes: dict[str, Counter[str]] = {}
    faults: Counter[str] = Counter()
    for metadata, has_response in seen:
        route = metadata.get(flows.ROUTE)
        name = route.operation.value if route and route.operation else OTHER_ROUTE
        row = routes.setdefault(name, Counter())
        row["requests"] += 1
        row[source_of(metadata, has_response)] += 1
        row["recorded"] += bool(metadata.get(flows.RECORDED))
        problems = metadata.get(flows.PROBLEMS) or ()
        notes = sum(getattr(p, "severity", "error") == "note" for p in problems)
        row["problems"] += len(problems) - notes
        row["notes"] += notes
        kinds = metadata.get(flows.FAULTS_INJECTED) or (
            [metadata[flows.FAULT]] if metadata.get(flows.FAULT) else []
        )
        faults.update(str(kind) for kind in kinds)
    per_route = {
        name: {column: routes[name][column] for column in COLUMNS}
        for name in sorted(routes, key=order.index)
    }
    totals = {column: sum(row[column] for row in per_route.values()) for column in COLUMNS}
    return {
        "requests": totals["requests"],
        "answered_by": {source: totals[source] for source in SOURCES},
        "replayed": totals["replay"],
        "recorded": totals["recorded"],
        "validation_problems": totals["problems"],
        "validation_notes": totals["notes"],
        "faults": dict(sorted(faults.items())),
        "routes": per_route,
    }


def render(summary: dict[str, Any], console: Console) -> None:
    table = Table(title="graph-vcr-proxy summary", title_justify="left")
    table.add_column("route")
    for column in COLUMNS:
        table.add_column(column, justify="right")
    for name, row in summary["routes"].items():
        table.add_row(name, *(str(row[c]) for c in COLUMNS))
    totals = [summary["requests"], *summary["answered_by"].values()]
    totals += [summary["recorded"], summary["validation_problems"], summary["validation_notes"]]
    table.add_row("total", *(str(n) for n in totals), style="bold")
    console.print(table)
    if summary["faults"]:
        faults = Table(title="faults injected", title_justify="left")
        faults.add_column("kind")
        faults.add_column("count", justify="right")
        for kind, count in summary["faults"].items():
            faults.add_row(kind, str(count))
        console.print(faults)


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    """Readers never see half a file: write beside it, then rename over it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Summary:
    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, Any], bool]] = []
        self._ids: set[str] = set()

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "graph_summary", bool, True, "Print a summary table of the Graph calls at exit."
        )
        loader.add_option(
            "graph_summary_json", str, "", "Also write the exit summary as JSON to this file."
        )

    def configure(self, updated: set[str]) -> None:
        if "graph_summary_json" in updated and ctx.options.graph_summary_json:
            parent = Path(ctx.options.graph_summary_json).expanduser().absolute().parent
            if not parent.is_dir():
                raise exceptions.OptionsError(
                    f"summary JSON {ctx.options.graph_summary_json}: no such folder {parent}"
                )

    def _see(self, flow: http.HTTPFlow) -> None:
        if flow.id in self._ids or flows.route_of(flow) is None:
            return
        self._ids.add(flow.id)
        self.seen.append((flow.metadata, flow.response is not None))

    def response(self, flow: http.HTTPFlow) -> None:
        self._see(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._see(flow)

    def summary(self) -> dict[str, Any]:
        return tally(self.seen)

    def done(self) -> None:
        summary = self.summary()
        if ctx.options.graph_summary_json:
            write_json_atomically(Path(ctx.options.graph_summary_json).expanduser(), summary)
        if ctx.options.graph_summary and summary["requests"]:
            render(summary, Console(file=sys.stderr, width=120))


addons = [Summary()]
