"""The record addon on its own, driven by mitmproxy's test helpers (no sockets)."""

from __future__ import annotations

import asyncio
import errno
import gzip
import json
import os
import re
import zlib
from pathlib import Path

import brotli
import pytest
import zstandard
from helpers import graph_flow
from mitmproxy import exceptions, http
from mitmproxy.test import taddons
from vcr.cassette import Cassette
from vcr.request import Request

from proxy_addons.addons import flows
from proxy_addons.addons.interactions import decoded, framed, readable, stored_response, stored_side
from proxy_addons.addons.record import Record
from proxy_addons.addons.request_checks import RequestChecks
from proxy_addons.cassette import cassette, examples, matching
from proxy_addons.cassette import writer as cassette_writer
from proxy_addons.cassette.opening import open_cassette
from proxy_addons.cassette.record_mode import RecordMode
from proxy_addons.cassette.redaction import Side
from proxy_addons.cassette.rerecording import Rerecording
from proxy_addons.common import content_encoding

ME = examples.ME_URL
JSON = {"Content-Type": "application/json"}


def upstream_answers(flow: http.HTTPFlow, status: int, body: bytes, **headers: str) -> None:
    """What mitmproxy does when upstream answers: a response on an unanswered flow."""
    flow.response = http.Response.make(
        status, body, {"Content-Type": "application/json", **headers}
    )


def exchange(addon: Record, flow: http.HTTPFlow, status: int = 200, body: bytes = b"{}") -> None:
    """Run a flow through the request hook, let 'upstream' answer if nobody did, then respond."""
    addon.request(flow)
    if flow.response is None:
        upstream_answers(flow, status, body)
    asyncio.run(addon.response(flow))


def get(meeting: str) -> http.HTTPFlow:
    return graph_flow("GET", ME.replace(examples.MEETING_ID, meeting), headers={"Accept": "*/*"})


def recorded(path: Path) -> list[cassette.Interaction]:
    return cassette.load(path)


def seeded(tmp_path: Path, *meetings: str) -> Path:
    """A cassette holding one 200 {"old": meeting} GET per meeting, written by vcrpy's layout."""
    path = tmp_path / "seeded.yaml"
    path.write_text(
        cassette.cassette_text(
            (
                Request("GET", ME.replace(examples.MEETING_ID, m), None, {}),
                {
                    "status": {"code": 200, "message": "OK"},
                    "headers": {"Content-Type": ["application/json"]},
                    "body": {"string": json.dumps({"old": m})},
                },
            )
            for m in meetings
        )
    )
    return path


@pytest.fixture
def record(tmp_path):
    addon = Record()
    with taddons.context(addon) as tctx:

        def configure(**options: object) -> Record:
            tctx.configure(addon, **options)
            return addon

        yield configure


def test_an_upstream_answer_is_on_disk_and_marked_recorded_when_the_hook_returns(record, tmp_path):
    path = tmp_path / "new.yaml"
    addon = record(graph_cassette=str(path))
    flow = graph_flow("PUT", ME, examples.REQUEST_BODY, JSON)
    exchange(addon, flow, 201, examples.RESPONSE_BODY.encode())
    assert flow.metadata[flows.RECORDED] is True
    (only,) = recorded(path)
    assert (only.request.method, only.request.uri) == ("PUT", ME)
    assert json.loads(only.request.body) == json.loads(examples.REQUEST_BODY)
    assert only.response["status"] == {"code": 201, "message": "Created"}
    assert len(Cassette.load(path=str(path), record_mode="none").data) == 1


def test_upstream_gets_the_request_while_the_cassette_keeps_the_graph_url(record, tmp_path):
    path = tmp_path / "up.yaml"
    addon = record(graph_cassette=str(path), graph_upstream="http://127.0.0.1:9999/prefix/")
    flow = get("m1")
    flow.request.headers["Host"] = "graph.microsoft.com"
    addon.request(flow)
    assert flow.request.url == (
        "http://127.0.0.1:9999/prefix/beta/me/onlineMeetings/m1/virtualAppointment"
    )
    assert flow.request.headers["Host"] == "127.0.0.1:9999"
    upstream_answers(flow, 200, b"{}")
    asyncio.run(addon.response(flow))
    (only,) = recorded(path)
    assert only.request.uri == ME.replace(examples.MEETING_ID, "m1")
    assert only.request.headers["Host"] == "graph.microsoft.com"


CODINGS = [
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("br", brotli.compress),
    ("zstd", zstandard.ZstdCompressor().compress),
]


@pytest.mark.parametrize(("encoding", "encode"), CODINGS)
def test_compressed_responses_are_stored_as_received_with_their_encoding_and_true_length(
    encoding, encode
):
    """What vcrpy keeps by default under httpx and requests: the bytes the client saw."""
    body = json.dumps({"id": "x" * 300}).encode()
    response = http.Response.make(200, b"", {"Content-Encoding": encoding, "Content-Length": "1"})
    response.raw_content = encode(body)  # as it came over the wire
    status, reason, side = stored_response(response)
    assert (status, reason, side.body) == (200, "OK", encode(body))
    assert side.headers["Content-Encoding"] == [encoding]
    assert framed(side).headers["Content-Length"] == [str(len(encode(body)))]
    assert readable(side).body == body


@pytest.mark.parametrize(("encoding", "encode"), CODINGS)
def test_decode_compressed_response_stores_the_body_decoded_without_its_encoding(encoding, encode):
    body = json.dumps({"id": "x" * 300}).encode()
    response = http.Response.make(200, b"", {"Content-Encoding": encoding, "Content-Length": "1"})
    response.raw_content = encode(body)
    side = decoded(stored_response(response)[2])
    assert side.body == body
    assert "Content-Encoding" not in side.headers
    assert framed(side).headers["Content-Length"] == [str(len(body))]


def test_a_gzip_request_body_is_stored_as_sent_and_read_decoded():
    body = examples.REQUEST_BODY.encode()
    request = graph_flow("PUT", ME, None, {**JSON, "Content-Encoding": "gzip"}).request
    request.raw_content = gzip.compress(body)
    request.headers["Content-Length"] = str(len(request.raw_content))
    side = framed(stored_side(request))
    assert side.body == request.raw_content
    assert side.headers["Content-Encoding"] == ["gzip"]
    assert side.headers["Content-Length"] == [str(len(request.raw_content))]
    assert readable(side).body == body


@pytest.mark.parametrize(
    ("headers", "stored"),
    [
        ({"content-length": ["999"], "ETag": ["1"]}, {"content-length": ["4"], "ETag": ["1"]}),
        ({"Transfer-Encoding": ["chunked"], "Connection": ["x"]}, {"Content-Length": ["4"]}),
        ({"ETag": ["1"], "Keep-Alive": ["5"]}, {"ETag": ["1"]}),
    ],
)
def test_framing_states_the_stored_body_length_only_where_the_message_had_framing(headers, stored):
    assert framed(Side(headers, b"body")).headers == stored


def test_every_stored_content_length_states_the_body_as_redacted(record, tmp_path):
    """Redaction changes both bodies' lengths; a replaying client hands the header on."""
    path = tmp_path / "lengths.yaml"
    addon = record(graph_cassette=str(path), graph_redact_fields=["emailAddress"])
    flow = graph_flow("PUT", ME, None, {**JSON, "Content-Encoding": "gzip"})
    flow.request.raw_content = gzip.compress(examples.REQUEST_BODY.encode())
    flow.request.headers["Content-Length"] = str(len(flow.request.raw_content))
    addon.request(flow)
    answer = examples.RESPONSE_BODY.encode()
    upstream_answers(flow, 201, answer, **{"Content-Length": str(len(answer))})
    asyncio.run(addon.response(flow))
    (only,) = Cassette.load(path=str(path), record_mode="none").data
    request, response = only
    assert request.headers["Content-Encoding"] == "gzip"  # redacted, then compressed again
    sent = json.loads(gzip.decompress(request.body))
    assert sent["appointmentClients"][0]["emailAddress"] == "<redacted:emailAddress:1>"
    assert request.headers["Content-Length"] == str(len(request.body))
    assert response["headers"]["Content-Length"] == [str(len(response["body"]["string"]))]


@pytest.mark.parametrize(("encoding", "encode"), CODINGS)
def test_a_compressed_body_is_redacted_decoded_and_stored_compressed_again(
    record, tmp_path, encoding, encode
):
    path = tmp_path / f"redacted-{encoding}.yaml"
    addon = record(graph_cassette=str(path), graph_redact_fields=["emailAddress"])
    flow = graph_flow("GET", ME, None, {"Authorization": "Bearer token-1234"})
    addon.request(flow)
    answer = json.dumps(
        {"appointmentClients": [{"emailAddress": "grady@contoso.com"}], "echo": "token-1234"}
    ).encode()
    upstream_answers(flow, 200, b"", **{"Content-Encoding": encoding})
    flow.response.raw_content = encode(answer)
    asyncio.run(addon.response(flow))
    (only,) = recorded(path)
    stored = only.response["body"]["string"]
    headers = {name.lower(): values for name, values in only.response["headers"].items()}
    assert headers["content-encoding"] == [encoding]
    assert headers["content-length"] == [str(len(stored))]
    plain = content_encoding.decode(stored, (encoding,))
    assert b"grady@contoso.com" not in plain and b"token-1234" not in plain
    assert json.loads(plain)["appointmentClients"][0]["emailAddress"].startswith("<redacted:")
    assert json.loads(plain)["echo"].startswith("<redacted:authorization")


def test_a_compressed_body_redaction_leaves_alone_keeps_its_bytes(record, tmp_path):
    path = tmp_path / "untouched.yaml"
    addon = record(graph_cassette=str(path))
    flow = get("m1")
    addon.request(flow)
    on_the_wire = gzip.compress(b'{"id": "kept"}', mtime=12345)
    upstream_answers(flow, 200, b"", **{"Content-Encoding": "gzip"})
    flow.response.raw_content = on_the_wire
    asyncio.run(addon.response(flow))
    (only,) = recorded(path)
    assert only.response["body"]["string"] == on_the_wire


def test_headers_are_stored_as_one_line_text_that_the_cassette_loader_accepts(record, tmp_path):
    """One request with a folded or smuggled line, or bytes that aren't UTF-8, in a header
    must not make the whole cassette unloadable: headers are never matched."""
    path = tmp_path / "odd-headers.yaml"
    addon = record(graph_cassette=str(path))
    flow = graph_flow("GET", ME)
    flow.request.headers["client-request-id"] = "abc\r\n X-Injected: 1\x00"
    flow.request.headers["X-Latin"] = b"caf\xe9".decode("utf-8", "surrogateescape")
    flow.request.headers["X Not-A-Token"] = "1"
    addon.request(flow)
    upstream_answers(flow, 200, b"{}", **{"X-Reply": "a\rb"})
    flow.response.reason = "O\rK"
    asyncio.run(addon.response(flow))
    (stored,) = cassette.load(path)  # ours loads it
    headers = stored.request.headers
    assert headers["client-request-id"] == "abc X-Injected: 1 "
    assert headers["X-Latin"] == "café"
    assert "X Not-A-Token" not in headers
    assert stored.response["headers"]["X-Reply"] == ["a b"]
    assert stored.response["status"]["message"] == "O K"
    assert len(Cassette.load(path=str(path), record_mode="none").data) == 1  # and vcrpy


def test_a_body_that_does_not_decode_is_stored_as_it_came_with_its_encoding():
    response = http.Response.make(200, b"", {"Content-Encoding": "gzip"})
    response.raw_content = b"not gzip"
    _, _, side = stored_response(response)
    assert side.body == b"not gzip"
    assert side.headers["Content-Encoding"] == ["gzip"]


def test_answers_given_by_anyone_but_upstream_are_not_recorded(record, tmp_path):
    path = tmp_path / "none-of-it.yaml"
    addon = record(graph_cassette=str(path))
    faulted = get("m1")
    addon.request(faulted)
    flows.answer(faulted, cassette.recorded_reply(recorded_stub()), by="fault")
    asyncio.run(addon.response(faulted))
    refused = graph_flow("PUT", ME, b'{"settings": ', JSON)  # malformed: the checks answer
    RequestChecks().request(refused)
    exchange(addon, refused)
    not_ours = graph_flow("GET", "https://example.com/beta/me/onlineMeetings/x/virtualAppointment")
    exchange(addon, not_ours)
    assert not path.exists()
    assert flows.RECORDED not in faulted.metadata
    assert flows.answered_by(refused) == "check"


def recorded_stub() -> cassette.Interaction:
    return cassette.Interaction(
        Request("GET", ME, None, {}),
        {"status": {"code": 429, "message": ""}, "headers": {}, "body": {"string": b"{}"}},
        Path("x.yaml"),
        0,
    )


def test_new_episodes_replays_what_the_cassette_answers_and_records_the_rest(record, tmp_path):
    path = seeded(tmp_path, "known")
    addon = record(graph_cassette=str(path), graph_record_mode="new_episodes")
    hit, miss = get("known"), get("unknown")
    exchange(addon, hit)
    exchange(addon, miss, 200, b'{"new": 1}')
    assert flows.answered_by(hit) == "replay"
    assert hit.response.json() == {"old": "known"}
    assert flows.answered_by(miss) is None
    assert [json.loads(i.response["body"]["string"]) for i in recorded(path)] == [
        {"old": "known"},
        {"new": 1},
    ]


def test_new_episodes_records_a_request_beyond_its_recorded_answers(record, tmp_path):
    path = seeded(tmp_path, "known")
    addon = record(graph_cassette=str(path), graph_record_mode="new_episodes")
    first, surplus = get("known"), get("known")
    exchange(addon, first)
    exchange(addon, surplus, 200, b'{"new": "again"}')
    assert flows.answered_by(first) == "replay"
    assert flows.answered_by(surplus) is None  # forwarded upstream
    assert [json.loads(i.response["body"]["string"]) for i in recorded(path)] == [
        {"old": "known"},
        {"new": "again"},
    ]


@pytest.mark.parametrize(
    ("options", "second"), [({}, "miss"), ({"graph_allow_playback_repeats": True}, "replay")]
)
def test_none_answers_a_request_beyond_its_recorded_answers_only_with_repeats_allowed(
    record, tmp_path, options, second
):
    path = seeded(tmp_path, "known")
    addon = record(graph_cassette=str(path), graph_record_mode="none", **options)
    flows_sent = [get("known"), get("known")]
    for flow in flows_sent:
        addon.request(flow)
    assert [flows.answered_by(f) for f in flows_sent] == ["replay", second]


def test_all_replaces_the_old_answers_to_what_it_re_records_and_keeps_the_rest(record, tmp_path):
    path = seeded(tmp_path, "a", "b", "c")
    addon = record(graph_cassette=str(path), graph_record_mode="all")
    for body in (b'{"new": "b1"}', b'{"new": "b2"}'):
        flow = get("b")
        exchange(addon, flow, 200, body)
        assert flows.answered_by(flow) is None  # never replayed
    exchange(addon, get("d"), 200, b'{"new": "d"}')
    bodies = [json.loads(i.response["body"]["string"]) for i in recorded(path)]
    assert bodies == [{"old": "a"}, {"old": "c"}, {"new": "b1"}, {"new": "b2"}, {"new": "d"}]


def test_none_only_replays_and_answers_a_miss_with_cassette_miss_tagged_as_a_miss(record, tmp_path):
    path = seeded(tmp_path, "known")
    before = path.read_bytes()
    addon = record(graph_cassette=str(path), graph_record_mode="none")
    hit, miss = get("known"), get("unknown")
    addon.request(hit)
    addon.request(miss)
    assert hit.response.json() == {"old": "known"}
    assert miss.response.status_code == 501
    assert miss.response.json()["error"]["code"] == "CassetteMiss"
    assert (flows.answered_by(hit), flows.answered_by(miss)) == ("replay", "miss")
    assert path.read_bytes() == before


def test_a_failed_write_withholds_the_upstream_answer_and_says_why(record, tmp_path):
    addon = record(graph_cassette=str(tmp_path / "later" / "c.yaml"))
    (tmp_path / "later").write_text("a file where the folder was to be made, after start")
    flow = get("m1")
    exchange(addon, flow, 200, b'{"would": "be lost"}')
    assert flow.response.status_code == 500
    assert flow.response.json()["error"]["code"] == "RecordingFailed"
    assert flows.RECORDED not in flow.metadata


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"graph_record_mode": "sometimes"}, "graph_record_mode must be one of"),
        ({"graph_upstream": "ftp://x"}, "must be an http:// or https:// URL"),
        ({"graph_upstream": "http://x:99999"}, "invalid port"),
        ({"graph_cassette": "{tmp}"}, "is a folder"),
        (
            {"graph_cassette": "{tmp}/exists.yaml/sub/c.yaml"},
            "{tmp}/exists.yaml/sub/c.yaml: cannot record here: {tmp}/exists.yaml is not a folder",
        ),
        ({"graph_cassette": "{tmp}/exists.yaml"}, "cassette exists; record mode 'once'"),
        (
            {"graph_cassette": "{tmp}/missing.yaml", "graph_record_mode": "none"},
            "no such cassette",
        ),
        (
            {"graph_cassette": "{tmp}/broken.yaml", "graph_record_mode": "new_episodes"},
            "broken.yaml",
        ),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(record, tmp_path, options, message):
    (tmp_path / "exists.yaml").write_text("version: 1\n")
    (tmp_path / "broken.yaml").write_text("interactions: [\n")
    options = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in options.items()}
    with pytest.raises(exceptions.OptionsError, match=re.escape(message.format(tmp=tmp_path))):
        record(**options)


def test_a_failed_rewrite_in_mode_all_leaves_later_rewrites_replacing_the_right_answers(
    record, tmp_path, monkeypatch
):
    """A rewrite that fails changes nothing: neither the file nor what the recorder believes
    stands at its front, so the next rewrites drop exactly the old answers they replace."""
    path = seeded(tmp_path, "a", "b", "c")
    addon = record(graph_cassette=str(path), graph_record_mode="all")

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(cassette_writer, "replace_atomically", disk_full)
        failed = get("b")
        exchange(addon, failed, 200, b'{"new": "lost"}')
    assert failed.response.json()["error"]["code"] == "RecordingFailed"
    exchange(addon, get("c"), 200, b'{"new": "c"}')
    exchange(addon, get("b"), 200, b'{"new": "b"}')
    bodies = [json.loads(i.response["body"]["string"]) for i in recorded(path)]
    assert bodies == [{"old": "a"}, {"new": "c"}, {"new": "b"}]


def descriptors_naming(path: Path) -> list[str]:
    """This process's open file descriptors that point at ``path``."""
    fds = Path("/proc/self/fd")
    named = []
    for fd in fds.iterdir():
        try:
            if Path(os.readlink(fd)) == path:
                named.append(fd.name)
        except OSError:  # the descriptor listing the folder itself is gone by now
            continue
    return named


def test_a_cassette_refused_after_healing_leaves_no_descriptor_open(record, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("interactions: [\n")
    with pytest.raises(exceptions.OptionsError, match=re.escape(str(path))):
        record(graph_cassette=str(path), graph_record_mode="new_episodes")
    assert descriptors_naming(path) == []


def test_opening_a_cassette_to_add_to_reads_it_once_and_numbers_placeholders_after_its_own(
    tmp_path, monkeypatch
):
    path = tmp_path / "held.yaml"
    request, response = examples.documented_interaction(ME)
    response["body"]["string"] = json.dumps({"phone": "<redacted:phone:4>"})
    path.write_text(cassette.cassette_text([(request, response)]))
    reads: list[Path] = []
    real_read_bytes, real_read_text = Path.read_bytes, Path.read_text

    def read_bytes(self: Path) -> bytes:
        reads.append(self)
        return real_read_bytes(self)

    def read_text(self: Path, *args: object, **kwargs: object) -> str:
        reads.append(self)
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setattr(Path, "read_text", read_text)
    opened = open_cassette(path, RecordMode.NEW_EPISODES, fsync=False)
    assert opened is not None
    try:
        assert [p for p in reads if p == path] == [path]
        assert len(opened.interactions) == 1
        assert opened.placeholders("phone", "+1 206 555 0100") == "<redacted:phone:5>"
    finally:
        opened.close()


def test_two_recorders_in_mode_all_on_one_cassette_keep_each_others_new_answers(tmp_path):
    """Two recorders' accounts of the file, each from its own start, each rewriting the file
    in turn: an old block is known by its text, so neither drops what the other recorded."""
    path = seeded(tmp_path, "y", "z")
    opened = [open_cassette(path, RecordMode.ALL, fsync=False) for _ in range(2)]
    first, second = (Rerecording(o.interactions, o.blocks) for o in opened)

    def rerecord(recorder: Rerecording, writer: cassette_writer.CassetteWriter, m: str, n: int):
        request = Request("GET", ME.replace(examples.MEETING_ID, m), None, {})
        sent = matching.recorded_shape(request)
        response = {"status": {"code": 200, "message": "OK"}, "body": {"string": f'{{"new": {n}}}'}}
        keep, committed = recorder.replacement(sent) or (None, None)
        writer.append(cassette.interaction_yaml(request, response), keep=keep, committed=committed)

    turns = [(0, "z"), (1, "y"), (0, "y"), (1, "z")]  # the order position-pairing lost in
    for n, (who, meeting) in enumerate(turns):
        recorder, opened_by = (first, second)[who], opened[who]
        rerecord(recorder, opened_by.writer, meeting, n)
    for o in opened:
        o.close()
    bodies = sorted(json.loads(i.response["body"]["string"])["new"] for i in recorded(path))
    assert bodies == [0, 1, 2, 3]


def test_a_recorder_beside_the_gate_lets_our_operations_go_upstream(tmp_path):
    """As ``mitmdump -s proxy_addons/record.py`` loads it (the gate comes with every chain of
    scripts): without the CLI to set ``graph_forward_ours``, the recorder sets it when it runs,
    or the gate would keep a $batch holding our calls offline."""
    from mitmproxy import hooks

    from proxy_addons.gate import Gate

    gate, addon = Gate(), Record()
    with taddons.context(gate, addon) as tctx:
        tctx.configure(addon, graph_cassette=str(tmp_path / "new.yaml"))
        assert tctx.options.graph_forward_ours is False
        tctx.master.addons.trigger(hooks.RunningHook())
        assert tctx.options.graph_forward_ours is True and gate.options.forward_ours is True
