"""VCR cassettes: reading vcrpy's on-disk format, and an index that matches requests in O(1).

The file format, serializer and request class are vcrpy's own, so a cassette written here
plays in plain vcrpy and pytest-recording, and theirs play here. What is ours is matching:
vcrpy scans every interaction on every lookup; this index hashes the parts a match needs
(method, host, normalised path, sorted query, body as JSON), so a lookup costs the same in a
ten-interaction cassette and a ten-thousand-interaction one. Recorded bodies with redaction
placeholders in them still match the real values they replaced.
"""

from __future__ import annotations

import copy
import gc
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from io import BytesIO
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import ErrorDetails
from vcr.request import Request
from vcr.serialize import deserialize
from vcr.serializers import compat, yamlserializer

from proxy_addons.graph import Reply
from proxy_addons.routes import normalise_query, parse

CASSETTE_SUFFIXES = (".yaml", ".yml")
# Redacted values are written as "<redacted...>" (see record.py); such a recorded value
# matches any incoming value in the same place.
PLACEHOLDER_PREFIX = "<redacted"


# The layout we write: ``version`` first and ``interactions`` last, so that one more
# interaction is one more list item appended at the end of the file (see record.py).
HEADER = "version: 1\ninteractions:\n"


def interaction_yaml(request: Request, response: dict[str, Any]) -> str:
    """One interaction as a YAML list item, to follow ``HEADER`` or earlier items.

    vcrpy's own dict conversion and dumper, so vcrpy reads back exactly what it would write.
    """
    item = {
        "request": compat.convert_to_unicode(request._to_dict()),
        "response": compat.convert_to_unicode(copy.deepcopy(response)),
    }
    return yamlserializer.serialize([item])


def cassette_text(interactions: Iterable[tuple[Request, dict[str, Any]]]) -> str:
    return HEADER + "".join(interaction_yaml(req, resp) for req, resp in interactions)


class CassetteError(Exception):
    """A cassette that cannot be used; ``str()`` is the one line a user sees."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        # Messages from YAML and vcrpy carry newlines ("...\n  in <unicode string>, line 11");
        # the user sees one line, so whitespace is collapsed here, once for every source.
        message = " ".join(message.split())
        self.path, self.line, self.message = Path(path), line, message
        where = f"{path}:{line}" if line else f"{path}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Interaction:
    """One recorded request and its response, in vcrpy's own representation."""

    request: Request
    response: dict[str, Any]
    source: Path
    position: int

    @property
    def label(self) -> str:
        return f"{self.request.method} {self.request.uri} ({self.source.name} #{self.position})"


def bundled_cassettes() -> Path:
    """The cassettes shipped with the package (installed) or beside it (source checkout)."""
    here = Path(__file__).resolve().parent
    installed, checkout = here / "cassettes", here.parent / "cassettes"
    return installed if installed.is_dir() else checkout


def cassette_files(path: Path) -> list[Path]:
    """The cassette files a path names: the file itself, or every cassette below a folder."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in CASSETTE_SUFFIXES and p.is_file())
    return [path]


def load(path: Path | str) -> list[Interaction]:
    """Every interaction of a cassette file or of a folder of them; never writes anything."""
    path = Path(path)
    if not path.exists():
        raise CassetteError(path, None, "no such cassette file or folder")
    files = cassette_files(path)
    if not files:
        # Most likely a typo'd or not yet populated folder: replaying nothing from it would
        # answer every request with a miss and hide the real mistake.
        raise CassetteError(path, None, "folder holds no .yaml or .yml cassettes")
    with _no_cyclic_gc():
        return [i for f in files for i in load_file(f)]


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Building a big cassette's objects makes the cyclic collector rescan them over and over
    (a third of a 10,000-interaction load); they hold no cycles, so it can wait."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _KeepParsed:
    """vcrpy's YAML serializer, keeping the parsed document so that its shape can be checked
    after vcrpy has built its objects, without parsing the file a second time."""

    def __init__(self) -> None:
        self.data: Any = None

    def deserialize(self, text: str) -> Any:
        self.data = yamlserializer.deserialize(text)
        return self.data


def load_file(path: Path) -> list[Interaction]:
    """One cassette file, refused with its line unless every interaction has vcrpy's shape.

    vcrpy checks almost nothing: a response whose body is ``5`` loads fine and breaks the
    request that replays it. Checking the shape here turns that into a load-time error.
    """
    text = _read_text(path)
    parsed = _KeepParsed()
    failure: Exception | None = None
    try:
        requests, responses = deserialize(text, parsed)[:2]
    except yaml.YAMLError as exc:
        raise _yaml_error(path, exc, "not valid YAML") from None
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        if isinstance(exc.__cause__, yaml.YAMLError):  # vcrpy wraps its safe loader's refusal
            raise _yaml_error(path, exc.__cause__, "cannot be loaded safely") from None
        failure = exc
    if failure is not None or not _has_vcrpy_shape(parsed.data):
        line, message = locate_structure_error(text, parsed.data)
        reason = f" ({failure})" if failure else ""
        raise CassetteError(path, line, message or f"not a vcrpy cassette{reason}")
    return [
        Interaction(request, response, path, n)
        for n, (request, response) in enumerate(zip(requests, responses, strict=True))
    ]


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CassetteError(path, None, exc.strerror or str(exc)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CassetteError(path, line, f"not UTF-8 text (byte {exc.start})") from None


def _yaml_error(path: Path, exc: yaml.YAMLError, what: str) -> CassetteError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        return CassetteError(path, mark.line + 1 if mark else None, f"{what}: {exc.problem}")
    return CassetteError(path, None, f"{what}: {exc}")


def _has_vcrpy_shape(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and isinstance(data.get("interactions"), list)
        and first_invalid_interaction(data["interactions"]) is None
    )


def locate_structure_error(text: str, data: Any = None) -> tuple[int | None, str | None]:
    """Line and reason of the first part of a cassette that is not vcrpy's shape.

    ``data`` is the document as vcrpy's loader parsed it, when the caller has it. This runs
    while another error is being reported, so it never raises, whatever the text: a crash
    here would replace the user's one-line message with a traceback.
    """
    try:
        root = yaml.compose(text, Loader=_COMPOSER)
    except (yaml.YAMLError, RecursionError):
        return None, None
    if not isinstance(root, yaml.MappingNode):
        line = root.start_mark.line + 1 if root is not None else 1
        return line, "not a vcrpy cassette: the document is not a mapping with 'interactions'"
    items = _scalar_keys(root).get("interactions")
    if not isinstance(items, yaml.SequenceNode):
        node = items or root
        return node.start_mark.line + 1, "'interactions' must be a list of request/response pairs"
    if data is None:
        data = _parse_quietly(text)
    interactions = data.get("interactions") if isinstance(data, dict) else None
    found = first_invalid_interaction(interactions) if isinstance(interactions, list) else None
    if found is None:
        return None, None
    n, problem = found
    line = items.value[n].start_mark.line + 1 if n < len(items.value) else None
    return line, f"interaction {n}: {problem}"


_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _scalar_keys(node: yaml.MappingNode) -> dict[str, yaml.Node]:
    """A mapping node's entries by key; complex keys (``? [a]``) can't name a field."""
    return {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}


def _parse_quietly(text: str) -> Any:
    try:
        return yamlserializer.deserialize(text)
    except Exception:  # reporting an error must not raise one: see locate_structure_error
        return None


# --- vcrpy's interaction format, as a schema ----------------------------------------------
#
# What vcrpy writes and its loader and stubs read, checked field by field, plus what the
# proxy needs to send a recorded answer at all: header names that are HTTP tokens, no line
# breaks in headers or the reason phrase, text that encodes. Everything the replay code reads
# from an interaction is therefore known to be usable once a cassette has loaded. Checks run
# in pydantic's core (patterns) wherever they can: a 10,000-interaction cassette is checked
# in about a tenth of the time it takes to parse.

TOKEN = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"
ONE_LINE = r"^[^\r\n\x00]*$"
LATIN_1_LINE = r"^[^\r\n\x00\u0100-\U0010ffff]*$"


def _brief(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _as_list(value: Any) -> Any:
    """vcrpy writes a list per header; its reader takes a single value too."""
    return value if isinstance(value, list) else [value]


def _as_text_list(value: Any) -> Any:
    """Request headers as vcrpy keeps them: whatever the client sent, bytes included."""
    return [v.decode("latin-1") if isinstance(v, bytes) else v for v in _as_list(value)]


def _body(value: Any, *, kinds: tuple[type, ...]) -> Any:
    if value is not None and not isinstance(value, kinds):
        raise ValueError(f"must be text, binary or null, got {_brief(value)}")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"must be UTF-8 text, got {_brief(value)}") from None
    return value


def _absolute_url(value: str) -> str:
    """An http(s) URL that ``urlsplit`` accepts, as matching needs; only the rare URL that can
    make it raise (a bracketed IPv6 host, non-ASCII) pays for the full parse."""
    absolute = value.startswith(("http://", "https://"))
    if absolute and ("[" in value or not value.isascii()):
        try:
            urlsplit(value).hostname  # noqa: B018 - parsing is the check
        except ValueError:
            absolute = False
    if not absolute:
        raise ValueError(f"must be an absolute http(s) URL, got {_brief(value)}")
    return value


def _status_code(value: int) -> int:
    if not 100 <= value <= 599:
        raise ValueError(f"must be 100..599, got {value}")
    return value


HeaderName = Annotated[str, Field(pattern=TOKEN)]
HeaderValue = Annotated[str, Field(pattern=ONE_LINE)]
# vcrpy's Request keeps the first value of each header, so a request header needs one.
RequestHeaderValues = Annotated[
    list[HeaderValue], Field(min_length=1), BeforeValidator(_as_text_list)
]
ResponseHeaderValues = Annotated[list[HeaderValue], BeforeValidator(_as_list)]
# Old vcrpy cassettes hold file-like request bodies; vcrpy's Request reads them into bytes.
RequestBody = Annotated[Any, PlainValidator(partial(_body, kinds=(str, bytes, BytesIO)))]
ResponseBody = Annotated[Any, PlainValidator(partial(_body, kinds=(str, bytes)))]


class _Schema(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="allow")


class RecordedRequest(_Schema):
    """``request:`` as vcrpy writes it; vcrpy's ``Request(**request)`` takes exactly these."""

    model_config = ConfigDict(extra="forbid")

    method: Annotated[str, Field(pattern=TOKEN)]
    uri: Annotated[str, AfterValidator(_absolute_url)]
    body: RequestBody
    headers: dict[HeaderName, RequestHeaderValues] | None


class RecordedStatus(_Schema):
    code: Annotated[int, AfterValidator(_status_code)]
    message: Annotated[str, Field(pattern=LATIN_1_LINE)] | None = None


class RecordedBody(_Schema):
    string: ResponseBody = None


class RecordedResponse(_Schema):
    """``response:`` as vcrpy writes it; a missing body or headers replays as none."""

    status: RecordedStatus
    headers: dict[HeaderName, ResponseHeaderValues] | None = None
    body: RecordedBody | None = None


class RecordedInteraction(_Schema):
    request: RecordedRequest
    response: RecordedResponse


_INTERACTIONS = TypeAdapter(list[RecordedInteraction])

# pydantic's wording for the errors a wrong shape produces, said the way a cassette author
# reads it; ``value_error`` messages come from the validators above and are complete.
_EXPECTED = {
    "missing": "is missing",
    "extra_forbidden": "is not part of vcrpy's format",
    "recursion_loop": "refers to itself",
    "string_type": "must be text",
    "string_unicode": "must be UTF-8 text",
    "int_type": "must be a whole number",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "list_type": "must be a list",
    "too_short": "must not be empty",
}
_PATTERN_MEANS = {
    TOKEN: "must be an HTTP token (letters, digits, !#$%&'*+-.^_`|~)",
    ONE_LINE: "must not contain a line break",
    LATIN_1_LINE: "must be one line of Latin-1 text",
}
_WITHOUT_INPUT = ("missing", "extra_forbidden", "recursion_loop")


def first_invalid_interaction(items: list[Any]) -> tuple[int, str] | None:
    """Index of the first interaction that is not vcrpy's shape, and what is wrong with it,
    e.g. ``(0, "response.status.code: must be 100..599, got 99999")``."""
    try:
        _INTERACTIONS.validate_python(items)
    except PydanticValidationError as exc:
        error = exc.errors(include_url=False)[0]
        n, *where = error["loc"]
        problem = _describe(error)
        return int(n), f"{_field_path(where)}: {problem}" if where else problem
    return None


def _describe(error: ErrorDetails) -> str:
    kind, context = error["type"], error.get("ctx", {})
    if kind == "value_error":
        return str(context.get("error", error["msg"]))
    if kind == "string_pattern_mismatch":
        expected = _PATTERN_MEANS.get(context.get("pattern"), error["msg"])
    else:
        expected = _EXPECTED.get(kind, error["msg"])
    return expected if kind in _WITHOUT_INPUT else f"{expected}, got {_brief(error['input'])}"


def _field_path(loc: list[int | str]) -> str:
    """``response.headers.X-A[1]`` for ('response', 'headers', 'X-A', 1); a header name's
    own error (loc ending in '[key]') is named by the header."""
    path = ""
    for part in loc:
        if part == "[key]":
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


# --- matching -----------------------------------------------------------------------------

Key = tuple[str, str, str, tuple[tuple[str, str], ...]]


def request_key(method: str, uri: str) -> Key:
    """Method, host, path and query as matching sees them; our routes normalise their path."""
    route = parse(method, uri)
    if route is not None:
        return route.key
    parts = urlsplit(uri)
    return (
        method.upper(),
        (parts.hostname or "").lower(),
        parts.path,
        normalise_query(parts.query),
    )


_NOT_JSON = object()


def parse_body(body: bytes | str | None) -> Any:
    """JSON bodies compare as JSON; anything else compares as bytes."""
    if body is None or body in (b"", ""):
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return body.encode() if isinstance(body, str) else body


def canonical(value: Any) -> str | bytes:
    """A hashable form that ignores key order and whitespace."""
    if isinstance(value, bytes):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def has_placeholder(value: Any) -> bool:
    if isinstance(value, str):
        return value.startswith(PLACEHOLDER_PREFIX)
    if isinstance(value, dict):
        return any(has_placeholder(v) for v in value.values())
    if isinstance(value, list):
        return any(has_placeholder(v) for v in value)
    return False


def first_difference(recorded: Any, incoming: Any, path: str = "$") -> str | None:
    """The JSON path where two bodies first differ; a placeholder matches anything."""
    if isinstance(recorded, str) and recorded.startswith(PLACEHOLDER_PREFIX):
        return None
    if isinstance(recorded, dict) and isinstance(incoming, dict):
        for k in sorted(recorded.keys() | incoming.keys()):
            if k not in recorded or k not in incoming:
                return f"{path}.{k}"
            found = first_difference(recorded[k], incoming[k], f"{path}.{k}")
            if found:
                return found
        return None
    if isinstance(recorded, list) and isinstance(incoming, list):
        if len(recorded) != len(incoming):
            return f"{path} (length {len(recorded)} vs {len(incoming)})"
        for i, (a, b) in enumerate(zip(recorded, incoming, strict=True)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if recorded == incoming else path


@dataclass
class _Slot:
    """Interactions that answer the same request, played in order, the last one repeating."""

    interactions: list[Interaction] = field(default_factory=list)
    played: int = 0

    def next(self) -> Interaction:
        chosen = self.interactions[min(self.played, len(self.interactions) - 1)]
        self.played += 1
        return chosen


@dataclass
class _Bucket:
    exact: dict[str | bytes | None, _Slot] = field(default_factory=dict)
    patterns: list[tuple[Any, _Slot]] = field(default_factory=list)


@dataclass(frozen=True)
class Miss:
    """Why nothing matched: the closest recorded request and what differed from it."""

    closest: Interaction | None
    differences: tuple[str, ...]

    def explain(self) -> str:
        if self.closest is None:
            return "the cassette holds no interactions"
        return f"closest recorded request is {self.closest.label}; differs in " + "; ".join(
            self.differences
        )


class CassetteIndex:
    """Hash index over interactions. ``match_body=False`` matches on method, URL and query."""

    def __init__(self, interactions: Iterable[Interaction] = (), *, match_body: bool = True):
        self.match_body = match_body
        self._buckets: dict[Key, _Bucket] = {}
        self._all: list[Interaction] = []
        for interaction in interactions:
            self.add(interaction)

    def __len__(self) -> int:
        return len(self._all)

    def __iter__(self) -> Iterator[Interaction]:
        return iter(self._all)

    def add(self, interaction: Interaction) -> None:
        request = interaction.request
        bucket = self._buckets.setdefault(request_key(request.method, request.uri), _Bucket())
        body = parse_body(request.body) if self.match_body else None
        if self.match_body and has_placeholder(body):
            slot = next((s for p, s in bucket.patterns if p == body), None)
            if slot is None:
                slot = _Slot()
                bucket.patterns.append((body, slot))
        else:
            slot = bucket.exact.setdefault(None if body is None else canonical(body), _Slot())
        slot.interactions.append(interaction)
        self._all.append(interaction)

    def lookup(self, method: str, uri: str, body: bytes | None) -> Interaction | None:
        """The next recorded interaction for this request, or None."""
        bucket = self._buckets.get(request_key(method, uri))
        if bucket is None:
            return None
        if not self.match_body:
            slot = bucket.exact.get(None)
            return slot.next() if slot else None
        incoming = parse_body(body)
        slot = bucket.exact.get(None if incoming is None else canonical(incoming))
        if slot is None:
            slot = next(
                (s for p, s in bucket.patterns if first_difference(p, incoming) is None), None
            )
        return slot.next() if slot else None

    def explain_miss(self, method: str, uri: str, body: bytes | None) -> Miss:
        """Closest recorded request by how many of method/host/path/query/body differ.

        A linear scan, but only on a miss, which ends the request with an error anyway.
        """
        want = request_key(method, uri)
        incoming = parse_body(body)
        best: tuple[int, Interaction, list[str]] | None = None
        for candidate in self._all:
            diffs = self._differences(want, incoming, candidate)
            if best is None or len(diffs) < best[0]:
                best = (len(diffs), candidate, diffs)
        if best is None:
            return Miss(None, ())
        return Miss(best[1], tuple(best[2]))

    def _differences(self, want: Key, incoming: Any, candidate: Interaction) -> list[str]:
        have = request_key(candidate.request.method, candidate.request.uri)
        names = ("method", "host", "path", "query")
        diffs = [
            f"{name} ({_show(h)} recorded, {_show(w)} sent)"
            for name, h, w in zip(names, have, want, strict=True)
            if h != w
        ]
        if self.match_body:
            difference = body_difference(parse_body(candidate.request.body), incoming)
            if difference:
                diffs.append(difference)
        return diffs


def body_difference(recorded: Any, incoming: Any) -> str | None:
    """How two parsed bodies differ, for a miss explanation; None when they match.

    A body on one side only has no JSON path to name: "body at $" would send the reader
    looking for a difference inside a body that isn't there.
    """
    if recorded is None and incoming is None:
        return None
    if incoming is None:
        return "body (recorded one, none sent)"
    if recorded is None:
        return "body (none recorded, one sent)"
    where = first_difference(recorded, incoming)
    return f"body at {where}" if where else None


def _show(part: Any) -> str:
    if isinstance(part, tuple):
        return "?" + "&".join(f"{k}={v}" for k, v in part) if part else "no query"
    return str(part)


def recorded_reply(interaction: Interaction) -> Reply:
    """The stored response as it was sent, headers in order, body as bytes."""
    response = interaction.response
    status = response["status"]
    headers = tuple(
        (name, str(value))
        for name, values in (response.get("headers") or {}).items()
        for value in (values if isinstance(values, list) else [values])
    )
    body = (response.get("body") or {}).get("string") or b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    return Reply(int(status["code"]), headers, body, str(status.get("message") or ""))
