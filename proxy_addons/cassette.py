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
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
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
    with _no_cyclic_gc():
        return [i for f in cassette_files(path) for i in load_file(f)]


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


def load_file(path: Path) -> list[Interaction]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CassetteError(path, None, exc.strerror or str(exc)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CassetteError(path, line, f"not UTF-8 text (byte {exc.start})") from None
    try:
        requests, responses = deserialize(text, yamlserializer)[:2]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise CassetteError(path, line, f"not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise CassetteError(path, None, f"not valid YAML: {exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        line, message = locate_structure_error(text)
        raise CassetteError(path, line, message or f"not a vcrpy cassette ({exc})") from None
    bad = _first_bad_response(responses)
    if bad is not None:
        line, message = locate_structure_error(text)
        raise CassetteError(path, line, message or f"interaction {bad} has no usable response")
    return [
        Interaction(request, response, path, n)
        for n, (request, response) in enumerate(zip(requests, responses, strict=True))
    ]


def _first_bad_response(responses: list[Any]) -> int | None:
    for n, response in enumerate(responses):
        try:
            int(response["status"]["code"])
        except (KeyError, TypeError, ValueError):
            return n
    return None


def locate_structure_error(text: str) -> tuple[int | None, str | None]:
    """Line and reason of the first part of a parsed cassette that is not vcrpy's shape."""
    root = yaml.compose(text, Loader=yaml.CSafeLoader)
    if not isinstance(root, yaml.MappingNode):
        return 1, "not a vcrpy cassette: the document is not a mapping with 'interactions'"
    top = {k.value: v for k, v in root.value}
    items = top.get("interactions")
    if not isinstance(items, yaml.SequenceNode):
        node = items or root
        return node.start_mark.line + 1, "'interactions' must be a list of request/response pairs"
    for n, item in enumerate(items.value):
        problem = _interaction_problem(item)
        if problem:
            return item.start_mark.line + 1, f"interaction {n}: {problem}"
    return None, None


def _interaction_problem(item: yaml.Node) -> str | None:
    if not isinstance(item, yaml.MappingNode):
        return "not a mapping with 'request' and 'response'"
    parts = {k.value: v for k, v in item.value}
    for name, required in (("request", ("method", "uri")), ("response", ("status",))):
        node = parts.get(name)
        if not isinstance(node, yaml.MappingNode):
            return f"'{name}' is missing or not a mapping"
        keys = {k.value: v for k, v in node.value}
        missing = [r for r in required if r not in keys]
        if missing:
            return f"'{name}' has no {', '.join(missing)}"
        if name == "response":
            status = {k.value: v for k, v in getattr(keys["status"], "value", [])}
            if "code" not in status or not str(status["code"].value).isdigit():
                return "'response.status.code' must be a number"
    return None


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
    except (ValueError, UnicodeDecodeError):
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
            where = first_difference(parse_body(candidate.request.body), incoming)
            if where:
                diffs.append(f"body at {where}")
        return diffs


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
