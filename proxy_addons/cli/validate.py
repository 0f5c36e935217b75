"""``graph-vcr-proxy validate PATH...``: every interaction checked against the models.

Exit 0 when all are valid (notes such as ``"true"`` for a Boolean don't fail), 1 when any
interaction is invalid or a cassette ends in a torn last block (an append a kill cut short:
our readers leave it out and the next recorder drops it, but plain vcrpy refuses the file
until then), 2 when a cassette cannot be read at all.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from proxy_addons.cassette import cassette
from proxy_addons.common import content_encoding
from proxy_addons.graph.models import Problem, errors_only
from proxy_addons.graph.routes import parse
from proxy_addons.graph.validation import request_problems, response_problems


def interaction_problems(interaction: cassette.Interaction) -> list[tuple[str, Problem]]:
    """(side, problem) for one interaction; interactions that are not ours have none."""
    request = interaction.request
    route = parse(request.method, request.uri)
    if route is None:
        return []
    # Compressed bodies (vcrpy keeps them as the client saw them) are checked decoded.
    sent = content_encoding.readable(request.body, request.headers.get(content_encoding.HEADER))
    reply = cassette.recorded_reply(interaction)
    answer = content_encoding.readable(reply.body, content_encoding.header_of(reply.headers))
    return [("request", p) for p in request_problems(route.operation, sent)] + [
        ("response", p) for p in response_problems(route.operation, reply.status, answer)
    ]


def run_validate(paths: Sequence[str]) -> int:
    console = Console()
    if not console.is_terminal:
        # A pipe or CI log has no width: don't crop JSON paths to an imaginary 80 columns.
        console = Console(width=240)
    table = Table()
    for name in ("cassette", "#", "request", "side", "severity", "problem"):
        table.add_column(name, overflow="fold")  # a narrow terminal wraps, never crops
    checked = invalid = torn = 0
    for path in paths:
        try:
            interactions = cassette.load(path)
        except cassette.CassetteError as exc:
            print(f"graph-vcr-proxy: {exc}", file=sys.stderr)
            return 2
        for file, message in torn_tails(Path(path)):
            torn += 1
            table.add_row(str(file), "-", "(end of file)", "file", "error", message)
        for interaction in interactions:
            checked += 1
            found = interaction_problems(interaction)
            invalid += bool(errors_only([p for _, p in found]))
            for side, problem in found:
                table.add_row(
                    str(interaction.source),
                    str(interaction.position),
                    f"{interaction.request.method} {interaction.request.uri}",
                    side,
                    problem.severity,
                    str(problem),
                )
    if table.row_count:
        console.print(table)
    tail = f", {torn} torn last block{'s' if torn != 1 else ''} left out" if torn else ""
    console.print(f"{checked} interactions checked, {invalid} invalid{tail}")
    return 1 if invalid or torn else 0


def torn_tails(path: Path) -> list[tuple[Path, str]]:
    """Each cassette under ``path`` that ends in a torn last block, and what to say of it."""
    found = []
    for file in cassette.cassette_files(path):
        try:
            data = file.read_bytes()
        except OSError:
            continue  # loading it has just succeeded: it was readable a moment ago
        size = cassette.torn_tail(data)
        if size:
            found.append((file, cassette.torn_message(data, size)))
    return found
