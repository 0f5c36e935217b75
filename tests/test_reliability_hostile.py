"""Hostile input through a real proxy: header injection, 100 KB headers, paths that climb.

Requests are sent as raw bytes inside a real CONNECT tunnel over TLS (no HTTP library would
send them), and answers are read as bytes, so a line break smuggled into a response header
can't hide behind a client's parser. Every mode must answer as Graph would, send nothing a
client could split into extra headers, record only what a cassette can hold, and keep serving.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from helpers import assert_one_line_error, run_cli
from reliability import (
    RawAnswer,
    assert_graph_answer,
    call,
    create_body,
    https_client,
    tunnelled_exchange,
)
from vcr.cassette import Cassette

from proxy_addons.addons import control_rules
from proxy_addons.cassette import cassette, examples
from proxy_addons.graph.models import ErrorResponse

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]

PATH = "/beta/me/onlineMeetings/{meeting}/virtualAppointment"
HUNDRED_KB = 100 * 1024
TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
INJECTED = b"x-injected"


def graph_error(body: bytes) -> ErrorResponse:
    return ErrorResponse.model_validate(json.loads(body))


def assert_clean_head(answer: RawAnswer) -> None:
    """Every header line is ``token: value`` with no CR, LF or NUL left inside it, and no
    header the client smuggled in came back as a header of its own."""
    for line in answer.lines:
        name, sep, value = line.partition(b":")
        assert sep and TOKEN.match(name), line[:200]
        assert not re.search(rb"[\r\n\x00]", value), line[:200]
        assert name.strip().lower() != INJECTED, line[:200]


# --- fault messages and codes -------------------------------------------------------------

MESSAGE = "stale\r\nX-Injected: 1\r\n\r\n<html>"
CODE = "Too\r\nX-Injected: 2"


def get_request(meeting: str, *headers: bytes) -> bytes:
    head = f"GET {PATH.format(meeting=meeting)} HTTP/1.1\r\nHost: graph.microsoft.com\r\n"
    return head.encode() + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


def assert_fault_answer(answer: RawAnswer, status: int, code: str, message: str) -> None:
    assert answer.status == status
    assert_clean_head(answer)
    error = json.loads(answer.body)["error"]
    assert (error["code"], error["message"]) == (code, message)


def test_line_breaks_in_fault_messages_and_codes_stay_inside_the_json_body(start_proxy, tmp_path):
    faults = tmp_path / "faults.yaml"
    faults.write_text(
        yaml.safe_dump(
            [
                {
                    "kind": "forbidden",
                    "route": "delete",
                    "code": CODE,
                    "message": "a\x00\nX-Injected: 3",
                }
            ]
        )
    )
    proxy = start_proxy(
        "replay",
        "--fault",
        f"throttle:route=get,code={CODE},message={MESSAGE}",
        "--faults",
        str(faults),
        "--no-summary",
    )
    answer = tunnelled_exchange(proxy, get_request("m1"))
    assert_fault_answer(answer, 429, CODE, MESSAGE.strip())
    delete = get_request("m1").replace(b"GET ", b"DELETE ", 1)
    assert_fault_answer(tunnelled_exchange(proxy, delete), 403, CODE, "a\x00\nX-Injected: 3")

    # and the same rule through the control endpoint
    with https_client(proxy) as client:
        added = client.put(
            f"http://{control_rules.HOST}{control_rules.PATH}",
            json=[f"unavailable:route=get,code={CODE},message={MESSAGE}"],
        )
        assert added.status_code == 200, added.text
    assert_fault_answer(tunnelled_exchange(proxy, get_request("m1")), 503, CODE, MESSAGE.strip())


def test_a_fault_spec_with_line_breaks_is_refused_in_one_line_that_shows_them_escaped(confdir):
    done = run_cli("replay", "--fault", "throttle:tims=1\r\nX-Injected: 1", confdir=confdir)
    line = assert_one_line_error(
        done, "graph-vcr-proxy: fault 'throttle:tims=1\\r\\nX-Injected: 1'"
    )
    assert "unknown key 'tims' for throttle" in line


# --- hostile request headers, in every mode ------------------------------------------------

SAFE_ID = b"7b0a8a4c-3f0e-4c61-9a2e-0d6f1f3c9e21"
# What each request sends, and the client-request-id its answer may echo (none: not echoed).
# A bare LF ends a header line for mitmproxy's parser (as for most), so "abc" is what the
# client sent there, and what comes back. Header names that are not HTTP tokens never reach
# an addon: mitmproxy refuses the request itself (400, its ``validate_inbound_headers``
# guard against request smuggling).
REFUSED_BY_MITMPROXY = "header names that are not tokens"
HOSTILE_HEADERS: dict[str, tuple[tuple[bytes, ...], bytes | None]] = {
    "a bare CR in client-request-id": ((b"client-request-id: abc\rX-Injected: 1",), None),
    "a bare LF in client-request-id": ((b"client-request-id: abc\nX-Injected: 1",), b"abc"),
    "a NUL in client-request-id": ((b"client-request-id: abc\x00X-Injected: 1",), None),
    "a folded client-request-id": ((b"client-request-id: abc", b" X-Injected: 1"), None),
    "a client-request-id not in UTF-8": ((b"client-request-id: \xff\xfe\x80",), None),
    "a 100 KB client-request-id": ((b"client-request-id: " + b"a" * HUNDRED_KB,), None),
    "a 100 KB header of another name": ((b"X-Big: " + b"b" * HUNDRED_KB,), None),
    "a 100 KB bearer token": ((b"Authorization: Bearer " + b"t" * HUNDRED_KB,), None),
    "header names that are not tokens": ((b"X Injected: 1", b"X(Injected): 2", b"\xffX: 3"), None),
    "a safe client-request-id": ((b"client-request-id: " + SAFE_ID,), SAFE_ID),
}


# Request targets as raw bytes (meeting id, query), and whether Graph's checks refuse them.
# Bytes that are not UTF-8 can't be an id or a query value; control characters and
# percent-encoded line breaks can, and must stay inside the URL.
HOSTILE_TARGETS: dict[str, tuple[bytes, bytes, bool]] = {
    "raw bytes that are not UTF-8 in the path": (b"m\xff\xfe", b"", True),
    "raw bytes that are not UTF-8 in the query": (b"q", b"?$select=\xff", True),
    "control characters in the path": (b"m\x01\x7f\x1b[31m", b"", False),
    "a percent-encoded line break in the path": (b"m%0d%0aX-Injected:%201", b"", False),
}


def put_request(meeting: str | bytes, headers: tuple[bytes, ...], query: bytes = b"") -> bytes:
    if meeting == examples.MEETING_ID:
        body = examples.REQUEST_BODY.encode()
    else:
        body = create_body(meeting if isinstance(meeting, str) else "raw")
    target = PATH.encode().replace(
        b"{meeting}", meeting if isinstance(meeting, bytes) else meeting.encode()
    )
    head = (
        b"PUT " + target + query + b" HTTP/1.1\r\nHost: graph.microsoft.com\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    )
    if not any(h.lower().startswith(b"authorization:") for h in headers):
        head += b"Authorization: Bearer t\r\n"
    return head + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


def send_hostile_requests(proxy, meeting_for, unknown_meeting: int) -> list[RawAnswer]:
    """Each hostile request in turn, each answer checked, then a plain one, which must still
    get its answer. ``unknown_meeting`` is the mode's status for a meeting it never heard of.
    Returns the answers that came from the service (not from Graph's checks)."""
    answers = []
    for n, (name, (headers, echo)) in enumerate(HOSTILE_HEADERS.items()):
        answer = tunnelled_exchange(proxy, put_request(meeting_for(n), headers))
        assert_clean_head(answer)
        if name == REFUSED_BY_MITMPROXY:
            assert answer.status == 400 and b"invalid header name" in answer.body
            continue
        assert answer.status in (200, 201), f"{name}: {answer.status} {answer.body[:300]!r}"
        assert answer.headers(b"client-request-id") == ([echo] if echo else []), name
        json.loads(answer.body)
        answers.append(answer)
    for name, (meeting, query, refused) in HOSTILE_TARGETS.items():
        answer = tunnelled_exchange(proxy, put_request(meeting, (), query))
        assert_clean_head(answer)
        status = 400 if refused else unknown_meeting
        assert answer.status == status, f"{name}: {answer.status} {answer.body[:300]!r}"
        if refused:
            assert graph_error(answer.body).error.code == "BadRequest", name
        else:
            answers.append(answer)
    with https_client(proxy) as client:
        sent = call("PUT", examples.ME_URL, [200, 201], examples.REQUEST_BODY.encode())
        assert_graph_answer(sent, sent.send(client), fresh_body=False)
    return answers


def test_replay_answers_hostile_requests_as_graph_would_and_keeps_serving(start_proxy):
    proxy = start_proxy("replay", "--no-summary", "--allow-playback-repeats")  # one create
    answers = send_hostile_requests(proxy, lambda n: examples.MEETING_ID, 501)
    replayed = [answer for answer in answers if answer.status == 201]
    assert len(replayed) == len(HOSTILE_HEADERS) - 1  # all but the one mitmproxy refuses
    assert all(answer.body == examples.RESPONSE_BODY.encode() for answer in replayed)
    assert "Traceback" not in "".join(proxy.stderr)


def test_simulate_answers_hostile_requests_as_graph_would_and_keeps_serving(start_proxy):
    proxy = start_proxy("simulate", "--no-summary")
    send_hostile_requests(proxy, lambda n: f"hostile-{n}", 201)
    assert "Traceback" not in "".join(proxy.stderr)


def test_record_stores_hostile_requests_as_a_cassette_both_loaders_read(start_proxy, tmp_path):
    path = tmp_path / "hostile.yaml"
    upstream = start_proxy("simulate", "--reverse", "--no-summary")
    proxy = start_proxy("record", "--cassette", str(path), "--upstream", upstream.url)
    answers = send_hostile_requests(proxy, lambda n: f"hostile-{n}", 201)
    assert proxy.stop() == 0
    stored = cassette.load(path)
    assert len(stored) == len(answers) + 1  # and the plain request after them
    loaded = Cassette.load(path=str(path), record_mode="none")  # plain vcrpy
    assert len(loaded.data) == len(stored)
    text = path.read_text(encoding="utf-8")
    assert b"t" * 100 not in path.read_bytes()  # the 100 KB bearer token was redacted
    assert "b" * HUNDRED_KB in text  # a long header is kept whole
    assert "Traceback" not in "".join(proxy.stderr + upstream.stderr)


# --- paths that climb ---------------------------------------------------------------------


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_paths_with_dot_dot_are_written_exactly_where_they_lead_and_nowhere_else(
    start_proxy, tmp_path
):
    """``..`` and absolute paths in --cassette, --summary-json and --state are the user's
    choice, honoured as the operating system resolves them: the file lands there, its
    temporary files beside it are gone, and nothing is written anywhere else."""
    (tmp_path / "work" / "sub").mkdir(parents=True)
    cassette_path = tmp_path / "work" / "sub" / ".." / ".." / "recorded" / "c.yaml"
    summary = os.path.relpath(tmp_path / "summaries" / "s.json")  # ../../... from here
    assert summary.startswith("..")
    (tmp_path / "summaries").mkdir()
    state = tmp_path / "work" / ".." / "state.json"
    upstream = start_proxy("simulate", "--reverse", "--no-summary", "--state", str(state))
    recorder = start_proxy(
        "record",
        "--cassette",
        str(cassette_path),
        "--upstream",
        upstream.url,
        "--summary-json",
        summary,
    )
    with https_client(recorder) as client:
        sent = call("PUT", examples.ME_URL, [201], create_body("climbing"))
        assert_graph_answer(sent, sent.send(client))
    assert recorder.stop() == 0 and upstream.stop() == 0
    assert files_under(tmp_path) == {
        tmp_path / "recorded" / "c.yaml",
        tmp_path / "summaries" / "s.json",
        tmp_path / "state.json",
        tmp_path / ".state.json.lock",
    }
    assert len(cassette.load(cassette_path)) == 1
    assert json.loads(Path(summary).read_text())["recorded"] == 1


@pytest.mark.parametrize(
    ("args", "starts"),
    [
        (
            ["record", "--cassette", "{tmp}/file/../c.yaml"],
            "{tmp}/file/../c.yaml: cannot record here",
        ),
        (["replay", "--faults", "{tmp}/file"], "{tmp}/file:1: expected a YAML list"),
        (
            ["replay", "--cassette", "{tmp}/c.yaml", "--summary-json", "{tmp}/x/../c.yaml"],
            "summary JSON",
        ),
    ],
)
def test_paths_that_cannot_be_used_are_refused_in_one_line_and_nothing_is_written(
    confdir, tmp_path, args, starts
):
    (tmp_path / "file").write_text("a regular file, no folder and no YAML list\n")
    (tmp_path / "x").mkdir()
    (tmp_path / "c.yaml").write_text(
        cassette.cassette_text([examples.documented_interaction(examples.ME_URL)])
    )
    before = {p: p.read_bytes() for p in files_under(tmp_path)}
    done = run_cli(*(a.format(tmp=tmp_path) for a in args), confdir=confdir)
    line = assert_one_line_error(done, "graph-vcr-proxy: ")
    assert starts.format(tmp=tmp_path) in line
    assert {p: p.read_bytes() for p in files_under(tmp_path)} == before
