"""Microsoft Dev Proxy's mocks file (MockResponsePlugin) to cassettes and back.

The file, as Dev Proxy's schema (``mockresponseplugin.mocksfile.schema.json``) and docs
describe it: ``{"$schema", "mocks": [{"request": {"url", "method", "nth", "bodyFragment"},
"response": {"statusCode", "headers": [{"name", "value"}], "body"}}]}``. How Dev Proxy answers
from it, which both directions must respect:

- The first mock whose method equals the request's and whose ``url`` equals the request URL
  (or matches it, ``*`` being any characters) answers. A mock without ``method`` is a GET.
- A mock with ``nth`` answers only when it would be the nth answer given for its URL. Dev
  Proxy counts the answers per mock URL, whatever the method, and only answers given: a
  request nothing answers does not count.
- ``bodyFragment`` must occur in the request body (GET bodies are never looked at). Dev
  Proxy keeps no other trace of request bodies.
- A body that is an object or an array is sent as JSON; a string is sent as a JSON string
  (quotes included); ``"@file"`` sends that file's bytes, relative to the mocks file.
- Dev Proxy adds ``Content-Type: application/json`` to an answer with a body and none, and
  drops Content-Type from an answer without one.

What is ours (README, "Import and export"): imported interactions carry no request body, so
a cassette made from mocks replays with ``--ignore-body`` (and ``--allow-playback-repeats``
to repeat the last answer as Dev Proxy does); repeated answers become repeated interactions
in the order Dev Proxy would give them; a wildcard URL cannot become a recorded
request and is skipped with a message.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from mitmproxy import http
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
)

from proxy_addons.addons.interactions import stored_response
from proxy_addons.cassette import cassette
from proxy_addons.cassette.redaction import Placeholders, compact_json
from proxy_addons.convert.conversions import (
    ConversionError,
    ImportReport,
    ImportSettings,
    Source,
    check_output,
    import_flows,
    interaction_flow,
    made_flow,
    read_json,
    read_text,
    write_output,
)
from proxy_addons.graph import routes
from proxy_addons.graph.replies import PER_RESPONSE_HEADERS

logger = logging.getLogger(__name__)

SCHEMA_URL = (
    "https://raw.githubusercontent.com/dotnet/dev-proxy/main/schemas/v2.2.0/"
    "mockresponseplugin.mocksfile.schema.json"
)
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE"]
METHODS: frozenset[str] = frozenset(get_args(Method))
WILDCARD = "*"
REQUEST_PLACEHOLDER = "@request.body."  # Dev Proxy fills these from the request body


# --- the file, as Dev Proxy's schema says -------------------------------------------------


def _body(value: Any) -> Any:
    if value is not None and not isinstance(value, dict | list | str):
        raise ValueError(f"must be an object, an array or a string, got {json.dumps(value)}")
    return value


class _Part(BaseModel):
    # The schema leaves the parts open (``additionalProperties`` only at the top): Dev Proxy
    # ignores what it does not know, and so do we.
    model_config = ConfigDict(strict=True, frozen=True, populate_by_name=True, extra="ignore")


class MockRequest(_Part):
    url: str
    method: Method = "GET"
    nth: int | None = None
    body_fragment: str | None = Field(default=None, alias="bodyFragment")


class MockHeader(_Part):
    name: str
    value: str


class MockResponse(_Part):
    body: Annotated[Any, PlainValidator(_body)] = None
    status_code: cassette.HttpStatus = Field(default=200, alias="statusCode")
    headers: list[MockHeader] = []

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_defaults=True)


class Mock(_Part):
    request: MockRequest
    response: MockResponse


class MocksFile(_Part):
    model_config = ConfigDict(extra="forbid")

    schema_: str | None = Field(default=None, alias="$schema")
    definitions: dict[str, Any] | None = None
    mocks: list[Mock]


def load_mocks(path: Path, document: Any) -> list[Mock]:
    try:
        return MocksFile.model_validate(document, strict=True).mocks
    except ValidationError as exc:
        raise ConversionError(path, _describe(exc.errors(include_url=False)[0])) from None


def _describe(error: Any) -> str:
    loc = list(error["loc"])
    where = ""
    if len(loc) >= 2 and loc[0] == "mocks" and isinstance(loc[1], int):
        where, loc = f"mock {loc[1]}: ", loc[2:]
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    if error["type"] == "value_error":
        message = str(error["ctx"]["error"])
    elif error["type"] in ("missing", "extra_forbidden"):
        message = {"missing": "is missing", "extra_forbidden": "is not part of the format"}[
            error["type"]
        ]
    else:
        message = f"{error['msg']}, got {json.dumps(error['input'], default=str)[:60]}"
    return f"{where}{field}: {message}" if field else f"{where}{message}"


# --- mocks to a cassette ------------------------------------------------------------------


@dataclass(frozen=True)
class _Group:
    """Mocks that answer the same requests: same method, URL and body fragment."""

    method: str
    url: str
    fragment: str | None


@dataclass(frozen=True)
class Order:
    """Which mocks a cassette holds, in which order, and the mocks left out, with why."""

    answers: list[int]
    left_out: list[tuple[int, str]]
    not_ours: int  # wildcard mocks for URLs that are not our routes


def answer_order(mocks: Sequence[Mock]) -> Order:
    """Indexes of the mocks that answer, in the order a cassette must hold them.

    For each method and URL (and body fragment), the answers Dev Proxy gives to that request
    repeated: the nth time, the first mock in file order without ``nth`` or with ``nth`` n;
    once past the highest ``nth``, the same mock for ever, so it comes last and the
    cassette's "then the last one again" repeats it. Dev Proxy counts per URL across
    methods: a count that a mock of another method names with ``nth`` is that method's
    request; a count no mock names is taken to be this one's. Mocks that can never answer,
    and wildcard URLs on our routes, are left out; other wildcard URLs are not ours.
    """
    groups: dict[_Group, list[int]] = defaultdict(list)
    left_out: list[tuple[int, str]] = []
    not_ours = 0
    for i, mock in enumerate(mocks):
        request = mock.request
        if WILDCARD not in request.url:
            groups[_Group(request.method, request.url, request.body_fragment)].append(i)
        elif routes.parse(request.method, request.url.replace(WILDCARD, "x")) is not None:
            left_out.append((i, "the URL has a wildcard; a cassette needs one URL"))
        else:
            not_ours += 1
    nths_of: dict[_Group, set[int]] = {
        group: {n for i in members if (n := mocks[i].request.nth) is not None}
        for group, members in groups.items()
    }
    answers: list[int] = []
    for group, members in groups.items():
        others = [g for g in groups if g.url == group.url and g != group]
        counted_by_others = set().union(*(nths_of[g] for g in others)) - nths_of[group]
        sequence = _sequence(mocks, members, nths_of[group], counted_by_others)
        left_out += [(i, NEVER_ANSWERS) for i in members if i not in sequence]
        # The cassette repeats its last answer anyway: one is enough.
        while len(sequence) > 1 and mocks[sequence[-1]].response == mocks[sequence[-2]].response:
            sequence.pop()
        answers += sequence
    return Order(answers, sorted(left_out), not_ours)


NEVER_ANSWERS = "never answers: other mocks answer its requests first"


def _sequence(
    mocks: Sequence[Mock], members: list[int], own: set[int], counted_by_others: set[int]
) -> list[int]:
    """One group's answers in order (see :func:`answer_order`)."""

    def answer_at(count: int) -> int | None:
        return next((i for i in members if mocks[i].request.nth in (None, count)), None)

    sequence: list[int] = []
    for count in range(1, max(own, default=0) + 2):
        if count in counted_by_others:
            continue  # another method's request on the same URL
        chosen = answer_at(count)
        if chosen is None:
            break  # Dev Proxy answers nothing, and its count stops: later nth never fire
        sequence.append(chosen)
    return sequence


def mock_flow(path: Path, i: int, mock: Mock) -> http.HTTPFlow:
    """The exchange Dev Proxy would have had: the request without body or headers, and the
    answer with the body and headers Dev Proxy sends."""
    request = http.Request.make(mock.request.method, mock.request.url)
    request.headers = http.Headers()
    request.raw_content = b""
    body = _body_bytes(path, i, mock.response.body)
    headers = [(h.name, h.value) for h in mock.response.headers]
    has_type = any(name.lower() == "content-type" for name, _ in headers)
    if mock.response.body is None:
        headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
    elif not has_type:
        headers.append(("Content-Type", "application/json"))
    if body:
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
    response = http.Response.make(mock.response.status_code)
    response.headers = http.Headers((k.encode(), v.encode()) for k, v in headers)
    response.raw_content = body
    return made_flow(request, response)


def _body_bytes(path: Path, i: int, body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str) and body.startswith("@"):
        file = path.parent / body[1:]
        try:
            return file.read_bytes()
        except OSError as exc:
            raise ConversionError(
                path, f"mock {i}: response.body: {file}: {exc.strerror or exc}"
            ) from None
    return compact_json(body)


def what_is_lost(mock: Mock) -> list[str]:
    """What Dev Proxy would do with this mock that a cassette cannot."""
    lost = []
    if mock.request.body_fragment is not None and mock.request.method != "GET":
        lost.append(
            f"bodyFragment {mock.request.body_fragment!r} is not kept: a cassette made from "
            "mocks has no request bodies (replay it with --ignore-body)"
        )
    if any(s.startswith(REQUEST_PLACEHOLDER) for s in _strings(mock.response.body)):
        lost.append(
            f"response.body: {REQUEST_PLACEHOLDER}... placeholders are stored as written; a "
            "cassette answers the same whatever the request body says"
        )
    return lost


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def import_devproxy(path: Path, settings: ImportSettings) -> ImportReport:
    """``import devproxy MOCKS -o CASSETTE``.

    Everything that can make the file unusable (its shape, a missing ``@file``) is found
    before anything is reported, so a bad file is one line.
    """
    check_output(settings.output, settings.force, [path])
    text = read_text(path)
    mocks = load_mocks(path, read_json(path, text))
    order = answer_order(mocks)
    flows = {i: mock_flow(path, i, mocks[i]) for i in order.answers}
    skipped = len(order.left_out)
    report = ImportReport(read=order.not_ours + skipped, not_ours=order.not_ours, skipped=skipped)
    for i, reason in order.left_out:
        request = mocks[i].request
        logger.warning(
            "%s: mock %d: %s %s: skipped: %s", path, i, request.method, request.url, reason
        )
    for i in dict.fromkeys(order.answers):
        for lost in what_is_lost(mocks[i]):
            logger.warning("%s: mock %d: %s", path, i, lost)
    sources = (
        Source(f"mock {i}", flows[i].copy(), request_body_known=False) for i in order.answers
    )
    return import_flows(path, sources, settings, Placeholders.continuing(text), report)


# --- a cassette to mocks ------------------------------------------------------------------


def export_mocks(
    interactions: Sequence[cassette.Interaction], bodies: str
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The mocks file answering as the cassette does, and the body files it refers to
    (relative name under ``bodies`` -> bytes) for bodies Dev Proxy can only send from a file.

    Requests that share method and URL are answered in recorded order, then the last answer
    again, as replay with ``--ignore-body --allow-playback-repeats`` answers them. A URL
    whose requests all differ gets a plain mock per request. On a URL with a repeated
    request, every interaction gets a mock with ``nth`` set to its place among the
    cassette's requests to that URL (Dev Proxy's count, which replaying the recorded
    sequence reproduces), first in the file; each request then gets a plain mock of its last
    answer, for when the count has passed.
    """
    by_request: dict[tuple[str, str], list[int]] = defaultdict(list)
    place_in_url: dict[int, int] = {}
    seen_in_url: dict[str, int] = defaultdict(int)
    for n, interaction in enumerate(interactions):
        request = interaction.request
        if request.method not in METHODS:
            logger.warning("%s: not a method Dev Proxy mocks: left out", interaction.label)
            continue
        seen_in_url[request.uri] += 1
        place_in_url[n] = seen_in_url[request.uri]
        by_request[(request.method, request.uri)].append(n)
    counted_urls = {uri for (_, uri), members in by_request.items() if len(members) > 1}
    counted = [n for n in place_in_url if interactions[n].request.uri in counted_urls]
    plain = [members[-1] for members in by_request.values()]
    mocks: list[dict[str, Any]] = []
    files: dict[str, bytes] = {}
    for n, nth in [(n, place_in_url[n]) for n in counted] + [(n, None) for n in plain]:
        request = interactions[n].request
        spec: dict[str, Any] = {"url": request.uri, "method": request.method}
        if nth is not None:
            spec["nth"] = nth
        response, body = _mock_response(interactions[n])
        if body is not None:
            name = f"{bodies}/mock-{len(mocks)}.body"
            files[name] = body
            response["body"] = f"@{name}"
        mocks.append({"request": spec, "response": response})
    return {"$schema": SCHEMA_URL, "mocks": mocks}, files


def _mock_response(interaction: cassette.Interaction) -> tuple[dict[str, Any], bytes | None]:
    """The mock's response, and the body bytes when they must go to a file."""
    status, _, stored = stored_response(interaction_flow(interaction).response)  # type: ignore[arg-type]
    headers = [
        MockHeader(name=name, value=value)
        for name, values in stored.headers.items()
        if name.lower() not in PER_RESPONSE_HEADERS  # Dev Proxy makes its own
        for value in values
    ]
    body, file = _mock_body(stored.body)
    response = MockResponse(status_code=status, headers=headers, body=body).wire()
    response["statusCode"] = status  # always said, though 200 is the default
    return response, file


def _mock_body(body: bytes) -> tuple[Any, bytes | None]:
    """(value for ``body``, None) when Dev Proxy can send it from the mocks file itself,
    else (None, bytes for a file): bodies that are not JSON, JSON scalars other than a
    string, and a string starting with ``@`` (Dev Proxy would take it for a file name)."""
    if not body:
        return None, None
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None, body
    if isinstance(value, dict | list) or (isinstance(value, str) and not value.startswith("@")):
        return value, None
    return None, body


def export_devproxy(path: Path, output: Path, force: bool) -> int:
    """``export devproxy CASSETTE -o MOCKS``: the number of mocks written.

    Body files go to a folder beside the mocks file, named after it, and are written first:
    the mocks file that refers to them appears last, whole.
    """
    check_output(output, force, cassette.cassette_files(path))
    interactions = cassette.load(path)
    document, files = export_mocks(interactions, f"{output.stem}.bodies")
    for name in files:
        check_output(output.parent / name, force)
    for name, data in files.items():
        write_output(output.parent / name, data, force)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    write_output(output, text.encode(), force)
    return len(document["mocks"])
