"""The request journal: what a test's code sent to Graph, and who answered, as small records.

Like WireMock's request verification: the proxy keeps one :class:`Call` per Graph request of
the current test, the control endpoint serves them as JSON (``GET /calls``), and the pytest
plugin turns them back into :class:`Call` objects for assertions::

    assert [c.operation for c in graph_vcr_proxy.calls] == ["create"]

Nothing here knows mitmproxy or pytest: both sides of the control endpoint use this module.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.common.json_body import JsonBody

# Answers that mean the test itself is broken, whatever the code under test made of them: a
# bug of ours, a recording that was not stored, an upstream that was not there, a request the
# network policy stopped. A test with any of them fails (the pytest plugin), even if its code
# swallowed the error.
FAILING = frozenset(
    {
        AnsweredBy.INTERNAL_ERROR,
        AnsweredBy.RECORDING_FAILED,
        AnsweredBy.UNREACHABLE,
        AnsweredBy.NETWORK_POLICY,
    }
)


@dataclass(frozen=True)
class Call:
    """One Graph request of the test, as the client sent it, and how it was answered.

    ``body`` is the request body parsed as JSON (a dict, usually), the text when it is not
    JSON or is nested deeper than ``MAX_DEPTH`` (which every JSON reader and writer on the
    way, ours and the test's, handles), None when there was none. ``status`` is None when no
    response was sent (a ``reset`` fault, or a request still in flight). ``miss`` is the
    cassette-miss explanation (closest recorded request, what differed) when ``answered_by``
    is ``miss``. ``headers`` are the request's headers as sent (a repeated name's values
    joined by ", "), credential headers with :data:`SECRET_PLACEHOLDER` as their value.
    """

    method: str
    url: str
    operation: str | None
    body: Any
    status: int | None
    answered_by: AnsweredBy
    fault: str | None = None
    miss: str | None = None
    error: str | None = None
    batch: str | None = None  # the request's id inside the JSON $batch it came in, if it did
    headers: dict[str, str] | None = None

    def __post_init__(self) -> None:
        # Built from JSON, or by a test writing the call it expects: "replay" is fine too.
        object.__setattr__(self, "answered_by", AnsweredBy(self.answered_by))

    def to_json(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it copies the body recursively, two Python frames a level.
        return {field.name: getattr(self, field.name) for field in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Call:
        return cls(**data)

    @property
    def is_miss(self) -> bool:
        return self.answered_by is AnsweredBy.MISS

    @property
    def is_failure(self) -> bool:
        """Whether the proxy, not the code under test, failed this request."""
        return self.answered_by in FAILING


# The deepest JSON document a Call holds as JSON; a deeper one is kept as its text. Graph's
# bodies are a few levels deep; Python's JSON code recurses once a level, and the journal's
# document is written and read again on its way to the test.
MAX_DEPTH = 64


def nested_deeper_than(document: Any, depth: int) -> bool:
    """Whether ``document`` has containers more than ``depth`` levels deep (iterative: a
    document too deep for recursion is what it is asked about)."""
    stack = [(document, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            children: Iterable[Any] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if level > depth:
            return True
        stack.extend((child, level + 1) for child in children)
    return False


def parsed_body(body: JsonBody | bytes | None) -> Any:
    """A request body as a test would like to compare it: JSON parsed, else text or bytes.

    ``body`` may come already read (``flows.body_of``): the JSON the request checks and
    matching parse is then parsed once for the journal too.
    """
    read = JsonBody.of(body)
    raw = read.raw
    if raw is None:
        return None
    if read.error is None and not nested_deeper_than(read.document, MAX_DEPTH):
        return read.document
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# A credential header's value in the journal: the name stays, so a test can check that one was
# sent, but no token or cookie reaches a test report or a log.
SECRET_PLACEHOLDER = "<redacted>"


def journal_headers(fields: Iterable[tuple[str, str]], secret: Collection[str]) -> dict[str, str]:
    """A request's headers for its :class:`Call`: names as sent, the values of the (lower-case)
    ``secret`` names replaced by :data:`SECRET_PLACEHOLDER`."""
    headers: dict[str, str] = {}
    folded: dict[str, str] = {}  # lower-case name -> the spelling kept
    for name, value in fields:
        shown = SECRET_PLACEHOLDER if name.lower() in secret else value
        kept = folded.setdefault(name.lower(), name)
        headers[kept] = f"{headers[kept]}, {shown}" if kept in headers else shown
    return headers


def calls_from_json(items: Iterable[Mapping[str, Any]]) -> tuple[Call, ...]:
    return tuple(Call.from_json(item) for item in items)


def misses_message(calls: Iterable[Call]) -> str | None:
    """One line saying why a test's requests missed the cassette, or None when none did."""
    misses = [c for c in calls if c.is_miss]
    if not misses:
        return None
    first = misses[0].miss or f"{misses[0].method} {misses[0].url}"
    more = f" (and {len(misses) - 1} more)" if len(misses) > 1 else ""
    return f"graph-vcr-proxy: cassette miss{more}: {first}"


def failures_message(calls: Iterable[Call]) -> str | None:
    """One line naming the requests the proxy failed (``FAILING``), or None when none was."""
    failed = [c for c in calls if c.is_failure]
    if not failed:
        return None
    first = failed[0]
    more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
    reason = f": {first.error}" if first.error else ""
    return (
        f"graph-vcr-proxy: {first.method} {first.url} was answered {first.status} by "
        f"{first.answered_by.value}{more}{reason}"
    )
