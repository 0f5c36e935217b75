"""``graph-vcr-proxy show PATH...``: what a cassette holds, one row per interaction.

Cassettes are read with ``cassette.load``, exactly as replay reads them, so ``show`` refuses
the same files with the same one line; everything is read before anything is printed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from rich.console import Console
from rich.table import Table

from proxy_addons.cassette import cassette
from proxy_addons.cassette.redaction import redacted_names
from proxy_addons.graph.routes import parse

NOT_OURS = "(not ours)"
REFUSED = "(refused method)"  # our URL, with a method Graph answers 405


@dataclass(frozen=True)
class Row:
    """One interaction as ``show`` reports it; ``--json`` prints these fields as they are."""

    cassette: str
    index: int
    method: str
    uri: str
    operation: str | None  # None: not one of our routes (or a method Graph refuses there)
    owner: str | None
    meeting_id: str | None
    status: int
    etag: str | None
    request_body_size: int
    response_body_size: int
    redacted: list[str]  # placeholder names, e.g. ["authorization", "emailAddress"]


def row_of(interaction: cassette.Interaction) -> Row:
    request = interaction.request
    route = parse(request.method, request.uri)
    reply = cassette.recorded_reply(interaction)
    request_body = request.body or b""
    searched = [
        request.uri,
        *(f"{k}: {v}" for k, v in request.headers.items()),
        request_body.decode("utf-8", "replace"),
        *(f"{k}: {v}" for k, v in reply.headers),
        reply.body.decode("utf-8", "replace"),
    ]
    return Row(
        cassette=str(interaction.source),
        index=interaction.position,
        method=request.method,
        uri=request.uri,
        operation=str(route.operation) if route and route.operation else None,
        owner=route.owner if route else None,
        meeting_id=route.meeting_id if route else None,
        status=reply.status,
        etag=reply.header("etag"),
        request_body_size=len(request_body),
        response_body_size=len(reply.body),
        redacted=redacted_names("\n".join(searched)),
    )


def rows(paths: Sequence[str]) -> list[Row]:
    """Every interaction of every path; a cassette replay would refuse raises CassetteError."""
    return [row_of(i) for path in paths for i in cassette.load(path)]


def table(found: list[Row]) -> Table:
    table = Table()
    for name in (
        "cassette",
        "#",
        "method",
        "operation",
        "owner",
        "meeting id",
        "status",
        "ETag",
        "body size",
        "redacted",
    ):
        table.add_column(name, overflow="fold")
    for row in found:
        table.add_row(
            row.cassette,
            str(row.index),
            row.method,
            row.operation or (NOT_OURS if row.owner is None else REFUSED),
            row.owner or "",
            row.meeting_id or "",
            str(row.status),
            row.etag or "",
            f"{row.request_body_size} / {row.response_body_size}",
            ", ".join(row.redacted),
        )
    return table


def run_show(paths: Sequence[str], as_json: bool) -> int:
    found = rows(paths)
    if as_json:
        print(json.dumps([asdict(row) for row in found], indent=2, ensure_ascii=False))
        return 0
    console = Console()
    if not console.is_terminal:
        console = Console(width=240)  # a pipe has no width: don't crop ids to 80 columns
    console.print(table(found))
    console.print(f"{len(found)} interactions; body size is request / response, in bytes")
    return 0
