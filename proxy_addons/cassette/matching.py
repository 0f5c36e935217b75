"""Matching requests to recorded interactions: an index that applies a rule in O(1), and
the explanation of a miss.

The rule (:class:`~proxy_addons.cassette.match_rule.MatchRule`, by default: method, scheme,
host, port, normalised path, sorted query, and the body compared as JSON, where a recorded
redaction placeholder matches any value in its place) says which parts two requests must
share. Each recorded interaction answers once, in recorded order, as vcrpy plays a cassette.
The index hashes the parts the rule names (vcrpy scans every interaction on every lookup;
here a lookup costs the same in a ten-interaction cassette and a ten-thousand-interaction
one), and a miss names the parts that differ from the closest recorded request under the
same rule, and what the rule left out, so the two can never tell different stories.

A cassette's own match file (``<name>.match.yaml``, :func:`match_rule.sidecar_of`) may refine
the rule for its recordings: an index then holds one table per rule, tried in turn.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vcr.request import Request

from proxy_addons.cassette.cassette import PLACEHOLDER_PREFIX, Interaction, no_cyclic_gc
from proxy_addons.cassette.match_rule import (
    DEFAULT_RULE,
    VALUED,
    Key,
    MatchRule,
    Shape,
    placeholder,
    values_match,
)
from proxy_addons.common import content_encoding
from proxy_addons.common.json_body import JsonBody
from proxy_addons.graph.routes import Route, normalise_query, parse

__all__ = ["CassetteIndex", "Key", "MatchRule", "Miss", "Shape"]

Group = int  # which recorded request an interaction answers: one per distinct request
SentRequest = Callable[[], Request]  # the request sent, as vcrpy's, made only if asked for
DEFAULT_PORTS = {"https": 443, "http": 80}


Body = JsonBody | bytes | str | None  # already read (``flows.body_of``), or to be read here


def shape(
    method: str,
    uri: str,
    body: Body,
    *,
    match_body: bool = True,
    encoding: str | None = None,
    headers: Any = (),
) -> Shape:
    """The shape of a request; our routes normalise their path the way Graph reads it.

    ``encoding`` is the body's Content-Encoding: a compressed body (vcrpy stores one as the
    client sent it, e.g. through Kiota's compression handler) compares as what it decodes to.
    A :class:`JsonBody` is already the content (``flows.body_of`` decodes it).
    """
    parsed = parse_body(content_encoding.readable(body, encoding)) if match_body else None
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme, 0)
    except ValueError:  # a port that is not a number: compared as none
        port = 0
    route = parse(method, uri)
    if route is not None:
        return route_shape(route, parsed, scheme=scheme, port=port, headers=headers)
    host = (parts.hostname or "").lower()
    return Shape(
        method.upper(),
        host,
        parts.path,
        normalise_query(parts.query),
        parsed,
        scheme,
        port,
        headers,
    )


def route_shape(
    route: Route, body: Any, *, scheme: str = "https", port: int = 443, headers: Any = ()
) -> Shape:
    """The shape of a request already parsed: its route, and its body as
    :func:`parse_body` gives it (None when bodies are not compared)."""
    return Shape(route.method, route.host, route.path, route.query, body, scheme, port, headers)


def recorded_shape(request: Request, *, match_body: bool = True) -> Shape:
    """The shape of a recorded request, its body decoded as its own headers say."""
    return shape(
        request.method,
        request.uri,
        recorded_body(request),
        match_body=match_body,
        headers=request.headers,
    )


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


def differences(recorded: Shape, sent: Shape, rule: MatchRule = DEFAULT_RULE) -> tuple[str, ...]:
    """Every part ``rule`` compares in which ``sent`` is not ``recorded``; none: they match
    (custom matchers aside: they need the requests, see :meth:`CassetteIndex.explain`)."""
    return rule.differences(recorded, sent, body_difference)


@dataclass
class _Slot:
    """Interactions that answer the same request: each once, in recorded order, as vcrpy
    plays them (its ``play_counts``); with repeats allowed, the last one then answers again.
    ``alike``: the next slot whose recorded request is the same under the hashed parts but
    not under the rule's custom matchers (only a rule with such matchers has any)."""

    group: Group
    interactions: list[Interaction] = field(default_factory=list)
    played: int = 0
    alike: _Slot | None = None

    @property
    def left(self) -> bool:
        """Whether an answer not played yet remains."""
        return self.played < len(self.interactions)

    def next(self) -> Interaction:
        """The next answer: the first one not played yet, else (repeats) the last one."""
        chosen = self.interactions[min(self.played, len(self.interactions) - 1)]
        self.played += 1
        return chosen

    def chain(self) -> Iterator[_Slot]:
        slot: _Slot | None = self
        while slot is not None:
            yield slot
            slot = slot.alike


@dataclass
class _Bucket:
    """The slots of one rule key: by canonical body, and those whose recorded body
    holds placeholders, which are tried in turn. ``verbatim`` finds an exact slot by the
    recorded body's very bytes: a client that sends what was recorded, byte for byte (the
    usual case when a test runs again), is found without its body being re-serialised."""

    exact: dict[str | bytes | None, _Slot] = field(default_factory=dict)
    patterns: list[tuple[Any, _Slot]] = field(default_factory=list)
    verbatim: dict[bytes, _Slot] = field(default_factory=dict)

    def slots(self) -> Iterator[_Slot]:
        for first in (*self.exact.values(), *(s for _, s in self.patterns)):
            yield from first.chain()


REPEATS_HINT = (
    "allow repeats with --allow-playback-repeats (allow_playback_repeats=True in the marker)"
)


@dataclass(frozen=True)
class Miss:
    """Why nothing answered: the closest recorded request and what differed from it; or,
    when ``played`` is not 0, that request itself, whose ``played`` answers were all used.
    ``left_out``: what the rule did not compare (:meth:`MatchRule.leaves_out`)."""

    closest: Interaction | None
    differences: tuple[str, ...]
    played: int = 0
    left_out: tuple[str, ...] = ()

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
        said = f"closest recorded request is {self.closest.label}; differs in " + "; ".join(
            self.differences
        )
        if self.left_out:
            said += "; ignored: " + ", ".join(self.left_out)
        return said


class _Table:
    """One rule's hash table: buckets by the rule's key. Keys whose query or headers hold a
    redaction placeholder (a swept token, a redacted Authorization) are also found by
    everything but those values (``wild``): a placeholder there matches any value, as it
    does in a body (:func:`match_rule.values_match`)."""

    def __init__(self, rule: MatchRule) -> None:
        self.rule = rule
        self.buckets: dict[Key, _Bucket] = {}
        self.wild: dict[Key, list[Key]] = {}
        self.valued = tuple(at for at in map(rule.position, VALUED) if at is not None)
        # The same bytes are the same body under any ignored paths; not so for a matcher.
        self.verbatim = rule.compares_body and not rule.matchers

    def without_values(self, key: Key) -> Key:
        return tuple(
            tuple((name, "") for name, _ in part) if at in self.valued else part
            for at, part in enumerate(key)
        )

    def is_wild(self, key: Key) -> bool:
        return any(placeholder(value) for at in self.valued for _, value in key[at])

    def found(self, key: Key) -> Iterator[_Bucket]:
        """The buckets whose recorded key matches ``key``: its own, then every one whose
        placeholders match its values, in recorded order (recordings made with several
        tokens hold several placeholders: each is a candidate)."""
        own = self.buckets.get(key)
        if own is not None:
            yield own
        for recorded in self.wild.get(self.without_values(key), ()) if self.wild else ():
            if recorded != key and all(values_match(recorded[at], key[at]) for at in self.valued):
                yield self.buckets[recorded]


class CassetteIndex:
    """Hash index over interactions under a :class:`MatchRule` (``match_body=False``: the
    rule without body, ``--ignore-body``); each cassette file's own match file refines it.

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
        rule: MatchRule = DEFAULT_RULE,
    ):
        if not match_body:
            rule = rule.without_body()
        self.rule = rule
        self.allow_repeats = allow_repeats
        self._tables: dict[MatchRule, _Table] = {}
        self._file_rules: dict[Path, _Table] = {}
        self._all: list[Interaction] = []
        self._groups: list[Group] = []  # the group of each interaction, in order of adding
        self._slots = 0
        with no_cyclic_gc():
            for interaction in interactions:
                self.add(interaction)

    @property
    def match_body(self) -> bool:
        return self.rule.compares_body

    def __len__(self) -> int:
        return len(self._all)

    def __iter__(self) -> Iterator[Interaction]:
        return iter(self._all)

    def shape(self, method: str, uri: str, body: Body) -> Shape:
        """A request's shape, body included: a cassette's own rule may compare it."""
        return shape(method, uri, body)

    def _table_of(self, source: Path) -> _Table:
        """The table of the rule for recordings from ``source``: this index's rule, refined
        by the cassette's own match file if it has one (read once per file)."""
        table = self._file_rules.get(source)
        if table is None:
            rule = self.rule.for_cassette(source)
            table = self._tables.get(rule)
            if table is None:
                table = self._tables[rule] = _Table(rule)
            table = self._file_rules[source] = table
        return table

    def add(self, interaction: Interaction) -> None:
        request = interaction.request
        table = self._table_of(interaction.source)
        rule = table.rule
        raw = recorded_body(request)  # what recorded_shape reads; kept for the checks below
        recorded = shape(
            request.method,
            request.uri,
            raw,
            match_body=rule.compares_body,
            headers=request.headers,
        )
        key = rule.key(recorded)
        if key not in table.buckets and table.valued and table.is_wild(key):
            table.wild.setdefault(table.without_values(key), []).append(key)
        bucket = table.buckets.setdefault(key, _Bucket())
        body = rule.body(recorded)
        if may_hold_placeholder(raw) and has_placeholder(body):
            slot = next(
                (s for p, s in bucket.patterns if p == body and self._alike(rule, s, request)),
                None,
            )
            if slot is None:
                slot = _Slot(self._next_group())
                bucket.patterns.append((body, slot))
        else:
            exact = None if body is None else canonical(body)
            first = bucket.exact.get(exact)
            slot = None
            if first is None:
                slot = bucket.exact[exact] = _Slot(self._next_group())
            else:
                slot = next((s for s in first.chain() if self._alike(rule, s, request)), None)
                if slot is None:  # the same but for a custom matcher: a slot of its own
                    slot = _Slot(self._next_group())
                    *_, last = first.chain()
                    last.alike = slot
            if table.verbatim and isinstance(raw, bytes):
                bucket.verbatim.setdefault(raw, slot)  # the same bytes: the same canonical body
        slot.interactions.append(interaction)
        self._all.append(interaction)
        self._groups.append(slot.group)

    @staticmethod
    def _alike(rule: MatchRule, slot: _Slot, request: Request) -> bool:
        """Whether ``request`` (recorded) is the request ``slot`` answers, for the rule's
        custom matchers (always, without any)."""
        return not rule.matchers or not rule.failures(request, slot.interactions[0].request)

    def _next_group(self) -> Group:
        self._slots += 1
        return self._slots - 1

    def _candidates(
        self, sent: Shape, raw: bytes | None = None, request: SentRequest | None = None
    ) -> Iterator[_Slot]:
        """Every slot whose recorded request matches ``sent``, most exact first: the one with
        the same body (found by its very bytes when it can be), then those whose recorded
        body holds placeholders, in recorded order; each table (rule) in turn. Lazy: the
        placeholder bodies are walked only when an earlier slot has no answer left.
        ``request`` makes the sent request as vcrpy's, for custom matchers."""
        for table in self._tables.values():
            yield from self._table_candidates(table, sent, raw, request)

    def _table_candidates(
        self, table: _Table, sent: Shape, raw: bytes | None, request: SentRequest | None
    ) -> Iterator[_Slot]:
        rule = table.rule
        key = rule.key(sent)
        body = rule.body(sent)
        for bucket in table.found(key):
            yield from self._bucket_candidates(table, bucket, body, raw, request)

    @staticmethod
    def _bucket_candidates(
        table: _Table, bucket: _Bucket, body: Any, raw: bytes | None, request: SentRequest | None
    ) -> Iterator[_Slot]:
        rule = table.rule
        exact = bucket.verbatim.get(raw) if raw and table.verbatim else None
        if exact is None:
            exact = bucket.exact.get(None if body is None else canonical(body))
        passes = _passes(rule, request)
        if exact is not None:
            if exact.alike is None and passes is _always:
                yield exact  # nearly every lookup: one slot, no custom matcher
            else:
                yield from (s for s in exact.chain() if passes(s))
        if body is None:
            # A placeholder stands in for a value, never for a missing body (body_difference
            # says they differ, so the index must not match them).
            return
        for pattern, slot in bucket.patterns:
            if first_difference(pattern, body) is None and passes(slot):
                yield slot

    def lookup(self, method: str, uri: str, body: Body) -> Interaction | None:
        """The next recorded interaction for this request, or None."""
        raw = body.raw if isinstance(body, JsonBody) else body
        return self.play(self.shape(method, uri, body), raw if isinstance(raw, bytes) else None)

    def play(
        self, sent: Shape, raw: bytes | None = None, request: SentRequest | None = None
    ) -> Interaction | None:
        """The next recorded interaction for a request of this shape, or None when none
        matches or (without ``allow_repeats``) every one that does was played; ``raw``, the
        body's bytes as sent, when the caller has them, finds a verbatim match sooner;
        ``request`` gives the request as vcrpy's, for a rule's custom matchers."""
        first = None
        for slot in self._candidates(sent, raw, request):
            if slot.left:
                return slot.next()
            first = first or slot
        return first.next() if first is not None and self.allow_repeats else None

    def matched(self, sent: Shape, request: SentRequest | None = None) -> set[Group]:
        """Every recorded request this one is (each whose answers :meth:`play` may give
        it: several, where recordings hold placeholders), without playing an answer."""
        return {slot.group for slot in self._candidates(sent, None, request)}

    def groups(self) -> list[Group]:
        """The group of each interaction, in the order they were added."""
        return list(self._groups)

    def unplayed(self) -> list[Interaction]:
        """The interactions no request has played yet, in the order they were added (vcrpy's
        ``Cassette.all_played``, turned round: what a test that used the cassette up left)."""
        left: set[int] = set()
        for table in self._tables.values():
            for bucket in table.buckets.values():
                for slot in bucket.slots():
                    left.update(map(id, slot.interactions[slot.played :]))
        return [interaction for interaction in self._all if id(interaction) in left]

    def explain_miss(
        self, method: str, uri: str, body: Body, request: SentRequest | None = None
    ) -> Miss:
        return self.explain(self.shape(method, uri, body), request)

    def explain(self, sent: Shape, request: SentRequest | None = None) -> Miss:
        """Why ``sent`` got no answer: every answer recorded for it was played, or the
        closest recorded request by how many of the parts its rule compares differ (custom
        matchers counted too), with what that rule leaves out.

        A linear scan, but only on a miss, which ends the request with an error anyway.
        """
        matching = list(self._candidates(sent, None, request))
        if matching:
            played = sum(len(slot.interactions) for slot in matching)
            return Miss(matching[0].interactions[-1], (), played)
        best: tuple[Interaction, tuple[str, ...], MatchRule] | None = None
        made: list[Request] = []
        for candidate in self._all:
            rule = self._table_of(candidate.source).rule
            found = differences(recorded_shape(candidate.request), sent, rule)
            if rule.matchers and request is not None:
                made = made or [request()]
                found = (*found, *rule.failures(made[0], candidate.request))
            if best is None or len(found) < len(best[1]):
                best = (candidate, found, rule)
        if best is None:
            return Miss(None, ())
        closest, found, rule = best
        return Miss(closest, found, left_out=rule.leaves_out())


def _always(slot: _Slot) -> bool:
    return True


def _passes(rule: MatchRule, request: SentRequest | None) -> Callable[[_Slot], bool]:
    """Whether a slot's recorded request passes the rule's custom matchers against the sent
    one (made once, on first need); always, for a rule without any. A rule with matchers and
    no sent request to call them with matches nothing: never fail open."""
    if not rule.matchers:
        return _always
    made: list[Request] = []

    def passes(slot: _Slot) -> bool:
        if request is None:
            return False
        if not made:
            made.append(request())
        return not rule.failures(made[0], slot.interactions[0].request)

    return passes
