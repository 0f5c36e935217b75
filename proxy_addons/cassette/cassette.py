"""VCR cassettes: vcrpy's on-disk format, read, checked and written.

The file format, serializer and request class are vcrpy's own, so a cassette written here
plays in plain vcrpy and pytest-recording, and theirs play here. What is ours: every
interaction's shape is checked at load by a pydantic model of that format, so a damaged
cassette is one clear error naming its file and line, never a failure at request time.
Matching lives in ``matching.py``, durable appending in ``writer.py``.
"""

from __future__ import annotations

import base64
import gc
import logging
import mmap
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property, partial
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

from proxy_addons.cassette.bundled import bundled_cassettes  # noqa: F401 - its old address
from proxy_addons.common import content_encoding
from proxy_addons.common.yaml_loading import (
    SAFE_LOADER,
    NotPlain,
    error_location,
    load_plain,
    scalar_tag,
)
from proxy_addons.graph.replies import Reply

CASSETTE_SUFFIXES = (".yaml", ".yml")
# Redacted values are written as "<redacted...>" (see record.py); such a recorded value
# matches any incoming value in the same place.
PLACEHOLDER_PREFIX = "<redacted"


# The layout we write: ``version`` first and ``interactions`` last, so that one more
# interaction is one more list item appended at the end of the file (see record.py).
HEADER = "version: 1\ninteractions:\n"
BLOCK_START = "- request:"
# What every block we write ends with: the response's status, whose keys vcrpy's dumper
# sorts last (``response`` after ``request``, ``status`` after ``body`` and ``headers``).
COMPLETE_TAIL = re.compile(rb"\n      code: \d+\n      message: [^\n]*\n\Z")
_TAIL_PROBE = 512
PAGE = mmap.PAGESIZE  # the kernel copies a write into a file page by page

logger = logging.getLogger(__name__)


def interaction_yaml(request: Request, response: dict[str, Any]) -> str:
    """One interaction as a YAML list item, to follow ``HEADER`` or earlier items.

    vcrpy's own dict conversion, and exactly the text vcrpy's dumper writes for it (so vcrpy
    reads back exactly what it would write): :func:`_yaml_nodes` builds the YAML nodes vcrpy's
    dumper would, in a fraction of its time, and PyYAML's C serializer writes them; anything
    but the plain values a cassette holds goes to vcrpy's dumper itself.
    """
    body = response.get("body")
    response = {**response, "body": dict(body)} if isinstance(body, dict) else dict(response)
    item = [
        {
            "request": compat.convert_to_unicode(request._to_dict()),
            "response": compat.convert_to_unicode(response),  # converts our copy, in place
        }
    ]
    try:
        return yaml.serialize(_yaml_nodes(item, set()), Dumper=_Dumper)
    except _NotPlain:
        return yamlserializer.serialize(item)


# What vcrpy's dumper (yaml.dump's defaults: keys sorted, block style) makes of each plain
# value; tests/test_cassette.py holds the two to the same text for any interaction.
_BASE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_BASE_DUMPER):  # type: ignore[misc, valid-type]
    """PyYAML's safe dumper, remembering the tag each short scalar resolves to: the writer
    asks twice per scalar, and the keys, header names and most header values of one block
    are those of the last."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and len(value) <= 64:
            return scalar_tag(value, implicit)
        return super().resolve(kind, value, implicit)


_STR, _INT, _NULL = "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:null"
_BINARY, _MAP, _SEQ = "tag:yaml.org,2002:binary", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


class _NotPlain(Exception):
    """A value :func:`_yaml_nodes` leaves to vcrpy's dumper."""


def _yaml_nodes(value: Any, seen: set[int]) -> yaml.Node:
    """The YAML node of a plain value: str, bytes, int, None, and lists and str-keyed dicts
    of them, each list or dict once (the dumper writes one seen twice as an alias)."""
    kind = type(value)
    if kind is str:
        return yaml.ScalarNode(_STR, value)
    if kind is dict or kind is list:
        if id(value) in seen:
            raise _NotPlain
        seen.add(id(value))
        if kind is list:
            return yaml.SequenceNode(_SEQ, [_yaml_nodes(v, seen) for v in value], flow_style=False)
        if any(type(k) is not str for k in value):
            raise _NotPlain
        pairs = [(yaml.ScalarNode(_STR, k), _yaml_nodes(v, seen)) for k, v in sorted(value.items())]
        return yaml.MappingNode(_MAP, pairs, flow_style=False)
    if kind is bytes:
        return yaml.ScalarNode(_BINARY, base64.encodebytes(value).decode("ascii"), style="|")
    if kind is int:
        return yaml.ScalarNode(_INT, str(value))
    if value is None:
        return yaml.ScalarNode(_NULL, "null")
    raise _NotPlain


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

    @cached_property
    def reply(self) -> Reply:
        """:func:`recorded_reply`, made on first use and kept: replay sends it again and
        again, and only its fresh headers change."""
        return recorded_reply(self)


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
    with no_cyclic_gc():
        return [i for f in files for i in load_file(f)]


@contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """Building a big cassette's objects makes the cyclic collector rescan them over and over
    (two thirds of vcrpy's 10,000-interaction load); they hold no cycles, so it can wait.
    The index built from them waits too (``matching.CassetteIndex``), and a proxy then moves
    the lot out of the collector's sight for good (``gc.freeze`` in ``serving.serve``)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def deserialize_yaml(text: str) -> Any:
    """vcrpy's ``yamlserializer.deserialize(text)``, in half its time for a cassette.

    A cassette is plain values (text, numbers, ``!!binary``, mappings and lists), which
    :func:`yaml_loading.load_plain` builds from PyYAML's C parser exactly as vcrpy's safe
    loader does (a hypothesis test holds the two to the same result); any other document,
    and any document that does not parse, is read by vcrpy's serializer itself, so its
    values and its errors are vcrpy's.
    """
    try:
        return load_plain(text)
    except (NotPlain, yaml.YAMLError, RecursionError):
        return yamlserializer.deserialize(text)


class _KeepParsed:
    """vcrpy's YAML serializer (:func:`deserialize_yaml`), keeping the parsed document so
    that its shape can be checked after vcrpy has built its objects, without parsing the
    file a second time."""

    def __init__(self) -> None:
        self.data: Any = None

    def deserialize(self, text: str) -> Any:
        self.data = deserialize_yaml(text)
        return self.data


def load_file(path: Path, text: str | None = None) -> list[Interaction]:
    """One cassette file, refused with its line unless every interaction has vcrpy's shape;
    ``text`` is the file's, when the caller has read it already (:func:`read_text`).

    vcrpy checks almost nothing: a response whose body is ``5`` loads fine and breaks the
    request that replays it. Checking the shape here turns that into a load-time error.
    """
    if text is None:
        text = read_text(path)
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


def read_text(path: Path) -> str:
    """A cassette file's text; :class:`CassetteError` if it can't be read or isn't UTF-8.

    A torn last block (see :func:`torn_tail`) is left out, with a warning: its response was
    never sent, and the next writer of ours drops it from the file under its lock.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CassetteError(path, None, exc.strerror or str(exc)) from None
    torn = torn_tail(data)
    if torn:
        logger.warning("%s: %s", path, torn_message(data, torn))
        data = data[: len(data) - torn]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CassetteError(path, line, f"not UTF-8 text (byte {exc.start})") from None


def torn_tail(data: bytes, *, offset: int = 0, size: int | None = None) -> int:
    """How many bytes at the end of a cassette in our layout are a torn last block: an
    append a kill cut short, whose response the recorder never sent. 0 when it ends whole.

    ``data`` is the file's bytes from ``offset`` to its end (``size``): the whole file, or,
    for a writer that reads only the end, from the start of its last block. The kernel
    copies one ``write`` into the file page by page and acts on a SIGKILL only between
    pages, so a torn block always ends on a page boundary; a last block broken anywhere else
    is damage someone else did, and stays an error that names its line. The recorder sends
    a response only once its block is written whole, so the bytes dropped were never
    anyone's answer. The first block is never torn: it comes with the file, linked into
    place whole (``cassette_writer``). A tail that can't be decided from ``data`` (it holds
    no start of a block) counts as torn here; the writer then reads its last block.
    """
    size = offset + len(data) if size is None else size
    if size % PAGE or COMPLETE_TAIL.search(data[-_TAIL_PROBE:]):
        return 0
    if offset == 0 and not data.startswith(HEADER.encode()):
        return 0
    partial = data[data.rfind(b"\n") + 1 :]
    if partial and len(partial) < len(BLOCK_START) and BLOCK_START.encode().startswith(partial):
        return len(partial)  # too little of the new block to find by its start
    start = data.rfind(("\n" + BLOCK_START).encode()) + 1  # 0: data starts with the block
    if offset + start <= len(HEADER) or is_whole_block(data[start:]):
        return 0
    return len(data) - start


def torn_message(data: bytes, torn: int) -> str:
    """What a reader says of a torn tail: where it starts, and why nothing answered is lost."""
    line = data.count(b"\n", 0, len(data) - torn) + 1
    return (
        f"an incomplete last interaction from line {line} ({torn} bytes) is left out: an "
        "append cut short by a kill, whose response was never sent; the next recorder to "
        "open the cassette drops it from the file (until then plain vcrpy refuses the file)"
    )


def is_whole_block(block: bytes) -> bool:
    """Whether ``block`` (one list item of ``interactions``) is a whole interaction."""
    try:
        items = yamlserializer.deserialize(block)
        item = items[0]
        return (
            len(items) == 1
            and bool(item["request"]["method"])
            and bool(item["request"]["uri"])
            and int(item["response"]["status"]["code"]) > 0
            and block.endswith(b"\n")
        )
    except (yaml.YAMLError, UnicodeDecodeError, LookupError, TypeError, ValueError):
        return False


def _yaml_error(path: Path, exc: yaml.YAMLError, what: str) -> CassetteError:
    line, problem = error_location(exc)
    return CassetteError(path, line, f"{what}: {problem}")


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
        root = yaml.compose(text, Loader=SAFE_LOADER)
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


# An HTTP status code, wherever a file states one (a cassette, a Dev Proxy mocks file).
HttpStatus = Annotated[int, AfterValidator(_status_code)]


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
    code: HttpStatus
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


def recorded_reply(interaction: Interaction) -> Reply:
    """The stored response as it is sent again, headers in order, body as bytes.

    The body goes out byte for byte; a Content-Encoding that it does not carry (vcrpy under
    requests and aiohttp stores bodies decoded and keeps the header) is dropped, not believed.
    """
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
    headers = content_encoding.consistent_headers(headers, body)
    return Reply(int(status["code"]), headers, body, str(status.get("message") or ""))
