"""The exit summary as GitHub-flavoured Markdown: what a CI job summary shows.

The same document the terminal table and ``--summary-json`` show (``run_summary.py``), as
GFM tables: routes by who answered (the columns that are 0 in every row left out, as the
demo's at-a-glance table does: eleven mostly empty columns read badly on a web page), the
faults injected, the least-privilege report and the guidance when the run carried them.

Every cell is escaped: a token's app id or a scope is the client's to write, and a cell
holding ``|``, a newline or HTML would break the table or the page around it.
Nothing here knows mitmproxy.
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from proxy_addons.graph.guidance import Advice
from proxy_addons.graph.least_privilege import beyond_and_note
from proxy_addons.graph.run_summary import COLUMNS, GUIDANCE, PERMISSIONS, column_totals

TITLE = "graph-vcr-proxy summary"
# The Markdown punctuation that means something inside a line (a cell never starts one, so
# "#", "-" and "+" are text there), backslash-escaped so that it shows as written.
_MARKDOWN = re.compile(r"([\\`*_\[\]|~])")
_BLANKS = re.compile(r"\s+")
LONGEST_CELL = 200  # characters


def cell(value: object) -> str:
    """``value`` as the text of one table cell: on one line, HTML and Markdown escaped."""
    text = _BLANKS.sub(" ", str(value)).strip()
    if len(text) > LONGEST_CELL:
        text = text[: LONGEST_CELL - 1] + "…"
    return _MARKDOWN.sub(r"\\\1", html.escape(text, quote=False)) or " "


def _line(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    numeric: Collection[int] = (1,),
    total: Sequence[object] | None = None,
) -> list[str]:
    """A GFM table: the ``numeric`` columns (counts) aligned right, a ``total`` row in bold."""
    align = ("---:" if i in numeric else "---" for i in range(len(header)))
    lines = [_line(cell(h) for h in header), _line(align)]
    lines += [_line(cell(v) for v in row) for row in rows]
    if total is not None:
        lines.append(_line(f"**{cell(v)}**" for v in total))
    return lines


def _routes(summary: Mapping[str, Any]) -> list[str]:
    routes = summary["routes"]
    columns = [c for c in COLUMNS if c == "requests" or any(r[c] for r in routes.values())]
    totals = column_totals(routes, columns)
    rows = [[name, *(row[c] for c in columns)] for name, row in routes.items()]
    return table(
        ["route", *columns],
        rows,
        numeric=range(1, len(columns) + 1),
        total=["total", *(totals[c] for c in columns)],
    )


def _faults(summary: Mapping[str, Any]) -> list[str]:
    if not summary.get("faults"):
        return []
    return ["", "### Faults injected", "", *table(["kind", "count"], summary["faults"].items())]


def _permissions(report: Mapping[str, Any]) -> list[str]:
    lines = ["", "### Least privilege", ""]
    operations = report.get("operations", {})
    if not operations:
        return [*lines, "No operation was called."]
    lines += table(
        ["operation", "calls", "least privileged scope", "higher privileged"],
        (
            [name, row["calls"], row["least_privileged"], ", ".join(row["higher_privileged"])]
            for name, row in operations.items()
        ),
    )
    tokens = report.get("tokens", [])
    if tokens:
        lines += ["", "Tokens seen (never the token itself: its app, tenant and a short hash):", ""]
        lines += table(
            ["token", "kind", "operations", "needed", "beyond needed", "note"],
            (
                [
                    t["token"],
                    t["kind"],
                    ", ".join(f"{op} x{n}" for op, n in t["operations"].items()),
                    ", ".join(t["least_privileged"]),
                    *beyond_and_note(t),
                ]
                for t in tokens
            ),
            numeric=(),
        )
    anonymous = report.get("without_token", {})
    if anonymous:
        calls = ", ".join(f"{op} x{n}" for op, n in anonymous.items())
        lines += ["", f"Calls without a bearer token: {cell(calls)}."]
    return lines


def _guidance(section: Mapping[str, Any]) -> list[str]:
    lines = ["", "### Guidance", ""]
    advice = section.get("advice", {})
    if not advice:
        return [*lines, "Every request did what Graph recommends."]
    rows = ([kind, count, Advice(kind).recommendation] for kind, count in advice.items())
    return [*lines, *table(["advice", "requests", "what Graph recommends"], rows)]


def markdown(summary: Mapping[str, Any], title: str = TITLE) -> str:
    """The summary as a Markdown section: a heading, then its tables."""
    lines = [f"## {cell(title)}", ""]
    if not summary.get("routes"):
        lines.append("No Graph call was seen.")
    else:
        lines += _routes(summary)
        lines += _faults(summary)
    if PERMISSIONS in summary:
        lines += _permissions(summary[PERMISSIONS])
    if GUIDANCE in summary:
        lines += _guidance(summary[GUIDANCE])
    return "\n".join(lines) + "\n"
