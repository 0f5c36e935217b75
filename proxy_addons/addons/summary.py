"""Addon: what the proxy did, tallied at exit: a rich table on stderr and, if asked, JSON.

Load it alone with::

    mitmdump -s proxy_addons/summary.py --set graph_summary_json=summary.json

It only reads what the other addons wrote into ``flow.metadata`` (see ``flows.py``), so it
runs after the addons whose work it reports, in the CLI as among scripts given in any order
(``chain_order.py``; the recorder marks a flow recorded, and validation attaches problems, in
their own ``response`` hooks). A flow is
counted when its response or error reaches this addon, and then forgotten: a proxy that runs
for days holds only the flows in flight, not one entry per request it ever answered. A flow
counts from the moment its request headers arrive, so one still in flight when the proxy
stops (held by a latency fault, or a slow upstream) shows as ``no-response`` instead of
vanishing. Only our Graph routes count: a flow is ours by ``flows.route_of``, the route every
addon shares, worked out when an addon first needs it (when our hooks claim the request,
after mitmproxy's own ``request`` hooks, such as ``map_remote``, had their say), so arriving
costs a flow nothing here.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from mitmproxy import ctx, exceptions, http
from mitmproxy.addonmanager import Loader
from rich.console import Console
from rich.table import Table

from proxy_addons.addons import flows
from proxy_addons.addons.declared_options import declare
from proxy_addons.common.answered_by import AnsweredBy, answered
from proxy_addons.common.files import replace_atomically
from proxy_addons.graph.routes import Operation, Route
from proxy_addons.options.proxy import SUMMARY

# The answer sources, as columns; a flow nobody answered went upstream (or got no answer).
SOURCES = tuple(AnsweredBy)
# Validation findings: "problems" are errors, "notes" what was accepted but is worth knowing.
COLUMNS = ("requests", *SOURCES, "recorded", "problems", "notes")
OTHER_ROUTE = "other"  # one of our URLs with a method Graph refuses
# Wide enough for every column's full name: a pipe or CI log has no width of its own, and
# a narrower table would cut the names down to "recor…", which could be either column.
TABLE_WIDTH = 160


class Seen(NamedTuple):
    """One of our flows as the summary counts it. (A NamedTuple: a dataclass can't be
    defined in a module that mitmproxy loads as a script.)"""

    metadata: dict[str, Any]
    has_response: bool
    route: Route


def source_of(metadata: dict[str, Any], has_response: bool) -> str:
    return str(answered(metadata.get(flows.ANSWERED_BY), has_response))


def fault_kinds(metadata: dict[str, Any]) -> list[str]:
    """Every fault kind injected into a flow, in order (a latency then the fault it allowed)."""
    kinds = metadata.get(flows.FAULTS_INJECTED) or (
        [metadata[flows.FAULT]] if metadata.get(flows.FAULT) else []
    )
    return [str(kind) for kind in kinds]


class Counts(NamedTuple):
    """What the flows counted so far add up to: per route a row of columns, and the faults."""

    routes: dict[str, Counter[str]]
    faults: Counter[str]

    @classmethod
    def empty(cls) -> Counts:
        return cls({}, Counter())

    def add(self, flow: Seen) -> None:
        metadata, route = flow.metadata, flow.route
        name = route.operation.value if route and route.operation else OTHER_ROUTE
        row = self.routes.setdefault(name, Counter())
        row["requests"] += 1
        row[source_of(metadata, flow.has_response)] += 1
        row["recorded"] += bool(metadata.get(flows.RECORDED))
        problems = flows.problems(metadata)
        notes = sum(p.severity == "note" for p in problems)
        row["problems"] += len(problems) - notes
        row["notes"] += notes
        self.faults.update(fault_kinds(metadata))

    def copy(self) -> Counts:
        return Counts({name: row.copy() for name, row in self.routes.items()}, self.faults.copy())


def column_totals(
    routes: Mapping[str, Mapping[str, int]], columns: Sequence[str]
) -> dict[str, int]:
    return {column: sum(row[column] for row in routes.values()) for column in columns}


def report(counts: Counts) -> dict[str, Any]:
    """The summary of what was counted: per route, per answer source, per fault kind."""
    order = [op.value for op in Operation] + [OTHER_ROUTE]
    routes, faults = counts
    per_route = {
        name: {column: routes[name][column] for column in COLUMNS}
        for name in sorted(routes, key=order.index)
    }
    totals = column_totals(per_route, COLUMNS)
    return {
        "requests": totals["requests"],
        "answered_by": {source: totals[source] for source in SOURCES},
        "replayed": totals[AnsweredBy.REPLAY],
        "recorded": totals["recorded"],
        "validation_problems": totals["problems"],
        "validation_notes": totals["notes"],
        "faults": dict(sorted(faults.items())),
        "routes": per_route,
    }


def render(summary: dict[str, Any], console: Console, *, counted_only: bool = False) -> None:
    """The summary as tables. ``counted_only`` leaves out the columns that are 0 in every row,
    for a reader who wants what happened at a glance (the demo): the full table is wider
    than most terminals."""
    routes = summary["routes"]
    columns = [
        column
        for column in COLUMNS
        if not counted_only or column == "requests" or any(row[column] for row in routes.values())
    ]
    table = Table(title="graph-vcr-proxy summary", title_justify="left")
    table.add_column("route")
    for column in columns:
        table.add_column(column, justify="right")
    for name, row in routes.items():
        table.add_row(name, *(str(row[c]) for c in columns))
    totals = column_totals(routes, columns)
    table.add_row("total", *(str(totals[c]) for c in columns), style="bold")
    console.print(table)
    if summary["faults"]:
        faults = Table(title="faults injected", title_justify="left")
        faults.add_column("kind")
        faults.add_column("count", justify="right")
        for kind, count in summary["faults"].items():
            faults.add_row(kind, str(count))
        console.print(faults)


def check_summary_path(value: str, cassette: str | None) -> None:
    """Refuse a summary path that can't be written, or whose writing would destroy data.

    Checked at start, because the summary is written at exit, when refusing is too late: a
    folder would silently get no summary, and the cassette's own path would be overwritten
    by JSON after the run that used it.
    """
    path = Path(value).expanduser()
    if path.is_dir():
        raise exceptions.OptionsError(f"summary JSON {value}: is a folder, not a file")
    if not path.absolute().parent.is_dir():
        raise exceptions.OptionsError(
            f"summary JSON {value}: no such folder {path.absolute().parent}"
        )
    if cassette and path.resolve() == Path(cassette).expanduser().resolve():
        raise exceptions.OptionsError(
            f"summary JSON {value}: is the cassette; writing the summary would overwrite it"
        )


class Summary:
    def __init__(self) -> None:
        self.in_flight: dict[str, http.HTTPFlow] = {}  # every request still going, by id
        self.counts = Counts.empty()  # our flows answered or failed so far

    def load(self, loader: Loader) -> None:
        declare(loader, SUMMARY)

    def configure(self, updated: set[str]) -> None:
        # graph_cassette belongs to replay and record; alone, this addon has no such option.
        if {"graph_summary_json", "graph_cassette"} & updated and ctx.options.graph_summary_json:
            cassette = ctx.options.graph_cassette if "graph_cassette" in ctx.options else None
            check_summary_path(ctx.options.graph_summary_json, cassette)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        # Not parsed here: whether it is ours is decided when the addons claim it (above).
        self.in_flight[flow.id] = flow

    def response(self, flow: http.HTTPFlow) -> None:
        self._count(flow, has_response=True)

    def error(self, flow: http.HTTPFlow) -> None:
        # Every flow arrives through requestheaders, so one that is no longer in flight and
        # has a response was counted by the response hook; nothing is written into the flow
        # to say so, since a saved flow read back (``mitmdump -r``) must count again.
        if flow.id not in self.in_flight and flow.response is not None:
            return
        self._count(flow, has_response=flow.response is not None)

    def _count(self, flow: http.HTTPFlow, *, has_response: bool) -> None:
        self.in_flight.pop(flow.id, None)
        route = flows.route_of(flow)
        if route is not None:
            self.counts.add(Seen(flow.metadata, has_response, route))

    def summary(self) -> dict[str, Any]:
        """Every flow so far, those still in flight as they stand now."""
        counts = self.counts.copy()
        for flow in self.in_flight.values():
            if (route := flows.route_of(flow)) is not None:
                counts.add(Seen(flow.metadata, False, route))
        return report(counts)

    def done(self) -> None:
        summary = self.summary()
        if ctx.options.graph_summary_json:
            text = json.dumps(summary, indent=2) + "\n"
            replace_atomically(Path(ctx.options.graph_summary_json).expanduser(), text.encode())
        if ctx.options.graph_summary and summary["requests"]:
            render(summary, Console(file=sys.stderr, width=TABLE_WIDTH))
