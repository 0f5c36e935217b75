"""What the reliability suite shares: how long it runs, Graph's calls, and what a Graph answer is.

The suite runs short by default (CI runs it with every ``python -m pytest``) and long when
``GRAPH_VCR_RELIABILITY=long``. One :class:`Level` holds every number that differs between the
two, so the docs' table (docs/reliability.md) and the tests can't disagree. Every loop a test
runs is bounded in count and in time, and every server it talks to is on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from proxy_addons.cassette import examples
from proxy_addons.cli.launcher import RunningProxy

LEVEL_VARIABLE = "GRAPH_VCR_RELIABILITY"
T = TypeVar("T")


@dataclass(frozen=True)
class Level:
    name: str
    clients: int  # concurrent clients against each proxy mode
    calls_per_client: int  # per client and mode
    kills: int  # kill -9 of a recording proxy under load
    soak_requests: int  # replayed requests in the soak, warm-up included
    soak_warmup: int  # requests before the resident memory baseline is read
    fuzz_examples: int  # hypothesis examples per fuzzing test of a pure function
    proxy_fuzz_examples: int  # ... and per fuzzing test through a running proxy
    timeout: float  # seconds each reliability test may take, at most


SHORT = Level("short", 16, 12, 5, 5_000, 1_000, 150, 60, 240)
LONG = Level("long", 16, 150, 20, 50_000, 5_000, 2_000, 1_000, 3_600)
LEVELS = {level.name: level for level in (SHORT, LONG)}


def requested_level() -> str:
    """The level ``GRAPH_VCR_RELIABILITY`` names: short when unset."""
    return os.environ.get(LEVEL_VARIABLE, "").strip().lower() or SHORT.name


def check_level() -> None:
    """A typo must stop the run (pytest's one-line usage error), not run the short suite."""
    if requested_level() not in LEVELS:
        raise pytest.UsageError(
            f"{LEVEL_VARIABLE}={requested_level()!r}: expected one of {', '.join(LEVELS)}"
        )


LEVEL = LEVELS.get(requested_level(), SHORT)
MAX_SEED = 2**32


# --- Graph's calls ------------------------------------------------------------------------

AUTH = {"Authorization": "Bearer reliability-token-7731"}
JSON_HEADERS = {**AUTH, "Content-Type": "application/json"}
SMS_BODY = {"attendees": [{"phoneNumber": "+1 206 555 0100"}], "messageType": "confirmation"}
REMINDER_BODY = {
    "attendees": [{"phoneNumber": "+1 206 555 0101", "timeZone": "Pacific Standard Time"}],
    "remindBeforeTimeInMinutesType": "mins15",
}


def meeting_url(meeting: str, resource: str = "virtualAppointment") -> str:
    return f"{examples.GRAPH_BETA}/me/onlineMeetings/{meeting}/{resource}"


def create_body(external_id: str) -> bytes:
    body = json.loads(examples.REQUEST_BODY)
    body["externalAppointmentId"] = external_id
    return json.dumps(body).encode()


def update_body(external_id: str) -> bytes:
    return json.dumps({"externalAppointmentId": external_id}).encode()


@dataclass(frozen=True)
class Call:
    """One request as a client sends it, with the statuses Graph may answer it with."""

    method: str
    url: str
    body: bytes | None
    headers: dict[str, str]
    statuses: frozenset[int]

    def send(self, client: httpx.Client) -> httpx.Response:
        return client.request(self.method, self.url, content=self.body, headers=self.headers)


def call(
    method: str,
    url: str,
    statuses: Iterable[int],
    body: bytes | None = None,
    **headers: str,
) -> Call:
    """A call with Graph's headers and a client-request-id of its own, which identifies it
    in a cassette and must come back in the answer."""
    sent = {**(JSON_HEADERS if body is not None else AUTH), "client-request-id": new_id()}
    sent.update({name.replace("_", "-"): value for name, value in headers.items()})
    return Call(method, url, body, sent, frozenset(statuses))


def new_id() -> str:
    return str(uuid.uuid4())


def live_calls(meeting: str) -> list[Call]:
    """The three live actions on a meeting: the join URL and both SMS actions."""
    return [
        call("GET", meeting_url(meeting, "getVirtualAppointmentJoinWebUrl"), [200]),
        call(
            "POST",
            meeting_url(meeting, "sendVirtualAppointmentSms"),
            [202],
            json.dumps(SMS_BODY).encode(),
        ),
        call(
            "POST",
            meeting_url(meeting, "sendVirtualAppointmentReminderSms"),
            [202],
            json.dumps(REMINDER_BODY).encode(),
        ),
    ]


class OwnAppointment:
    """A client's model of an appointment that only it uses, so it can predict every status
    exactly: the next random call on it, and what each answer teaches."""

    NEVER_ISSUED = 'W/"never-issued-by-the-emulator"'
    KINDS = ("create", "get", "update", "stale-update", "delete", "live")
    WEIGHTS = (3, 3, 3, 1, 1, 3)

    def __init__(self, meeting: str) -> None:
        self.meeting = meeting
        self.url = meeting_url(meeting)
        self.etag: str | None = None  # None: the appointment does not exist

    def next_call(self, rng: random.Random, tag: str) -> Call:
        """Create or replace, get, update with the current or a stale ETag, delete, or one of
        the live actions; ``tag`` makes the bodies unique."""
        exists = self.etag is not None
        kind = rng.choices(self.KINDS, self.WEIGHTS)[0]
        if kind == "create":
            return call("PUT", self.url, [200 if exists else 201], create_body(tag))
        if kind == "get":
            return call("GET", self.url, [200 if exists else 404])
        if kind == "delete":
            return call("DELETE", self.url, [204 if exists else 404])
        if kind == "live":
            return rng.choice(live_calls(self.meeting))
        current = kind == "update" and self.etag is not None
        if_match = self.etag if current and self.etag else self.NEVER_ISSUED
        return call(
            "PATCH", self.url, [204 if current else 412], update_body(tag), If_Match=if_match
        )

    def learn(self, sent: Call, response: httpx.Response) -> None:
        if sent.url != self.url:
            return  # a live action changes nothing
        if sent.method == "DELETE":
            self.etag = None
        elif response.status_code < 300:
            self.etag = response.headers["ETag"]


# --- what counts as Graph's answer --------------------------------------------------------


def assert_graph_answer(sent: Call, response: httpx.Response, *, fresh_body: bool = True) -> None:
    """An answer Graph itself could give ``sent``: one of the statuses it may get, Graph's
    headers with the client's request id echoed, and for an error Graph's JSON envelope
    (never mitmproxy's HTML 502, never a reset). A ``fresh_body`` error names the ids of its
    own headers; a replayed one keeps the ids of the recording."""
    where = f"{sent.method} {sent.url} -> {response.status_code}: {response.text[:300]}"
    assert response.status_code in sent.statuses, where
    headers = response.headers
    assert headers.get("request-id"), where
    assert headers.get("client-request-id") == sent.headers["client-request-id"], where
    if response.status_code >= 400:
        assert headers.get("content-type", "").startswith("application/json"), where
        error = response.json()["error"]
        assert isinstance(error["code"], str) and error["code"], where
        assert isinstance(error["message"], str), where
        if fresh_body:
            inner = error["innerError"]
            assert inner["request-id"] == headers["request-id"], where
            assert inner["client-request-id"] == sent.headers["client-request-id"], where


def https_client(proxy: RunningProxy) -> httpx.Client:
    """httpx over HTTPS through the proxy, trusting only its CA, with keep-alive."""
    verify = ssl.create_default_context(cafile=str(proxy.ca))
    return httpx.Client(proxy=proxy.url, verify=verify, timeout=30)


# --- bytes on the wire --------------------------------------------------------------------


@dataclass(frozen=True)
class RawAnswer:
    """An HTTP/1.1 response as its bytes: the status, the header lines, the body."""

    status: int
    lines: list[bytes]  # the header lines, split at CRLF only
    body: bytes

    def headers(self, name: bytes) -> list[bytes]:
        prefix = name.lower() + b":"
        return [
            line[len(prefix) :].strip() for line in self.lines if line.lower().startswith(prefix)
        ]


def read_answer(sock: socket.socket) -> RawAnswer:
    """One response read off ``sock`` (framed by Content-Length, as all of ours are)."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {received[:300]!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    answer = RawAnswer(int(status_line.split(b" ", 2)[1]), lines, b"")
    length = int(answer.headers(b"content-length")[0])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the body"
        body += chunk
    return dataclasses.replace(answer, body=body)


def plain_exchange(proxy: RunningProxy, request: bytes) -> RawAnswer:
    """``request`` as these very bytes to a plain-HTTP server (``simulate --reverse``)."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
        sock.sendall(request)
        return read_answer(sock)


def tunnelled_exchange(
    proxy: RunningProxy, request: bytes, host: str = "graph.microsoft.com"
) -> RawAnswer:
    """``request`` as these very bytes inside a CONNECT tunnel to ``host``, over TLS that
    trusts the proxy's CA: what no HTTP library would send, as a hostile client can."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
        sock.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
        established = b""
        while b"\r\n\r\n" not in established:
            chunk = sock.recv(4096)
            assert chunk, "CONNECT refused"
            established += chunk
        assert established.split(b" ", 2)[1] == b"200", established
        context = ssl.create_default_context(cafile=str(proxy.ca))
        with context.wrap_socket(sock, server_hostname=host) as tls:
            tls.sendall(request)
            return read_answer(tls)


# --- running clients at once --------------------------------------------------------------


def run_concurrently(count: int, work: Callable[[int], T], timeout: float) -> list[T]:
    """``work(0)`` .. ``work(count - 1)`` on threads started together; their results in
    order. A worker that raises fails the test with its exception; one still running after
    ``timeout`` seconds fails it as hung (the daemon thread dies with the run)."""
    results: list[Any] = [None] * count
    failures: list[BaseException] = []
    start = threading.Barrier(count)

    def run(n: int) -> None:
        try:
            start.wait(timeout)
            results[n] = work(n)
        except BaseException as exc:  # re-raised in the test's thread below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    hung = sum(thread.is_alive() for thread in threads)
    if failures:
        raise failures[0]
    assert not hung, f"{hung} of {count} clients still running after {timeout}s"
    return results


def resident_kib(pid: int) -> int:
    """A process's resident set size (VmRSS), in KiB, as the kernel reports it."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB$", status, re.MULTILINE)
    assert match, status
    return int(match.group(1))
