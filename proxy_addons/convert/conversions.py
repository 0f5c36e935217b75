"""What every import and export shares: flows in, interactions out, files written whole.

Other tools' traffic reaches a cassette in two steps. Each format's module (``har.py``,
``mitmproxy_file.py``, ``devproxy.py``) turns its file into mitmproxy flows, with mitmproxy's own
readers wherever mitmproxy has one; :func:`import_flows` then treats each flow exactly as the
recorder treats a live one: only our routes, Graph's request refusals, the same validation
lines, the same redaction and storage (``interactions.py``). An imported interaction is
therefore byte for byte what ``record`` would have written for the same exchange.

Exports go the other way: :func:`interaction_flow` makes a recorded interaction a mitmproxy
flow again, so mitmproxy's HAR writer, and the recorder's decoding, apply to it.

Nothing is written until the whole input has been read and converted, and then in one piece:
an existing output is replaced only with ``force``, atomically (``files.replace_atomically``);
otherwise the file is created by link (``files.create_new``), which never overwrites.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mitmproxy import connection, http
from vcr.serializers import yamlserializer

from proxy_addons.addons.interactions import (
    Sent,
    interaction_block,
    readable,
    stored_response,
    stored_side,
)
from proxy_addons.addons.validation_report import log_level, problem_line
from proxy_addons.cassette import cassette
from proxy_addons.cassette.redaction import Placeholders, RedactionRules
from proxy_addons.common.files import create_new, replace_atomically
from proxy_addons.graph import routes
from proxy_addons.graph.models import Problem, errors_only
from proxy_addons.graph.request_checks import check_request
from proxy_addons.graph.validation import request_problems, response_problems

logger = logging.getLogger(__name__)


class ConversionError(Exception):
    """A file that cannot be converted; ``str()`` is the one line a user sees, naming the
    file, and the line or the entry where there is one."""

    def __init__(self, path: Path | str, message: str, *, line: int | None = None) -> None:
        message = " ".join(message.split())  # one line, whatever the source said
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Source:
    """One exchange read from a file, and where in the file it came from."""

    where: str  # "entry 3", "flow 2", "mock 0": how the user finds it in the file
    flow: object  # a mitmproxy flow; other kinds (TCP, DNS) are counted and left out
    request_body_known: bool = True  # False: the format keeps no request body (Dev Proxy)


@dataclass(frozen=True)
class ImportSettings:
    """What the recorder's options say, for an import."""

    output: Path
    force: bool = False
    rules: RedactionRules = field(default_factory=RedactionRules.of)
    validate: str = "warn"  # record.VALIDATE_MODES: warn, enforce, off


@dataclass
class ImportReport:
    read: int = 0
    imported: int = 0
    not_ours: int = 0
    skipped: int = 0
    invalid: int = 0

    def summary(self, source: Path, output: Path) -> str:
        return (
            f"{output}: {self.imported} interactions imported from {source} ({self.read} read: "
            f"{self.not_ours} not on our routes, {self.skipped} skipped, {self.invalid} with "
            "validation errors)"
        )


# --- reading and writing ------------------------------------------------------------------

_BOM = "\ufeff"  # Fiddler starts its HAR files with one; Windows editors their JSON


def read_text(path: Path) -> str:
    """A file's text, or the one-line error a user sees."""
    try:
        return path.read_bytes().decode("utf-8").removeprefix(_BOM)
    except OSError as exc:
        raise ConversionError(path, exc.strerror or str(exc)) from None
    except UnicodeDecodeError as exc:
        raise ConversionError(path, f"not UTF-8 text (byte {exc.start})") from None


def read_json(path: Path, text: str) -> Any:
    """The JSON document in ``text``; a syntax error names its line."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConversionError(path, f"not valid JSON: {exc.msg}", line=exc.lineno) from None
    except RecursionError:
        raise ConversionError(path, "not valid JSON: nested too deeply") from None


def check_output(output: Path, force: bool, inputs: Sequence[Path] = ()) -> None:
    """Refuse an output that can't be written, before any work is done."""
    if output.is_dir():
        raise ConversionError(output, "is a folder; name the file to write")
    if any(output.resolve() == Path(i).resolve() for i in inputs):
        raise ConversionError(output, "is also the input; write the result to another file")
    if output.exists() and not force:
        raise ConversionError(output, "exists; pass --force to replace it")


def write_output(output: Path, data: bytes, force: bool) -> None:
    """``data`` at ``output``, whole or not at all; an existing file only with ``force``."""
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        if force:
            replace_atomically(output, data)
        elif not create_new(output, data):
            raise ConversionError(output, "exists; pass --force to replace it")
    except OSError as exc:
        raise ConversionError(output, exc.strerror or str(exc)) from None


# --- importing ----------------------------------------------------------------------------


def import_flows(
    source_path: Path,
    sources: Iterable[Source],
    settings: ImportSettings,
    placeholders: Placeholders,
    report: ImportReport | None = None,
) -> ImportReport:
    """Convert every exchange on our routes into the cassette ``settings.output``.

    ``placeholders`` continue the numbering of any placeholders already in the source (see
    ``Placeholders.continuing``), so a new secret never shares a number with an old one.
    ``report`` holds what the format's reader already counted (Dev Proxy's wildcard mocks).
    """
    report = report or ImportReport()
    blocks = []
    for source in sources:
        report.read += 1
        block = _convert(source_path, source, settings, placeholders, report)
        if block is not None:
            blocks.append(block)
            report.imported += 1
    if not blocks:
        raise ConversionError(
            source_path,
            f"holds no virtualAppointment calls to import ({report.read} read, "
            f"{report.not_ours} not on our routes, {report.skipped} skipped); nothing written",
        )
    write_output(settings.output, (cassette.HEADER + "".join(blocks)).encode(), settings.force)
    return report


def _convert(
    source_path: Path,
    source: Source,
    settings: ImportSettings,
    placeholders: Placeholders,
    report: ImportReport,
) -> str | None:
    """One exchange as the recorder would store it, or None (counted in ``report``)."""
    flow = source.flow
    if not isinstance(flow, http.HTTPFlow):
        report.not_ours += 1
        return None
    request = flow.request
    _drop_pseudo_headers(request.headers)
    route = routes.parse(request.method, request.pretty_url)
    if route is None:
        report.not_ours += 1
        return None
    where = f"{source_path}: {source.where}: {request.method} {urlsplit(request.pretty_url).path}"

    def skip(reason: str) -> None:
        logger.warning("%s: skipped: %s", where, reason)
        report.skipped += 1

    if flow.response is None or not flow.response.status_code:
        error = f" ({flow.error.msg})" if flow.error else ""
        return skip(f"no response{error}")
    sent = Sent(request.method, request.pretty_url, stored_side(request))
    # Stored as it came (compressed stays compressed); checked and validated decoded, as the
    # recorder reads them.
    request_body = readable(sent.side).body if source.request_body_known else None
    refusal = check_request(route, request.headers, request_body)
    if refusal is not None:
        return skip(
            f"Graph refuses this request before any lookup ({refusal.status} "
            f"{refusal.json()['error']['code']}), so replay would never answer it"
        )
    status, reason, stored = stored_response(flow.response)
    if settings.validate != "off":
        found: list[Problem] = []
        if source.request_body_known:
            found = request_problems(route.operation, request_body)
            _report(source_path, source, sent, "request", found)
            if errors_only(found) and settings.validate == "enforce":
                report.invalid += 1
                return skip("invalid request (--validate enforce)")
        answer = response_problems(route.operation, status, readable(stored).body)
        _report(source_path, source, sent, f"response {status}", answer)
        report.invalid += bool(errors_only(found + answer))
    block = interaction_block(sent, status, reason, stored, settings.rules, placeholders)
    problem = _shape_problem(block)
    if problem is not None:
        return skip(f"would not be a loadable cassette interaction: {problem}")
    return block


def _report(
    source_path: Path, source: Source, sent: Sent, side: str, problems: list[Problem]
) -> None:
    """The recorder's validation lines, prefixed with where in the file the exchange is."""
    for problem in problems:
        line = problem_line(sent.method, urlsplit(sent.uri).path, side, problem)
        logger.log(log_level(problem), "%s: %s: %s", source_path, source.where, line)


def _drop_pseudo_headers(headers: http.Headers) -> None:
    """HTTP/2's ``:method``, ``:authority``... as browsers put them in HAR files: mitmproxy
    never shows them to an addon as headers, so the recorder never stores them (and a
    cassette refuses a header name that is not an HTTP token)."""
    for name in {n for n in headers if n.startswith(":")}:
        del headers[name]


def _shape_problem(block: str) -> str | None:
    """Why ``block`` would make its cassette unloadable (a header value with a line break
    from a hand-edited HAR, say), or None: every cassette an import writes loads."""
    items = yamlserializer.deserialize(cassette.HEADER + block)["interactions"]
    found = cassette.first_invalid_interaction(items)
    return None if found is None else found[1]


# --- exporting ----------------------------------------------------------------------------


def interaction_flow(interaction: cassette.Interaction) -> http.HTTPFlow:
    """A recorded interaction as a mitmproxy flow: headers and body bytes exactly as stored.

    Bodies are set raw: a body a vcrpy cassette keeps gzip-compressed, with its
    Content-Encoding, stays so, and mitmproxy decodes it where its readers want text.
    """
    recorded = interaction.request
    reply = cassette.recorded_reply(interaction)
    when = _timestamp(reply.header("date"))
    parts = urlsplit(recorded.uri)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    request = http.Request.make(recorded.method, recorded.uri)
    request.headers = http.Headers(
        (name.encode(), str(value).encode()) for name, value in recorded.headers.items()
    )
    body = recorded.body
    request.raw_content = body.encode() if isinstance(body, str) else body
    response = http.Response.make(reply.status)
    response.headers = http.Headers((k.encode(), v.encode()) for k, v in reply.headers)
    response.raw_content = reply.body
    response.reason = reply.reason
    for message in (request, response):
        message.timestamp_start = message.timestamp_end = when
    return made_flow(request, response, (parts.hostname or "", port), when)


def made_flow(
    request: http.Request,
    response: http.Response,
    server: tuple[str, int] | None = None,
    when: float | None = None,
) -> http.HTTPFlow:
    """A flow around an exchange that never crossed a proxy (a loopback client, the server
    it names): what mitmproxy's readers and writers expect to find around one."""
    client = connection.Client(peername=("127.0.0.1", 0), sockname=("127.0.0.1", 0))
    if when is not None:
        client.timestamp_start = when
    flow = http.HTTPFlow(client, connection.Server(address=server))
    flow.request, flow.response = request, response
    return flow


def _timestamp(date: str | None) -> float:
    """When the exchange happened: its response's Date, else now."""
    if date:
        try:
            return parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            pass
    return datetime.now(UTC).timestamp()
