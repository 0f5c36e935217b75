"""A Graph JSON batch (``POST /{v1.0|beta}/$batch``), read as Graph reads it; without mitmproxy.

Graph's rules (docs "Combine multiple HTTP requests using JSON batching", facts and sources in
``docs/batch.md``): a body ``{"requests": [...]}`` of at most 20 entries, each with an ``id``
(unique, compared case-insensitively), a ``method``, a ``url`` relative to the version (with
or without the leading slash), optional ``headers`` (which must carry ``Content-Type`` when a
``body`` is given), a ``body`` (JSON, or base64 text when not JSON) and ``dependsOn`` (ids of
the same batch). A batch that breaks a rule is refused whole with Graph's ``400``; a valid
one is answered ``200`` with ``{"responses": [{"id", "status", "headers", "body"}]}``, and a
request whose dependency failed is answered ``424 Failed Dependency`` without being run.

Everything here is pure and total: :func:`parse` returns a :class:`Batch` or a
:class:`Refusal` for any JSON document, never raising; :func:`run_order` is the order the
requests are answered in (the listed order, each after what it depends on); the answers are
joined by :func:`responses_body`. The addon (``batching.py``) runs each request.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from proxy_addons.graph.replies import BAD_REQUEST, Reply, error_reply
from proxy_addons.graph.routes import is_batch_path

MAX_REQUESTS = 20  # Graph's limit per batch
FAILED_DEPENDENCY = 424
FAILED_DEPENDENCY_CODE = "FailedDependency"
# A dependsOn edge between one of our requests and another, where the two are answered by
# different parties (ours here, the other upstream): not served, named in the answer.
EDGE_STATUS = 501
EDGE_CODE = "BatchDependencyNotServed"
# Headers of an answer that describe its framing, not the answer: never copied into a batch.
FRAMING_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "content-encoding", "keep-alive"}
)


@dataclass(frozen=True)
class Refusal:
    """Graph's answer to a batch it will not run: the whole call fails with this error."""

    status: int
    code: str
    message: str

    def reply(self, request_headers: Mapping[str, str]) -> Reply:
        return error_reply(self.status, self.code, self.message, request_headers)


def _bad(message: str) -> Refusal:
    return Refusal(400, BAD_REQUEST, message)


INVALID_PAYLOAD = "Invalid batch payload format."  # Graph's message for an unreadable batch


@dataclass(frozen=True)
class Item:
    """One entry of ``requests``: what it asks for, its body as bytes to send (None: none)."""

    id: str
    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    depends_on: tuple[str, ...] = ()
    entry: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def key(self) -> str:
        return self.id.lower()

    def describe(self) -> str:
        return f"request id '{self.id}' ({self.method} {self.url})"

    def path_and_query(self, version: str) -> str | None:
        """The request's path and query under ``version`` (``/beta/me/...?...``); an absolute
        URL (msgraph-core for Python sends one for a request built from a plain URL) is read
        as the URL it is, with its own version. None for a URL that is not one."""
        try:
            parts = urlsplit(self.url)
        except ValueError:
            return None
        query = f"?{parts.query}" if parts.query else ""
        if parts.scheme or parts.netloc:
            return f"/{parts.path.lstrip('/')}{query}" if parts.path else None
        return f"/{version}/{parts.path.lstrip('/')}{query}"


@dataclass(frozen=True)
class Batch:
    items: tuple[Item, ...]

    def by_key(self) -> dict[str, Item]:
        return {item.key: item for item in self.items}


def _text_map(value: Any) -> tuple[tuple[str, str], ...] | None:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        return None
    pairs: list[tuple[str, str]] = []
    for name, text in value.items():
        if not isinstance(name, str) or isinstance(text, (dict, list)) or text is None:
            return None
        pairs.append((name, text if isinstance(text, str) else json.dumps(text)))
    return tuple(pairs)


def _body_bytes(body: Any) -> bytes:
    """A request's body as sent alone: JSON as JSON text; a string as base64 when it is that
    (Graph's rule for a body that is not JSON), else as its text."""
    if not isinstance(body, str):
        return json.dumps(body, separators=(",", ":")).encode()
    try:
        return base64.b64decode(body.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return body.encode("utf-8", "surrogatepass")


def _item(entry: Any) -> Item | Refusal:
    if not isinstance(entry, Mapping):
        return _bad(f"{INVALID_PAYLOAD} Each request must be an object.")
    rid, method, url = entry.get("id"), entry.get("method"), entry.get("url")
    for name, value in (("id", rid), ("method", method), ("url", url)):
        if not isinstance(value, str) or not value.strip():
            return _bad(f"{INVALID_PAYLOAD} Each request needs a non-empty string '{name}'.")
    headers = _text_map(entry.get("headers"))
    if headers is None:
        return _bad(f"{INVALID_PAYLOAD} 'headers' of request id '{rid}' must be an object.")
    # msgraph-core for Python (1.5) writes the key as "depends_on": read as Graph's "dependsOn"
    depends = entry.get("dependsOn", entry.get("depends_on", ()))
    if depends is None:
        depends = ()
    if not isinstance(depends, list | tuple) or not all(isinstance(d, str) for d in depends):
        return _bad(f"{INVALID_PAYLOAD} 'dependsOn' of request id '{rid}' must list ids.")
    body: bytes | None = None
    if "body" in entry and entry["body"] is not None:
        if not any(name.lower() == "content-type" for name, _ in headers):
            return _bad(
                f"Request id '{rid}' has a body but no Content-Type header: a request with a "
                "body must give its Content-Type in 'headers'."
            )
        try:
            body = _body_bytes(entry["body"])
        except (TypeError, ValueError, RecursionError):
            return _bad(f"{INVALID_PAYLOAD} The body of request id '{rid}' is not readable.")
    assert isinstance(rid, str) and isinstance(method, str) and isinstance(url, str)
    return Item(rid, method.upper(), url, headers, body, tuple(depends), entry)


def parse(document: Any) -> Batch | Refusal:
    """The batch a JSON document is, or Graph's refusal of it. Never raises."""
    try:
        return _parse(document)
    except RecursionError:
        return _bad(INVALID_PAYLOAD)


def _parse(document: Any) -> Batch | Refusal:
    if not isinstance(document, Mapping) or not isinstance(document.get("requests"), list):
        return _bad(f"{INVALID_PAYLOAD} The body must be an object with a 'requests' array.")
    entries = document["requests"]
    if not entries:
        return _bad(f"{INVALID_PAYLOAD} A batch must hold at least one request.")
    if len(entries) > MAX_REQUESTS:
        return _bad(
            f"A batch holds at most {MAX_REQUESTS} requests; this one holds {len(entries)}."
        )
    items: list[Item] = []
    seen: set[str] = set()
    for entry in entries:
        item = _item(entry)
        if isinstance(item, Refusal):
            return item
        if item.key in seen:
            return _bad(f"Request Id {item.id} has to be unique in a batch.")
        if _is_batch(item):
            return _bad(f"{item.describe()} is a $batch: a batch cannot hold another batch.")
        seen.add(item.key)
        items.append(item)
    for item in items:
        for dep in item.depends_on:
            if dep.lower() not in seen:
                return _bad(
                    f"Request id '{item.id}' depends on '{dep}', which is not in the batch."
                )
    batch = Batch(tuple(items))
    cycle = _cycle(batch)
    if cycle is not None:
        return _bad(f"The dependsOn of the batch form a cycle: {' -> '.join(cycle)}.")
    return batch


def _is_batch(item: Item) -> bool:
    """A request that is itself a ``$batch`` (refused: what it holds would be read by nobody
    here, and leave)."""
    path = item.path_and_query("v1.0")
    return path is not None and is_batch_path(path) is not None


def _cycle(batch: Batch) -> list[str] | None:
    """The ids of one dependsOn cycle, or None (the graph is at most 20 nodes)."""
    by_key = batch.by_key()
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(key: str, path: list[str]) -> list[str] | None:
        state[key] = 1
        path.append(by_key[key].id)
        for dep in by_key[key].depends_on:
            dep_key = dep.lower()
            if state.get(dep_key) == 1:
                start = next(i for i, rid in enumerate(path) if rid.lower() == dep_key)
                return [*path[start:], by_key[dep_key].id]
            if dep_key not in state:
                found = visit(dep_key, path)
                if found:
                    return found
        path.pop()
        state[key] = 2
        return None

    for item in batch.items:
        if item.key not in state:
            found = visit(item.key, [])
            if found:
                return found
    return None


def run_order(batch: Batch) -> tuple[Item, ...]:
    """The order the requests are answered in: as listed, each after those it depends on (a
    parsed batch has no cycle)."""
    done: set[str] = set()
    order: list[Item] = []
    waiting = list(batch.items)
    while waiting:
        ready = next(
            (i for i in waiting if all(d.lower() in done for d in i.depends_on)), waiting[0]
        )
        waiting.remove(ready)
        done.add(ready.key)
        order.append(ready)
    return tuple(order)


# --- answers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One request's answer inside the batch's: status, headers and body bytes (decoded)."""

    id: str
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    @property
    def failed(self) -> bool:
        return self.status >= 400


def failed_dependency(item: Item, failed: str, request_headers: Mapping[str, str]) -> Answer:
    """Graph's 424 for a request whose dependency failed: never run."""
    reply = error_reply(
        FAILED_DEPENDENCY,
        FAILED_DEPENDENCY_CODE,
        f"The request was not run: the request it depends on ('{failed}') failed.",
        request_headers,
    )
    return answer_of(item.id, reply)


def answer_of(rid: str, reply: Reply) -> Answer:
    return Answer(rid, reply.status, reply.headers, reply.body)


def _is_json(headers: Iterable[tuple[str, str]]) -> bool:
    kind = next((v for k, v in headers if k.lower() == "content-type"), "")
    main = kind.split(";")[0].strip().lower()
    return main == "application/json" or main.endswith("+json")


def response_entry(answer: Answer) -> dict[str, Any]:
    """An answer as an entry of ``responses``: the body as JSON when it is JSON, else as
    base64 text (Graph's form for a body that is not JSON); none when empty."""
    headers = {k: v for k, v in answer.headers if k.lower() not in FRAMING_HEADERS}
    entry: dict[str, Any] = {"id": answer.id, "status": answer.status, "headers": headers}
    if answer.body:
        document: Any = None
        if _is_json(answer.headers):
            try:
                document = json.loads(answer.body)
            except (ValueError, RecursionError):
                document = None
        if document is not None:
            entry["body"] = document
        else:
            entry["body"] = base64.b64encode(answer.body).decode("ascii")
    return entry


def responses_body(answers: Iterable[Answer]) -> bytes:
    return json.dumps({"responses": [response_entry(a) for a in answers]}).encode()


def answers_in(document: Any) -> dict[str, Answer]:
    """The answers of an upstream batch response, by lowercased id; what cannot be read is
    left out (never raises)."""
    found: dict[str, Answer] = {}
    entries = document.get("responses") if isinstance(document, Mapping) else None
    if not isinstance(entries, list):
        return found
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        rid, status = entry.get("id"), entry.get("status")
        if not isinstance(rid, str) or not isinstance(status, int) or isinstance(status, bool):
            continue
        headers = _text_map(entry.get("headers")) or ()
        found[rid.lower()] = Answer(rid, status, headers, _answer_body(entry.get("body"), headers))
    return found


def _answer_body(body: Any, headers: tuple[tuple[str, str], ...]) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str) and not _is_json(headers):
        try:
            return base64.b64decode(body.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return body.encode("utf-8", "surrogatepass")
    try:
        return json.dumps(body).encode()
    except (TypeError, ValueError, RecursionError):
        return b""


def upstream_body(batch: Batch, keys: Iterable[str], answered: Iterable[str]) -> bytes:
    """A batch of the entries ``keys`` names, as they were sent, for upstream; a ``dependsOn``
    naming a request already ``answered`` here (successfully) is dropped, the edge met."""
    wanted, met = set(keys), set(answered)
    entries: list[Any] = []
    for item in batch.items:
        if item.key not in wanted:
            continue
        entry = dict(item.entry)
        if "dependsOn" in entry and item.depends_on:
            kept = [d for d in item.depends_on if d.lower() not in met]
            if kept:
                entry["dependsOn"] = kept
            else:
                del entry["dependsOn"]
        entries.append(entry)
    return json.dumps({"requests": entries}).encode()


def crossing_edge(batch: Batch, ours: set[str]) -> tuple[Item, Item] | None:
    """The first ``dependsOn`` edge (dependant, dependency) between one of ``ours`` and a
    request that is not, or None."""
    by_key = batch.by_key()
    for item in batch.items:
        for dep in item.depends_on:
            if (item.key in ours) != (dep.lower() in ours):
                return item, by_key[dep.lower()]
    return None


def edge_refusal(dependant: Item, dependency: Item) -> Refusal:
    return Refusal(
        EDGE_STATUS,
        EDGE_CODE,
        f"graph-vcr-proxy cannot serve {dependant.describe()} depending on "
        f"{dependency.describe()}: one is a virtualAppointment call answered here, the other "
        "is not; send them in separate batches or without dependsOn.",
    )
