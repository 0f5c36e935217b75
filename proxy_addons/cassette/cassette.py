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
import os
import re
import weakref
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from io import BytesIO
from pathlib import Path
from typing import Annotated, Any, BinaryIO, NamedTuple
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
from proxy_addons.common.brief import brief
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
_SCAN_CHUNK = 64 * 1024
_MARK = "\n" + BLOCK_START

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


class Interaction:
    """One recorded request and its response, in vcrpy's own representation: ``request`` a
    vcrpy ``Request``, ``response`` vcrpy's dict (body as bytes).

    An interaction loaded from a file (:func:`load_file`) is held small, since a worker holds
    every interaction of its cassettes for as long as it replays them: a vcrpy ``Request``
    and its dicts are a few kilobytes each, ten times the text they come from (a
    10,000-interaction cassette of 21 MB was 45 MB of objects). It keeps the request's four
    parts, a ``Request`` being rebuilt from them on each use (the index reads it once, a miss
    or a listing now and then), and its block of the file, compressed with its neighbours
    (:class:`_Chunk`), from which the response is parsed again when asked for: a replay asks
    once, for :attr:`reply`, which is kept. Both give exactly what vcrpy's loader gives.
    """

    __slots__ = (
        "_block",
        "_extras",
        "_parts",
        "_reply",
        "_request",
        "_response",
        "position",
        "source",
    )

    source: Path
    position: int
    _request: Request | None
    _parts: RequestParts | None
    _response: dict[str, Any] | None
    _block: BlockRef | None
    _extras: dict[str, Any] | None
    _reply: Reply | None

    def __init__(
        self, request: Request, response: dict[str, Any], source: Path, position: int
    ) -> None:
        self._set(source, position, request, None, response, None, None)

    @classmethod
    def stored(
        cls,
        parts: RequestParts,
        block: BlockRef,
        source: Path,
        position: int,
        extras: dict[str, Any] | None = None,
    ) -> Interaction:
        """An interaction held as its request's parts and its compressed block, and the
        keys its response has beyond vcrpy's own (:meth:`response_value`), if any."""
        interaction = cls.__new__(cls)
        interaction._set(source, position, None, parts, None, block, extras)
        return interaction

    def _set(self, *values: Any) -> None:
        for name, value in zip(_FIELDS, (*values, None), strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"an Interaction is frozen: cannot set {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        """Copied and pickled field by field (the kept reply is left to be made again): the
        frozen ``__setattr__`` would refuse the default way, which sets each slot."""
        return (_restored, tuple(getattr(self, name) for name in _FIELDS[:-1]))

    @property
    def request(self) -> Request:
        if self._request is not None:
            return self._request
        assert self._parts is not None
        return self._parts.request()

    @property
    def response(self) -> dict[str, Any]:
        """vcrpy's response dict; a fresh one each time for a stored interaction."""
        if self._response is not None:
            return self._response
        assert self._block is not None
        return compat.convert_to_bytes(_block_item(self._block)["response"])

    def response_value(self, key: str) -> Any:
        """``response.get(key)`` for a key beside vcrpy's ``status``, ``headers`` and
        ``body`` (an interaction's own settings, ``graph_vcr_proxy``), None when it has
        none: read for every interaction when a cassette loads, so never parsing one."""
        if self._response is not None:
            return self._response.get(key)
        return None if self._extras is None else self._extras.get(key)

    @property
    def method(self) -> str:
        return self._parts.method if self._parts is not None else self.request.method

    @property
    def uri(self) -> str:
        return self._parts.uri if self._parts is not None else self.request.uri

    @property
    def label(self) -> str:
        return f"{self.method} {self.uri} ({self.source.name} #{self.position})"

    @property
    def reply(self) -> Reply:
        """:func:`recorded_reply`, made on first use and kept: replay sends it again and
        again, and only its fresh headers change."""
        if self._reply is None:
            object.__setattr__(self, "_reply", recorded_reply(self))
        assert self._reply is not None
        return self._reply

    def __repr__(self) -> str:
        return f"Interaction({self.label})"


_FIELDS = ("source", "position", "_request", "_parts", "_response", "_block", "_extras", "_reply")


def _restored(*values: Any) -> Interaction:
    """An :class:`Interaction` of the fields :meth:`Interaction.__reduce__` gave."""
    interaction = Interaction.__new__(Interaction)
    interaction._set(*values)
    return interaction


# A cassette's match file (``match_rule.sidecar_of``) is YAML beside it, never a cassette.
MATCH_FILE_SUFFIX = ".match.yaml"


def cassette_files(path: Path) -> list[Path]:
    """The cassette files a path names: the file itself, or every cassette below a folder
    (leaving out the match files beside them)."""
    if path.is_dir():
        return sorted(
            p
            for p in path.rglob("*")
            if p.suffix in CASSETTE_SUFFIXES
            and not p.name.endswith(MATCH_FILE_SUFFIX)
            and p.is_file()
        )
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


# --- holding a loaded cassette small ---------------------------------------------------------
#
# A file in our layout (or vcrpy's: ``interactions`` first, ``version: 1`` last) is one
# ``- request:`` block per interaction. Such a file is read and parsed block by block: the
# whole document's YAML nodes were eight times the file (170 MB for a 21 MB cassette), and
# the objects built from them, interleaved with those kept, left the process that much
# bigger for good. Every block is checked as the whole document would be; any file or block
# this way can't read exactly as vcrpy would (another layout, an alias, a damaged block) is
# read whole, as before, which also gives its errors their lines.

_VCRPY_HEADER = "interactions:\n"
_VCRPY_TRAILER = "version: 1\n"
_READ = 1 << 20  # bytes read at a time
_CHUNK = 1 << 16  # bytes of blocks compressed together
_CHECK = 512  # interactions checked by the schema at a time
_VCRPY_RESPONSE = frozenset(("status", "headers", "body"))
# A line starting a new YAML document: the whole file would be refused as several.
_DOCUMENT_MARKER = re.compile(r"\n(?:---|\.\.\.)(?:[ \t\r\n]|\Z)")


class _NotBlocks(Exception):
    """A file :func:`_load_blocks` leaves to the whole-document reader."""


class RequestParts(NamedTuple):
    """What vcrpy's ``Request(**recorded)`` is built from: the body as the ``Request`` keeps
    it (text encoded), headers as (name, values) pairs, shared between the interactions
    that recorded the same ones."""

    method: str
    uri: str
    body: bytes | None
    headers: tuple[tuple[str, Any], ...] | None

    def request(self) -> Request:
        headers = self.headers
        return Request(
            self.method,
            self.uri,
            self.body,
            None if headers is None else {k: _as_given(v) for k, v in headers},
        )


def _as_given(value: Any) -> Any:
    return list(value) if type(value) is tuple else value


def _shared_parts(recorded: dict[str, Any], shared: dict[Any, Any]) -> RequestParts:
    """``recorded`` (a checked ``request:`` mapping) as :class:`RequestParts`; equal header
    names, values and sets are one object each (``shared``)."""
    body = recorded["body"]
    headers = recorded["headers"]
    if headers is not None:
        headers = tuple(
            (shared.setdefault(k, k), _shared_value(v, shared)) for k, v in headers.items()
        )
        headers = shared.setdefault(headers, headers)
    return RequestParts(
        shared.setdefault(recorded["method"], recorded["method"]),
        recorded["uri"],
        body.encode("utf-8") if isinstance(body, str) else body,
        headers,
    )


def _shared_value(value: Any, shared: dict[Any, Any]) -> Any:
    if type(value) is list:
        value = tuple(shared.setdefault(v, v) if type(v) is str else v for v in value)
    try:
        return shared.setdefault(value, value)
    except TypeError:  # unhashable: a mapping where a header value was expected
        return value


class _Chunk:
    """Consecutive blocks of a file, zlib-compressed together: the text of a cassette's
    interactions in a tenth of its size, from which one is parsed again when asked for."""

    __slots__ = ("__weakref__", "data")

    def __init__(self, blocks: list[bytes]) -> None:
        self.data = zlib.compress(b"".join(blocks), 1)


class BlockRef(NamedTuple):
    """Where an interaction's block is: its chunk, and its start and end in the chunk."""

    chunk: _Chunk
    start: int
    end: int


# The chunk decompressed last: a listing or a miss's scan reads the blocks in order.
_last_chunk: tuple[weakref.ref[_Chunk] | None, bytes] = (None, b"")


def _block_text(block: BlockRef) -> str:
    global _last_chunk
    ref, data = _last_chunk
    if ref is None or ref() is not block.chunk:
        data = zlib.decompress(block.chunk.data)
        _last_chunk = (weakref.ref(block.chunk), data)
    return data[block.start : block.end].decode("utf-8")


def _block_item(block: BlockRef) -> dict[str, Any]:
    """The interaction a block holds, as vcrpy's loader parses it (it did at load)."""
    return load_plain(_block_text(block))[0]  # type: ignore[no-any-return]


class _Stored:
    """Builds a file's stored interactions as its blocks come, a chunk at a time: its
    interactions checked by the schema together, then held as :class:`RequestParts` and
    the chunk's compressed text."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.interactions: list[Interaction] = []
        self._items: list[dict[str, Any]] = []
        self._blocks: list[bytes] = []
        self._size = 0
        self._shared: dict[Any, Any] = {}

    def add(self, block: bytes, text: str) -> None:
        """One block: its bytes, and their text."""
        if _DOCUMENT_MARKER.search(text):
            raise _NotBlocks
        try:
            items = load_plain(text)
        except (NotPlain, yaml.YAMLError, RecursionError):
            raise _NotBlocks from None
        if type(items) is not list or len(items) != 1 or type(items[0]) is not dict:
            raise _NotBlocks
        self._items.append(items[0])
        self._blocks.append(block)
        self._size += len(block)
        if self._size >= _CHUNK or len(self._items) >= _CHECK:
            self._flush()

    def _flush(self) -> None:
        if not self._items:
            return
        if first_invalid_interaction(self._items) is not None:
            raise _NotBlocks
        chunk, start = _Chunk(self._blocks), 0
        for item, block in zip(self._items, self._blocks, strict=True):
            parts = _shared_parts(item["request"], self._shared)
            ref = BlockRef(chunk, start, start + len(block))
            extras = {k: v for k, v in item["response"].items() if k not in _VCRPY_RESPONSE}
            self.interactions.append(
                Interaction.stored(parts, ref, self.path, len(self.interactions), extras or None)
            )
            start += len(block)
        self._items, self._blocks, self._size = [], [], 0

    def done(self) -> list[Interaction]:
        self._flush()
        if not self.interactions:
            raise _NotBlocks  # ``interactions:`` with no items: the whole reader says why
        return self.interactions


def _load_blocks(path: Path, text: str | None) -> list[Interaction]:
    """``path``'s interactions, read block by block; :class:`_NotBlocks` if it is not in a
    layout of blocks that each parse as one interaction of vcrpy's shape."""
    stored = _Stored(path)
    if text is not None:
        for block in _text_blocks(text):
            stored.add(block.encode("utf-8"), block)
        return stored.done()
    with path.open("rb") as file:
        for block in _file_blocks(path, file):
            try:
                stored.add(block, block.decode("utf-8"))
            except UnicodeDecodeError:
                raise _NotBlocks from None
    return stored.done()


def _text_blocks(text: str) -> Iterator[str]:
    """The blocks of a cassette's text."""
    if text.startswith(HEADER):
        body = text[len(HEADER) :]
    elif text.startswith(_VCRPY_HEADER) and text.endswith("\n" + _VCRPY_TRAILER):
        body = text[len(_VCRPY_HEADER) : -len(_VCRPY_TRAILER)]
    else:
        raise _NotBlocks
    if not body.startswith(BLOCK_START):
        raise _NotBlocks
    start = 0
    while start < len(body):
        end = body.find(_MARK, start) + 1 or len(body)
        yield body[start:end]
        start = end


def _file_blocks(path: Path, file: BinaryIO) -> Iterator[bytes]:
    """The blocks of a cassette file, read a megabyte at a time; a torn last block (see
    :func:`torn_tail`) is left out with a warning, as :func:`read_text` does."""
    size = os.fstat(file.fileno()).st_size
    head = file.read(len(HEADER))
    if head == HEADER.encode():
        begin, torn = len(HEADER), torn_length(file.fileno(), size)
        end = size - torn
    elif head.startswith(_VCRPY_HEADER.encode()):
        trailer = ("\n" + _VCRPY_TRAILER).encode()
        if os.pread(file.fileno(), len(trailer), size - len(trailer)) != trailer:
            raise _NotBlocks
        begin, end, torn = len(_VCRPY_HEADER), size - len(_VCRPY_TRAILER), 0
    else:
        raise _NotBlocks
    file.seek(begin)
    mark = _MARK.encode()
    lines = HEADER.count("\n") if torn else 0
    left, pending = end - begin, b""
    while left > 0:
        data = file.read(min(_READ, left))
        if not data:
            raise _NotBlocks  # shorter than it was a moment ago: read it whole
        left -= len(data)
        pending += data
        if not pending.startswith(BLOCK_START.encode()):
            raise _NotBlocks
        start = 0
        while (found := pending.find(mark, start + 1)) >= 0:
            yield pending[start : found + 1]
            start = found + 1
        if torn:
            lines += pending.count(b"\n", 0, start)
        pending = pending[start:]
    if pending:
        yield pending
    if torn:
        line = lines + pending.count(b"\n") + 1
        logger.warning("%s: %s", path, _torn_text(line, torn))


def load_file(path: Path, text: str | None = None) -> list[Interaction]:
    """One cassette file, refused with its line unless every interaction has vcrpy's shape;
    ``text`` is the file's, when the caller has read it already (:func:`read_text`).

    vcrpy checks almost nothing: a response whose body is ``5`` loads fine and breaks the
    request that replays it. Checking the shape here turns that into a load-time error.
    A cassette in our layout or vcrpy's is read block by block and held small (see
    :class:`Interaction`); any other, or one that this way can't read, is read whole.
    """
    try:
        return _load_blocks(path, text)
    except _NotBlocks:
        pass
    except OSError as exc:
        raise CassetteError(path, None, exc.strerror or str(exc)) from None
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


def torn_length(fd: int, size: int) -> int:
    """:func:`torn_tail` of the open file ``fd`` of ``size`` bytes, reading only its end:
    the last few hundred bytes decide the usual case, else its last block (found scanning
    backwards) does."""
    if os.pread(fd, len(HEADER), 0) != HEADER.encode():
        return 0
    tail = os.pread(fd, min(size, _TAIL_PROBE), max(0, size - _TAIL_PROBE))
    if torn_tail(tail, offset=size - len(tail), size=size) == 0:
        return 0
    start = _last_block_start(fd, size)
    if start is None:
        return 0  # the first block is never appended (it is linked whole): not torn
    return torn_tail(os.pread(fd, size - start, start), offset=start, size=size)


def _last_block_start(fd: int, size: int) -> int | None:
    """Offset of the last line starting a block, scanning backwards from the end."""
    needle = _MARK.encode()
    header = len(HEADER)
    end = size
    while end > header:
        begin = max(header - 1, end - _SCAN_CHUNK)
        chunk = os.pread(fd, end - begin + len(needle), begin)
        found = chunk.rfind(needle)
        if found >= 0:
            return begin + found + 1
        end = begin
    return None


def torn_message(data: bytes, torn: int) -> str:
    """What a reader says of a torn tail: where it starts, and why nothing answered is lost."""
    return _torn_text(data.count(b"\n", 0, len(data) - torn) + 1, torn)


def _torn_text(line: int, torn: int) -> str:
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


def _as_list(value: Any) -> Any:
    """vcrpy writes a list per header; its reader takes a single value too."""
    return value if isinstance(value, list) else [value]


def _as_text_list(value: Any) -> Any:
    """Request headers as vcrpy keeps them: whatever the client sent, bytes included."""
    return [v.decode("latin-1") if isinstance(v, bytes) else v for v in _as_list(value)]


def _body(value: Any, *, kinds: tuple[type, ...]) -> Any:
    if value is not None and not isinstance(value, kinds):
        raise ValueError(f"must be text, binary or null, got {brief(value)}")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"must be UTF-8 text, got {brief(value)}") from None
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
        raise ValueError(f"must be an absolute http(s) URL, got {brief(value)}")
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
    return expected if kind in _WITHOUT_INPUT else f"{expected}, got {brief(error['input'])}"


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
