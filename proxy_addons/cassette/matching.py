"""Matching requests to recorded interactions: one rule, an index that applies it in O(1),
and the explanation of a miss.

The rule: two requests are the same request when every part of their :class:`Shape` is equal
(method, host, normalised path, sorted query) and their bodies are equal as JSON, where a
recorded redaction placeholder matches any value in its place. Each recorded interaction
answers once, in recorded order, as vcrpy plays a cassette. The index hashes the same parts
(vcrpy scans every interaction on every lookup; here a lookup costs the same in a
ten-interaction cassette and a ten-thousand-interaction one), and a miss names the parts that
differ from the closest recorded request, so the two can never tell different stories.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from vcr.request import Request

from proxy_addons.cassette.cassette import PLACEHOLDER_PREFIX, Interaction, no_cyclic_gc
from proxy_addons.common import content_encoding
from proxy_addons.common.json_body import JsonBody
from proxy_addons.graph.routes import Route, normalise_query, parse

Key = tuple[str, str, str, tuple[tuple[str, str], ...]]
Group = int  # which recorded request an interaction answers: one per distinct request


class Shape(NamedTuple):
    """A request as matching sees it: the parts two requests must share, in the order a miss
    names them. ``body`` is parsed (a JSON value, bytes when not JSON), None when there is
    none or bodies are not compared."""

    method: str
    host: str
    path: str
    query: tuple[tuple[str, str], ...]
    body: Any = None

    @property
    def key(self) -> Key:
        """Every part but the body: what the index hashes first."""
        return (self.method, self.host, self.path, self.query)


Body = JsonBody | bytes | str | None  # already read (``flows.body_of``), or to be read here


def shape(
    method: str,
    uri: str,
    body: Body,
    *,
    match_body: bool = True,
    encoding: str | None = None,
) -> Shape:
    """The shape of a request; our routes normalise their path the way Graph reads it.

    ``encoding`` is the body's Content-Encoding: a compressed body (vcrpy stores one as the
    client sent it, e.g. through Kiota's compression handler) compares as what it decodes to.
    A :class:`JsonBody` is already the content (``flows.body_of`` decodes it).
    """
    parsed = parse_body(content_encoding.readable(body, encoding)) if match_body else None
    route = parse(method, uri)
    if route is not None:
        return route_shape(route, parsed)
    parts = urlsplit(uri)
    return Shape(
        method.upper(),
        (parts.hostname or "").lower(),
        parts.path,
        normalise_query(parts.query),
        parsed,
    )


def route_shape(route: Route, body: Any) -> Shape:
    """The shape of a request already parsed: its route, and its body as
    :func:`parse_body` gives it (None when bodies are not compared)."""
    return Shape(*route.key, body)


def recorded_shape(request: Request, *, match_body: bool = True) -> Shape:
    """The shape of a recorded request, its body decoded as its own headers say."""
    return shape(request.method, request.uri, recorded_body(request), match_body=match_body)


def parse_body(body: Body) -> Any:
    """JSON bodies compare as JSON; anything else compares as bytes."""
    return JsonBody.of(body).comparable


def canonical(value: Any) -> str | bytes:
    """A hashable form that ignores key order and whitespace."""
    if isinstance(value, bytes):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def recorded_body(request: Request) -> bytes | str | None:
    """A recorded request's body as text or bytes, as the application reads it: an old
    cassette's file-like body (vcrpy's ``Request`` hands those out as ``BytesIO``) as the
    bytes it holds, a compressed one decoded as the recorded request's own headers say."""
    body = request.body
    if isinstance(body, BytesIO):
        body = body.getvalue()
    return content_encoding.readable(body, request.headers.get(content_encoding.HEADER))


def may_hold_placeholder(raw: bytes | str | None) -> bool:
    """False when a body's text cannot hold a placeholder: it has no ``<``, written or
    escaped. Most bodies don't, and this spares them :func:`has_placeholder`'s walk."""
    if not raw:
        return False
    if isinstance(raw, str):
        return "<" in raw or "\\u" in raw
    return b"<" in raw or b"\\u" in raw


def has_placeholder(value: Any) -> bool:
    if isinstance(value, str):
        return value.startswith(PLACEHOLDER_PREFIX)
    if isinstance(value, dict):
        return any(has_placeholder(v) for v in value.values())
    if isinstance(value, list):
        return any(has_placeholder(v) for v in value)
    return False


def first_difference(recorded: Any, incoming: Any, path: str = "$") -> str | None:
    """The JSON path where two bodies first differ; a placeholder matches anything.

    Values compare in their canonical form, as the index hashes them: ``1`` and ``1.0`` or
    ``true`` differ here exactly when they land in different slots there.
    """
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
    return None if canonical(recorded) == canonical(incoming) else path


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


def differences(recorded: Shape, sent: Shape) -> tuple[str, ...]:
    """Every part in which ``sent`` is not ``recorded``; none means they match."""
    named = [
        f"{name} ({_show(have)} recorded, {_show(want)} sent)"
        for name, have, want in zip(Shape._fields, recorded.key, sent.key, strict=False)
        if have != want
    ]
    body = body_difference(recorded.body, sent.body)
    return (*named, body) if body else tuple(named)


def _show(part: Any) -> str:
    if isinstance(part, tuple):
        return "?" + "&".join(f"{k}={v}" for k, v in part) if part else "no query"
    return str(part)


@dataclass
class _Slot:
    """Interactions that answer the same request: each once, in recorded order, as vcrpy
    plays them (its ``play_counts``); with repeats allowed, the last one then answers again."""

    group: Group
    interactions: list[Interaction] = field(default_factory=list)
    played: int = 0

    @property
    def left(self) -> bool:
        """Whether an answer not played yet remains."""
        return self.played < len(self.interactions)

    def next(self) -> Interaction:
        """The next answer: the first one not played yet, else (repeats) the last one."""
        chosen = self.interactions[min(self.played, len(self.interactions) - 1)]
        self.played += 1
        return chosen


@dataclass
class _Bucket:
    """The slots of one :attr:`Shape.key`: by canonical body, and those whose recorded body
    holds placeholders, which are tried in turn. ``verbatim`` finds an exact slot by the
    recorded body's very bytes: a client that sends what was recorded, byte for byte (the
    usual case when a test runs again), is found without its body being re-serialised."""

    exact: dict[str | bytes | None, _Slot] = field(default_factory=dict)
    patterns: list[tuple[Any, _Slot]] = field(default_factory=list)
    verbatim: dict[bytes, _Slot] = field(default_factory=dict)


REPEATS_HINT = (
    "allow repeats with --allow-playback-repeats (allow_playback_repeats=True in the marker)"
)


@dataclass(frozen=True)
class Miss:
    """Why nothing answered: the closest recorded request and what differed from it; or,
    when ``played`` is not 0, that request itself, whose ``played`` answers were all used."""

    closest: Interaction | None
    differences: tuple[str, ...]
    played: int = 0

    @property
    def exhausted(self) -> bool:
        """Whether the request was recorded, and every recorded answer to it was played."""
        return self.played > 0

    def explain(self) -> str:
        if self.exhausted:
            return (
                f"all {self.played} recorded answers to this request were already played; "
                + REPEATS_HINT
            )
        if self.closest is None:
            return "the cassette holds no interactions"
        return f"closest recorded request is {self.closest.label}; differs in " + "; ".join(
            self.differences
        )


def _wild_query(query: tuple[tuple[str, str], ...]) -> bool:
    return any(value.startswith(PLACEHOLDER_PREFIX) for _, value in query)


def _without_values(key: Key) -> Key:
    method, host, path, query = key
    return (method, host, path, tuple((name, "") for name, _ in query))


class CassetteIndex:
    """Hash index over interactions. ``match_body=False`` matches on method, URL and query.

    Each recorded interaction answers once, in recorded order, as vcrpy plays a cassette
    (``allow_playback_repeats=False``, its default) and mitmproxy's server replay pops each
    flow: a request beyond its recorded answers is a miss that says so. ``allow_repeats``
    (vcrpy's ``allow_playback_repeats``) lets the last answer to a request answer again.
    """

    def __init__(
        self,
        interactions: Iterable[Interaction] = (),
        *,
        match_body: bool = True,
        allow_repeats: bool = False,
    ):
        self.match_body = match_body
        self.allow_repeats = allow_repeats
        self._buckets: dict[Key, _Bucket] = {}
        # Keys whose query holds a redaction placeholder (a swept token), by everything but
        # the query's values: a placeholder there matches any value, as it does in a body.
        self._wild: dict[Key, list[Key]] = {}
        self._all: list[Interaction] = []
        self._groups: list[Group] = []  # the group of each interaction, in order of adding
        self._slots = 0
        with no_cyclic_gc():
            for interaction in interactions:
                self.add(interaction)

    def __len__(self) -> int:
        return len(self._all)

    def __iter__(self) -> Iterator[Interaction]:
        return iter(self._all)

    def shape(self, method: str, uri: str, body: Body) -> Shape:
        """A request's shape as this index compares it."""
        return shape(method, uri, body, match_body=self.match_body)

    def _compared(self, sent: Shape) -> Shape:
        return sent if self.match_body or sent.body is None else sent._replace(body=None)

    def add(self, interaction: Interaction) -> None:
        request = interaction.request
        raw = recorded_body(request)  # what recorded_shape reads; kept for the checks below
        recorded = self.shape(request.method, request.uri, raw)
        if recorded.key not in self._buckets and _wild_query(recorded.query):
            self._wild.setdefault(_without_values(recorded.key), []).append(recorded.key)
        bucket = self._buckets.setdefault(recorded.key, _Bucket())
        body = recorded.body
        if may_hold_placeholder(raw) and has_placeholder(body):
            slot = next((s for p, s in bucket.patterns if p == body), None)
            if slot is None:
                slot = _Slot(self._next_group())
                bucket.patterns.append((body, slot))
        else:
            exact = None if body is None else canonical(body)
            slot = bucket.exact.get(exact)
            if slot is None:
                slot = bucket.exact[exact] = _Slot(self._next_group())
            if self.match_body and isinstance(raw, bytes):
                bucket.verbatim.setdefault(raw, slot)  # the same bytes: the same canonical body
        slot.interactions.append(interaction)
        self._all.append(interaction)
        self._groups.append(slot.group)

    def _next_group(self) -> Group:
        self._slots += 1
        return self._slots - 1

    def _candidates(self, sent: Shape, raw: bytes | None = None) -> Iterator[_Slot]:
        """Every slot whose recorded request matches ``sent``, most exact first: the one with
        the same body (found by its very bytes when it can be), then those whose recorded
        body holds placeholders, in recorded order. Lazy: the placeholder bodies are walked
        only when an earlier slot has no answer left."""
        sent = self._compared(sent)
        bucket = self._buckets.get(sent.key) or self._wild_bucket(sent.key)
        if bucket is None:
            return
        exact = bucket.verbatim.get(raw) if raw and self.match_body else None
        if exact is None:
            exact = bucket.exact.get(None if sent.body is None else canonical(sent.body))
        if exact is not None:
            yield exact
        if sent.body is None:
            # A placeholder stands in for a value, never for a missing body (body_difference
            # says they differ, so the index must not match them).
            return
        for pattern, slot in bucket.patterns:
            if first_difference(pattern, sent.body) is None:
                yield slot

    def _wild_bucket(self, key: Key) -> _Bucket | None:
        for recorded in self._wild.get(_without_values(key), ()) if self._wild else ():
            if all(
                r == s or r.startswith(PLACEHOLDER_PREFIX)
                for (_, r), (_, s) in zip(recorded[3], key[3], strict=True)
            ):
                return self._buckets[recorded]
        return None

    def lookup(self, method: str, uri: str, body: Body) -> Interaction | None:
        """The next recorded interaction for this request, or None."""
        raw = body.raw if isinstance(body, JsonBody) else body
        return self.play(self.shape(method, uri, body), raw if isinstance(raw, bytes) else None)

    def play(self, sent: Shape, raw: bytes | None = None) -> Interaction | None:
        """The next recorded interaction for a request of this shape, or None when none
        matches or (without ``allow_repeats``) every one that does was played; ``raw``, the
        body's bytes as sent, when the caller has them, finds a verbatim match sooner."""
        first = None
        for slot in self._candidates(sent, raw):
            if slot.left:
                return slot.next()
            first = first or slot
        return first.next() if first is not None and self.allow_repeats else None

    def group(self, sent: Shape) -> Group | None:
        """Which recorded request this one is, without playing an answer; None if none."""
        slot = next(self._candidates(sent), None)
        return slot.group if slot else None

    def groups(self) -> list[Group]:
        """The group of each interaction, in the order they were added."""
        return list(self._groups)

    def unplayed(self) -> list[Interaction]:
        """The interactions no request has played yet, in the order they were added (vcrpy's
        ``Cassette.all_played``, turned round: what a test that used the cassette up left)."""
        left: set[int] = set()
        for bucket in self._buckets.values():
            for slot in (*bucket.exact.values(), *(s for _, s in bucket.patterns)):
                left.update(map(id, slot.interactions[slot.played :]))
        return [interaction for interaction in self._all if id(interaction) in left]

    def explain_miss(self, method: str, uri: str, body: Body) -> Miss:
        return self.explain(self.shape(method, uri, body))

    def explain(self, sent: Shape) -> Miss:
        """Why ``sent`` got no answer: every answer recorded for it was played, or the
        closest recorded request by how many of method/host/path/query/body differ.

        A linear scan, but only on a miss, which ends the request with an error anyway.
        """
        matching = list(self._candidates(sent))
        if matching:
            played = sum(len(slot.interactions) for slot in matching)
            return Miss(matching[0].interactions[-1], (), played)
        sent = self._compared(sent)
        best: tuple[Interaction, tuple[str, ...]] | None = None
        for candidate in self._all:
            found = differences(recorded_shape(candidate.request, match_body=self.match_body), sent)
            if best is None or len(found) < len(best[1]):
                best = (candidate, found)
        if best is None:
            return Miss(None, ())
        return Miss(*best)
