"""Assertions on a test's journal: what was called, how often, in which order, and what of the
cassette was never used -- each failing with the calls listed, one per line.

Like WireMock's ``verify(n, ...)``, respx's ``route.call_count`` and vcrpy's
``Cassette.all_played``. The pytest fixture's methods (``session_client.GraphVcrProxy``) are
thin: the rules are here, as pure functions over :class:`journal.Call` records, and return
the failure message (None when the assertion holds) so that each rule is tested without a
proxy. Nothing here knows mitmproxy or pytest.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from proxy_addons.testing.journal import Call

# The operation names a selector may give (routes.Operation's values: routes.py is not
# imported, the pytest process keeps to the journal's light imports; a test holds them equal).
OPERATIONS = ("create", "get", "update", "delete", "join-url", "sms", "reminder-sms")
# The methods that change an appointment, and so must be conditional (optimistic concurrency).
WRITE_METHODS = frozenset({"PUT", "PATCH", "DELETE"})
CONDITION_HEADER = "If-Match"
ANY = ...  # a header value in ``headers=``: present, whatever its value


class SelectorError(ValueError):
    """A selector that can select nothing (a misspelt operation): an assertion that it was
    not called would pass for the wrong reason, so it is refused."""


@dataclass(frozen=True)
class Selector:
    """Which calls an assertion is about.

    ``target``: an operation name (``create``, ``get``...), or a URL path pattern starting with
    ``/`` (``*`` matches any run of characters, ``/`` included, as in :mod:`fnmatch`). Then
    each given criterion must hold too: ``method`` (any case); ``json``, a partial match of
    the request's JSON body (every key given is present with a matching value, nested dicts
    alike; a list matches a list of the same length, item by item); ``headers``, a subset of
    the request's headers (names in any case; the value :data:`ANY` is "present"). Credential
    headers are kept in the journal with a placeholder value only.
    """

    target: str | None = None
    method: str | None = None
    json: Any = None
    headers: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        target = self.target
        if target is not None and not isinstance(target, str):
            raise SelectorError(f"graph-vcr-proxy: a target is a string, not {target!r}")
        if target is not None and not target.startswith("/") and target not in OPERATIONS:
            raise SelectorError(
                f"graph-vcr-proxy: unknown operation {target!r}; expected one of "
                f"{', '.join(OPERATIONS)}, or a URL path pattern starting with '/'"
            )

    def matches(self, call: Call) -> bool:
        if self.target is not None and not _target_matches(self.target, call):
            return False
        if self.method is not None and call.method.upper() != self.method.upper():
            return False
        if self.json is not None and not json_contains(call.body, self.json):
            return False
        return self.headers is None or headers_contain(call.headers or {}, self.headers)

    def describe(self) -> str:
        parts = [self.target or "any call"]
        if self.method is not None:
            parts.append(f"method={self.method.upper()}")
        if self.json is not None:
            parts.append(f"json={self.json!r}")
        if self.headers is not None:
            shown = {k: "ANY" if v is ANY else v for k, v in self.headers.items()}
            parts.append(f"headers={shown!r}")
        return " ".join(parts)


def _target_matches(target: str, call: Call) -> bool:
    if target.startswith("/"):
        return fnmatch.fnmatchcase(urlsplit(call.url).path, target)
    return call.operation == target


def selector(target: str | Selector | None, **criteria: Any) -> Selector:
    """A :class:`Selector` from an assertion's arguments (a Selector is taken as it is)."""
    if isinstance(target, Selector):
        if any(value is not None for value in criteria.values()):
            raise SelectorError("graph-vcr-proxy: give criteria in the Selector, or not one")
        return target
    return Selector(target, **criteria)


def json_contains(actual: Any, expected: Any) -> bool:
    """Whether ``actual`` holds ``expected``: dicts by subset, recursively; lists item by
    item, of the same length; anything else by equality."""
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(
            key in actual and json_contains(actual[key], value) for key, value in expected.items()
        )
    if isinstance(expected, list | tuple):
        return (
            isinstance(actual, list | tuple)
            and len(actual) == len(expected)
            and all(json_contains(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return bool(actual == expected)


def headers_contain(actual: Mapping[str, str], expected: Mapping[str, Any]) -> bool:
    """Whether every expected header is present (names in any case) with its value, or with
    any value for :data:`ANY`."""
    folded = {name.lower(): value for name, value in actual.items()}
    for name, value in expected.items():
        if name.lower() not in folded:
            return False
        if value is not ANY and folded[name.lower()] != value:
            return False
    return True


# --- the messages -------------------------------------------------------------------------


def call_line(call: Call) -> str:
    """One call as the failure messages list it: method, URL, operation, status, answerer."""
    status = "no response" if call.status is None else str(call.status)
    operation = call.operation or "-"
    return f"{call.method} {call.url} {operation} {status} {call.answered_by.value}"


def calls_listing(calls: Sequence[Call], marked: Iterable[int] = ()) -> str:
    """The calls, numbered, one per line; those at ``marked`` indexes flagged with ``>``."""
    if not calls:
        return "  (no Graph calls)"
    flagged = set(marked)
    return "\n".join(
        f"{'>' if i in flagged else ' '} {i + 1}. {call_line(call)}" for i, call in enumerate(calls)
    )


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def called_failure(calls: Sequence[Call], wanted: Selector, times: int | None) -> str | None:
    """Why ``assert_called`` fails: ``wanted`` called never, or not exactly ``times`` times."""
    hits = [i for i, call in enumerate(calls) if wanted.matches(call)]
    if (times is None and hits) or (times is not None and len(hits) == times):
        return None
    expected = "at least once" if times is None else _times(times)
    return (
        f"expected {wanted.describe()} to be called {expected}, it was called "
        f"{_times(len(hits)) if hits else 'never'}; the calls (> selected):\n"
        + calls_listing(calls, hits)
    )


def not_called_failure(calls: Sequence[Call], unwanted: Selector) -> str | None:
    hits = [i for i, call in enumerate(calls) if unwanted.matches(call)]
    if not hits:
        return None
    return (
        f"expected {unwanted.describe()} not to be called, it was called {_times(len(hits))}; "
        "the calls (> selected):\n" + calls_listing(calls, hits)
    )


def in_order_failure(calls: Sequence[Call], wanted: Sequence[Selector], exact: bool) -> str | None:
    """Why ``assert_called_in_order`` fails. Not ``exact``: the selectors match calls in this
    order, other calls may come between (a subsequence). ``exact``: the calls are these, one
    selector each, nothing before, between or after."""
    names = ", ".join(s.describe() for s in wanted)
    if exact:
        pairs = zip(wanted, calls, strict=True) if len(calls) == len(wanted) else None
        if pairs is not None and all(want.matches(call) for want, call in pairs):
            return None
        return f"expected exactly these calls in this order: {names}; the calls:\n" + (
            calls_listing(calls)
        )
    found: list[int] = []
    position = 0
    for want in wanted:
        index = next((i for i in range(position, len(calls)) if want.matches(calls[i])), None)
        if index is None:
            return (
                f"expected calls in this order: {names}; found the first {len(found)}, then no "
                f"{want.describe()} after them; the calls (> matched in order):\n"
                + calls_listing(calls, found)
            )
        found.append(index)
        position = index + 1
    return None


def unconditional_writes_failure(calls: Sequence[Call]) -> str | None:
    """Why ``assert_writes_conditional`` fails: a PUT, PATCH or DELETE without ``If-Match``."""
    wanted = {CONDITION_HEADER: ANY}
    bare = [
        i
        for i, call in enumerate(calls)
        if call.method.upper() in WRITE_METHODS and not headers_contain(call.headers or {}, wanted)
    ]
    if not bare:
        return None
    return (
        f"expected every PUT, PATCH and DELETE to carry {CONDITION_HEADER}; "
        f"{len(bare)} did not (> without it):\n" + calls_listing(calls, bare)
    )


# --- the cassette's side: what was never played -----------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """A recorded interaction, as the proxy names it: request and place in the cassette."""

    method: str
    uri: str
    source: str
    position: int

    def to_json(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Recorded:
        return cls(**data)


def unplayed_failure(unplayed: Sequence[Recorded], calls: Sequence[Call]) -> str | None:
    """Why ``assert_all_played`` fails: the recordings never used, then the calls made."""
    if not unplayed:
        return None
    listed = "\n".join(f"  {r.method} {r.uri} ({r.source} #{r.position})" for r in unplayed)
    return (
        f"graph-vcr-proxy: {len(unplayed)} recorded interaction"
        f"{'' if len(unplayed) == 1 else 's'} never played (assert_all_played):\n{listed}\n"
        "the calls:\n" + calls_listing(calls)
    )
