"""The exit summary as a document: per route a row of counts by who answered, the faults,
and when asked the least-privilege report and the guidance; and several merged into one.

The summary addon (``addons/summary.py``) counts flows into it; ``--summary-json`` writes it,
``--summary-markdown`` renders it (``summary_markdown.py``); the pytest plugin merges its
proxies' (one per pytest-xdist worker, and any a test started for itself) into one for the
whole run. A plain JSON document, so that it crosses processes as it is written to a file.
Nothing here knows mitmproxy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.graph.guidance import Advice
from proxy_addons.graph.least_privilege import Usage
from proxy_addons.graph.routes import Operation

# The answer sources, as columns; a flow nobody answered went upstream (or got no answer).
SOURCES = tuple(AnsweredBy)
# Validation findings: "problems" are errors, "notes" what was accepted but is worth knowing.
COLUMNS = ("requests", *SOURCES, "recorded", "problems", "notes")
OTHER_ROUTE = "other"  # one of our URLs with a method Graph refuses
ROUTE_ORDER = (*(op.value for op in Operation), OTHER_ROUTE)
PERMISSIONS = "permissions"  # the document's key of the least-privilege report, when asked
GUIDANCE = "guidance"  # and of the guidance


def column_totals(
    routes: Mapping[str, Mapping[str, int]], columns: Sequence[str]
) -> dict[str, int]:
    return {column: sum(row.get(column, 0) for row in routes.values()) for column in columns}


def guidance_section(advice: Counter[str], advised: int) -> dict[str, Any]:
    """How many requests got advice, and how often each :class:`Advice`."""
    return {
        "requests_advised": advised,
        "advice": {str(kind): advice[kind] for kind in Advice if advice[kind]},
    }


def document(
    routes: Mapping[str, Mapping[str, int]],
    faults: Mapping[str, int],
    *,
    permissions: Usage | None = None,
    guidance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary of what was counted: per route, per answer source, per fault kind; the
    least-privilege report and the guidance only when they were asked for."""
    per_route = {
        name: {column: routes[name].get(column, 0) for column in COLUMNS}
        for name in sorted(routes, key=ROUTE_ORDER.index)
    }
    totals = column_totals(per_route, COLUMNS)
    summary: dict[str, Any] = {
        "requests": totals["requests"],
        "answered_by": {source: totals[source] for source in SOURCES},
        "replayed": totals[AnsweredBy.REPLAY],
        "recorded": totals["recorded"],
        "validation_problems": totals["problems"],
        "validation_notes": totals["notes"],
        "faults": dict(sorted(faults.items())),
        "routes": per_route,
    }
    if permissions is not None:
        summary[PERMISSIONS] = permissions.to_json()
    if guidance is not None:
        summary[GUIDANCE] = dict(guidance)
    return summary


def merge(
    summaries: Iterable[Mapping[str, Any]], *, permissions: bool = False, guidance: bool = False
) -> dict[str, Any]:
    """One summary of several runs' (each as :func:`document` made it): counts added up; the
    least-privilege report and the guidance there if asked for, or if any run carried them."""
    routes: dict[str, Counter[str]] = {}
    faults: Counter[str] = Counter()
    usage: Usage | None = Usage() if permissions else None
    advice: Counter[str] | None = Counter() if guidance else None
    advised = 0
    for summary in summaries:
        for name, row in summary.get("routes", {}).items():
            routes.setdefault(name, Counter()).update(row)
        faults.update(summary.get("faults", {}))
        if PERMISSIONS in summary:
            usage = usage or Usage()
            usage.merge(Usage.from_json(summary[PERMISSIONS]))
        if GUIDANCE in summary:
            advice = advice if advice is not None else Counter()
            advice.update(summary[GUIDANCE].get("advice", {}))
            advised += summary[GUIDANCE].get("requests_advised", 0)
    section = None if advice is None else guidance_section(advice, advised)
    return document(routes, faults, permissions=usage, guidance=section)
