"""Matching requests to recorded interactions: an index that finds one in O(1).

vcrpy scans every interaction on every lookup; this index hashes the parts a match needs
(method, host, normalised path, sorted query, body as JSON), so a lookup costs the same in a
ten-interaction cassette and a ten-thousand-interaction one. Recorded bodies with redaction
placeholders in them still match the real values they replaced. On a miss it names the
closest recorded request and what differed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from proxy_addons.cassette import PLACEHOLDER_PREFIX, Interaction
from proxy_addons.routes import normalise_query, parse

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
