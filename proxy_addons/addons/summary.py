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

Asked for, it also gathers the least-privilege report (``graph_permissions_report``: each
operation's least privileged scope, each token's scopes beyond what its calls needed; see
``graph/least_privilege.py``) and, when the guidance addon runs, the advice it gave
(``guidance.py``); and it writes the whole as Markdown (``graph_summary_markdown``; ``-``:
appended to ``$GITHUB_STEP_SUMMARY``, else printed). The documents themselves are built,
merged and rendered in the pure ``graph/run_summary.py`` and ``graph/summary_markdown.py``.
"""

from __future__ import annotations

import copy
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

from mitmproxy import ctx, exceptions, http
from mitmproxy.addonmanager import Loader
from rich.console import Console
from rich.table import Table
from rich.text import Text

from proxy_addons.addons import flows
from proxy_addons.addons.declared_options import declare
from proxy_addons.common import step_summary
from proxy_addons.common.answered_by import answered
from proxy_addons.common.files import replace_atomically
from proxy_addons.graph import least_privilege, run_summary, summary_markdown
from proxy_addons.graph.guidance import Advice
from proxy_addons.graph.routes import Route
from proxy_addons.graph.run_summary import COLUMNS, OTHER_ROUTE, SOURCES, column_totals
from proxy_addons.options.proxy import SUMMARY

__all__ = ["COLUMNS", "OTHER_ROUTE", "SOURCES", "Summary", "Tally", "column_totals"]
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


class Tally:
    """Everything counted so far: the routes and faults, and (when asked) who called what
    with which token and the guidance given. The summary addon feeds it from its hooks, the
    pytest plugin's proxy from its journal (``testing/session.py``)."""

    def __init__(self, *, permissions: bool = False, guidance: bool = False) -> None:
        self.counts = Counts.empty()
        self.usage = least_privilege.Usage() if permissions else None
        self.guidance = guidance  # whether the document has the guidance section
        self.advice: Counter[str] = Counter()  # the flows' advice: none without the addon
        self.advised = 0  # requests that got any advice

    def add(self, flow: http.HTTPFlow, *, has_response: bool) -> None:
        """Count ``flow`` if it is ours."""
        route = flows.route_of(flow)
        if route is None:
            return
        self.counts.add(Seen(flow.metadata, has_response, route))
        if self.usage is not None and route.operation is not None:
            authorization = flows.request_headers(flow).get("authorization")
            self.usage.add(route.operation, least_privilege.identify(authorization))
        if given := flow.metadata.get(flows.GUIDANCE):
            self.advised += 1
            self.advice.update(given)

    def copy(self) -> Tally:
        return copy.deepcopy(self)

    def document(self) -> dict[str, Any]:
        routes, faults = self.counts
        guidance = None
        if self.guidance:
            guidance = run_summary.guidance_section(self.advice, self.advised)
        return run_summary.document(routes, faults, permissions=self.usage, guidance=guidance)


def report(counts: Counts) -> dict[str, Any]:
    """The summary of what was counted: per route, per answer source, per fault kind."""
    return run_summary.document(*counts)


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
    if run_summary.PERMISSIONS in summary:
        render_permissions(summary[run_summary.PERMISSIONS], console)
    if run_summary.GUIDANCE in summary:
        render_guidance(summary[run_summary.GUIDANCE], console)


def _texts(*values: object) -> list[Text]:
    """Cells as plain text: a claim or a scope is the client's to write, never rich markup."""
    return [Text(str(value)) for value in values]


def render_permissions(report: dict[str, Any], console: Console) -> None:
    operations = Table(title="least privilege: operations called", title_justify="left")
    for column in ("operation", "calls", "least privileged scope", "higher privileged"):
        operations.add_column(column, justify="right" if column == "calls" else "left")
    for name, row in report["operations"].items():
        higher = ", ".join(row["higher_privileged"])
        operations.add_row(*_texts(name, row["calls"], row["least_privileged"], higher))
    console.print(operations)
    if not report["tokens"]:
        return
    tokens = Table(title="least privilege: tokens seen", title_justify="left")
    for column in ("token", "kind", "needed", "beyond needed", "note"):
        tokens.add_column(column)
    for token in report["tokens"]:
        needed = ", ".join(token["least_privileged"])
        tokens.add_row(
            *_texts(token["token"], token["kind"], needed, *least_privilege.beyond_and_note(token))
        )
    console.print(tokens)


def render_guidance(section: dict[str, Any], console: Console) -> None:
    table = Table(title="guidance: what Graph recommends", title_justify="left")
    for column in ("advice", "requests", "what Graph recommends"):
        table.add_column(column, justify="right" if column == "requests" else "left")
    for kind, count in section["advice"].items():
        table.add_row(*_texts(kind, count, Advice(kind).recommendation))
    console.print(table)


def check_summary_path(value: str, cassette: str | None, what: str = "summary JSON") -> None:
    """Refuse a summary path that can't be written, or whose writing would destroy data.

    Checked at start, because the summary is written at exit, when refusing is too late: a
    folder would silently get no summary, and the cassette's own path would be overwritten
    by JSON after the run that used it.
    """
    path = Path(value).expanduser()
    if path.is_dir():
        raise exceptions.OptionsError(f"{what} {value}: is a folder, not a file")
    if not path.absolute().parent.is_dir():
        raise exceptions.OptionsError(f"{what} {value}: no such folder {path.absolute().parent}")
    if cassette and path.resolve() == Path(cassette).expanduser().resolve():
        raise exceptions.OptionsError(
            f"{what} {value}: is the cassette; writing the summary would overwrite it"
        )


GUIDANCE_ADDON = "guidance"  # the guidance addon's name in mitmproxy's chain
SUMMARY_FILES = {"graph_summary_json": "summary JSON", "graph_summary_markdown": "summary Markdown"}


class Summary:
    def __init__(self) -> None:
        self.in_flight: dict[str, http.HTTPFlow] = {}  # every request still going, by id
        self.tally = Tally()  # our flows answered or failed so far

    @property
    def counts(self) -> Counts:
        return self.tally.counts

    def load(self, loader: Loader) -> None:
        declare(loader, SUMMARY)

    def configure(self, updated: set[str]) -> None:
        # graph_cassette belongs to replay and record; alone, this addon has no such option.
        cassette = ctx.options.graph_cassette if "graph_cassette" in ctx.options else None
        for name, what in SUMMARY_FILES.items():
            value = getattr(ctx.options, name)
            if not ({name, "graph_cassette"} & updated and value):
                continue
            # "-" for the Markdown: the CI job summary's file, if there is one
            path = step_summary.destination(value) if name == "graph_summary_markdown" else value
            if path is not None:
                check_summary_path(str(path), cassette, what)
        if "graph_permissions_report" in updated:
            permissions = ctx.options.graph_permissions_report
            if permissions != (self.tally.usage is not None):
                self.tally.usage = least_privilege.Usage() if permissions else None

    def running(self) -> None:
        # The guidance addon declares no option: it is on while it is in the chain (the CLI
        # puts it there with --guidance, a script with -s guidance.py).
        self.tally.guidance = ctx.master.addons.get(GUIDANCE_ADDON) is not None

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
        self.tally.add(flow, has_response=has_response)

    def summary(self) -> dict[str, Any]:
        """Every flow so far, those still in flight as they stand now."""
        tally = self.tally.copy() if self.in_flight else self.tally
        for flow in self.in_flight.values():
            tally.add(flow, has_response=False)
        return tally.document()

    def done(self) -> None:
        summary = self.summary()
        if ctx.options.graph_summary_json:
            text = json.dumps(summary, indent=2) + "\n"
            replace_atomically(Path(ctx.options.graph_summary_json).expanduser(), text.encode())
        if ctx.options.graph_summary_markdown:
            step_summary.write(
                ctx.options.graph_summary_markdown, summary_markdown.markdown(summary)
            )
        if ctx.options.graph_summary and summary["requests"]:
            render(summary, Console(file=sys.stderr, width=TABLE_WIDTH))
