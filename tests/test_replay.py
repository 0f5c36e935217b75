"""The replay addon on its own, driven by mitmproxy's test helpers (no sockets)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from helpers import graph_flow
from mitmproxy import exceptions, http
from mitmproxy.addons import proxyserver
from mitmproxy.test import taddons
from vcr.request import Request

from proxy_addons.addons import flows
from proxy_addons.addons.playback import MISS_CODE, MISS_STATUS, answer_miss
from proxy_addons.addons.replay import Replay
from proxy_addons.addons.request_checks import RequestChecks
from proxy_addons.addons.script_chain import chain_of
from proxy_addons.addons.unreachable_upstream import UnreachableUpstream
from proxy_addons.cassette import cassette, examples
from proxy_addons.cassette.matching import CassetteIndex
from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.graph.models import ErrorResponse

REPLAY, MISS = AnsweredBy.REPLAY, AnsweredBy.MISS

ME = examples.ME_URL
DOCUMENTED = json.loads(examples.RESPONSE_BODY)


def documented_flow(url: str = ME, **headers: str) -> http.HTTPFlow:
    return graph_flow("PUT", url, examples.REQUEST_BODY, {**examples.REQUEST_HEADERS, **headers})


def numbered_cassette(tmp_path: Path, count: int, body: str = '{"v": 1}') -> Path:
    """``count`` recordings of the same PUT, answered 200 {"n": i} in order."""
    pairs = [
        (
            Request("PUT", ME, body, {"Content-Type": ["application/json"]}),
            {
                "status": {"code": 200, "message": "OK"},
                "headers": {
                    "Content-Type": ["application/json"],
                    "request-id": ["recorded-id"],
                    "Date": ["Mon, 01 Jan 2024 00:00:00 GMT"],
                    "ETag": [f'W/"{n}"'],
                },
                "body": {"string": json.dumps({"n": n})},
            },
        )
        for n in range(count)
    ]
    path = tmp_path / "numbered.yaml"
    path.write_text(cassette.cassette_text(pairs), encoding="utf-8")
    return path


@pytest.fixture
def replay():
    addon = Replay()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, graph_cassette=str(cassette.bundled_cassettes()))
        yield addon, tctx


def test_documented_create_is_answered_201_with_the_documented_body(replay):
    addon, _ = replay
    for url in (ME, examples.USERS_URL):
        flow = documented_flow(url)
        addon.request(flow)
        assert flow.response is not None
        assert (flow.response.status_code, flow.response.reason) == (201, "Created")
        assert flow.response.json() == DOCUMENTED
        assert flows.answered_by(flow) == REPLAY == "replay"


def test_answers_carry_fresh_request_id_echoed_client_request_id_and_date(replay):
    addon, _ = replay
    first, second = documented_flow(**{"client-request-id": "c-1"}), documented_flow()
    addon.request(first)
    addon.request(second)
    one, two = first.response.headers, second.response.headers
    assert one["request-id"] != two["request-id"]
    assert one["client-request-id"] == "c-1"
    assert "client-request-id" not in two
    assert one["Date"].endswith(" GMT")
    assert one["Content-Type"] == "application/json"
    assert one["Cache-Control"] == "no-store"
    assert one["Content-Length"] == str(len(first.response.raw_content))


@pytest.mark.parametrize(
    "sent",
    ["abc\rX-Injected: 1", "abc\x00", "abc\r\n X-Injected: 1", "\udcff\udcfe", "a" * 257, " a"],
)
def test_a_client_request_id_a_header_cannot_carry_safely_is_not_echoed(replay, sent):
    """A line break a client smuggles in must not become a header of its own in the answer,
    and 100 KB of id must not outgrow what clients read of a header block."""
    addon, _ = replay
    flow = documented_flow(**{"client-request-id": sent})
    addon.request(flow)
    assert flow.response.status_code == 201
    assert "client-request-id" not in flow.response.headers


def test_recorded_per_response_headers_are_replaced_and_the_rest_kept(tmp_path):
    addon = Replay()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, graph_cassette=str(numbered_cassette(tmp_path, 1)))
        flow = graph_flow("PUT", ME, '{"v": 1}', {"Content-Type": "application/json"})
        addon.request(flow)
    headers = flow.response.headers
    assert headers.get_all("request-id") != ["recorded-id"]
    assert len(headers.get_all("request-id")) == 1
    assert headers.get_all("Date") != ["Mon, 01 Jan 2024 00:00:00 GMT"]
    assert headers["ETag"] == 'W/"0"'


def replay_numbered(tmp_path: Path, times: int, **options: object) -> list[http.HTTPFlow]:
    """``times`` identical PUTs replayed from three numbered recordings of it."""
    addon = Replay()
    sent = []
    with taddons.context(addon) as tctx:
        tctx.configure(addon, graph_cassette=str(numbered_cassette(tmp_path, 3)), **options)
        for _ in range(times):
            flow = graph_flow("PUT", ME, '{ "v" : 1 }', {"Content-Type": "application/json"})
            addon.request(flow)
            sent.append(flow)
    return sent


def test_repeated_identical_requests_get_each_answer_once_in_order_then_a_miss(tmp_path):
    sent = replay_numbered(tmp_path, 5)
    assert [f.response.json()["n"] for f in sent[:3]] == [0, 1, 2]
    for flow in sent[3:]:
        error = ErrorResponse.model_validate(flow.response.json()).error
        assert (flow.response.status_code, error.code) == (MISS_STATUS, MISS_CODE)
        assert flows.answered_by(flow) == MISS
        assert error.message == (
            f"No recorded answer is left for PUT {ME}: all 3 recorded answers to this request "
            "were already played; allow repeats with --allow-playback-repeats "
            "(allow_playback_repeats=True in the marker)."
        )


def test_allowing_playback_repeats_answers_in_order_then_the_last_again(tmp_path):
    sent = replay_numbered(tmp_path, 5, graph_allow_playback_repeats=True)
    assert [f.response.json()["n"] for f in sent] == [0, 1, 2, 2, 2]


def test_a_miss_is_501_cassette_miss_naming_the_closest_request_and_the_difference(replay, caplog):
    addon, _ = replay
    body = json.loads(examples.REQUEST_BODY)
    body["externalAppointmentId"] = "other"
    flow = graph_flow("PUT", ME, json.dumps(body), {"Content-Type": "application/json"})
    with caplog.at_level(logging.WARNING):
        addon.request(flow)
    assert flow.response.status_code == MISS_STATUS == 501
    assert flows.answered_by(flow) == MISS == "miss"  # not "replay": the summary tells them apart
    assert caplog.messages == [f"cassette miss: PUT {ME}"]
    error = ErrorResponse.model_validate(flow.response.json()).error
    assert error.code == MISS_CODE == "CassetteMiss"
    assert f"No recorded interaction matches PUT {ME}" in error.message
    assert f"closest recorded request is PUT {ME} (create-virtualappointment-me.yaml #0)" in (
        error.message
    )
    assert "body at $.externalAppointmentId" in error.message


def test_answer_miss_tags_and_logs_a_miss_for_any_addon_that_replays(caplog):
    index = CassetteIndex(cassette.load(cassette.bundled_cassettes()))
    flow = graph_flow("GET", ME)
    with caplog.at_level(logging.WARNING):
        answer_miss(flow, index)
    assert (flow.response.status_code, flows.answered_by(flow)) == (501, MISS)
    message = ErrorResponse.model_validate(flow.response.json()).error.message
    assert "differs in method (PUT recorded, GET sent); body (recorded one, none sent)." in message
    assert caplog.messages == [f"cassette miss: GET {ME}"]


def test_the_docs_show_the_cassette_miss_message_exactly_as_replay_sends_it(replay):
    page = (Path(__file__).resolve().parent.parent / "docs" / "replay.md").read_text(
        encoding="utf-8"
    )
    shown = next(
        json.loads("{" + line.strip().rstrip(",") + "}")["message"]
        for line in page.splitlines()
        if line.strip().startswith('"message": "No recorded interaction matches')
    )
    addon, _ = replay
    flow = graph_flow("GET", ME + "?$select=id")
    addon.request(flow)
    assert flow.response.json()["error"]["message"] == shown


def test_a_miss_is_forwarded_untouched_with_on_miss_forward(replay):
    addon, tctx = replay
    tctx.configure(addon, graph_on_miss="forward")
    flow = graph_flow("GET", ME)
    addon.request(flow)
    assert flow.response is None
    assert flows.answered_by(flow) is None


def test_ignoring_the_body_answers_any_body(replay):
    addon, tctx = replay
    tctx.configure(addon, graph_match_body=False)
    flow = graph_flow("PUT", ME, '{"anything": 1}', {"Content-Type": "application/json"})
    addon.request(flow)
    assert flow.response.status_code == 201


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/beta/me/onlineMeetings/x/virtualAppointment",
        "https://graph.microsoft.com/v1.0/me/messages",
        "https://graph.microsoft.com/beta/me/onlineMeetings/x",
    ],
)
def test_traffic_that_is_not_ours_is_untouched_and_not_logged(replay, url, caplog):
    addon, _ = replay
    flow = graph_flow("PUT", url, b"\xff not json", {"Content-Type": "text/plain"})
    before = flow.request.get_state()
    with caplog.at_level(logging.DEBUG):
        addon.request(flow)
    assert flow.response is None
    assert flow.request.get_state() == before
    assert caplog.records == []


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"settings": ', "application/json", 400),
        (b'{"a": "\xff"}', "application/json", 400),
        (b"x" * (10 * 1024 * 1024), "application/json", 413),
        (examples.REQUEST_BODY.encode(), "text/plain", 415),
    ],
)
def test_malformed_requests_get_graph_4xx_before_any_lookup(tmp_path, body, content_type, status):
    """Graph's request checks stand before replay in every chain (chain_order.EVERY_CHAIN)."""
    checks, addon = RequestChecks(), Replay()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, graph_cassette=str(numbered_cassette(tmp_path, 2)))
        bad = graph_flow("PUT", ME, body, {"Content-Type": content_type})
        checks.request(bad)
        addon.request(bad)
        good = graph_flow("PUT", ME, '{"v": 1}', {"Content-Type": "application/json"})
        checks.request(good)
        addon.request(good)
    assert bad.response.status_code == status
    assert flows.answered_by(bad) == "check"
    assert "error" in bad.response.json()
    assert good.response.json() == {"n": 0}  # the refusal consumed no recording


def test_a_flow_another_addon_already_answered_is_left_alone(replay):
    addon, _ = replay
    flow = documented_flow()
    flow.response = http.Response.make(429, b"{}")
    addon.request(flow)
    assert flow.response.status_code == 429


def test_a_corrupt_cassette_is_an_options_error_naming_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ninteractions:\n  - [\n", encoding="utf-8")
    addon = Replay()
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match=rf"^{bad}:4: not valid YAML"):
            tctx.configure(addon, graph_cassette=str(bad))
        # the previous (bundled) cassette is still served
        flow = documented_flow()
        addon.request(flow)
        assert flow.response.status_code == 201


@pytest.mark.parametrize(
    ("response", "problem"),
    [
        ("{status: 200}", "response.status: must be a mapping, got 200"),
        ("{status: {code: 200}, body: 5}", "response.body: must be a mapping, got 5"),
        ("{status: {code: 200}, headers: {X-A: 'a\n\n b'}}", "response.headers.X-A[0]"),
    ],
)
def test_a_cassette_of_the_wrong_shape_is_refused_and_the_loaded_one_kept(
    tmp_path, replay, response, problem
):
    addon, tctx = replay
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\ninteractions:\n"
        f"- request: {{method: GET, uri: '{ME}', body: null, headers: {{}}}}\n"
        f"  response: {response}\n",
        encoding="utf-8",
    )
    with pytest.raises(exceptions.OptionsError) as caught:
        tctx.configure(addon, graph_cassette=str(bad))
    assert str(caught.value).startswith(f"{bad}:3: interaction 0: {problem}")
    flow = documented_flow()
    addon.request(flow)
    assert flow.response.status_code == 201


def test_an_unknown_on_miss_value_is_refused():
    addon = Replay()
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match="graph_on_miss must be one of"):
            tctx.configure(addon, graph_on_miss="explode")
        assert tctx.options.graph_on_miss == "error"


def test_running_switches_connection_strategy_to_lazy():
    addon = Replay()
    with taddons.context(proxyserver.Proxyserver(), addon) as tctx:
        tctx.configure(addon, connection_strategy="eager")
        addon.running()
        assert tctx.options.connection_strategy == "lazy"


def test_loads_as_a_mitmdump_script_with_its_options():
    script = Path(__file__).resolve().parent.parent / "proxy_addons" / "replay.py"
    with taddons.context() as tctx:
        tctx.script(str(script))
        _gate, _checks, _batching, addon, _seal, unreachable = chain_of(
            tctx.master.addons
        ).addons  # configured
        assert isinstance(unreachable, UnreachableUpstream)  # forwards get Graph's 502 too
        assert tctx.options.graph_on_miss == "error"
        assert len(addon.index) == 2  # the bundled cassettes, by default
        flow = documented_flow()
        addon.request(flow)
        assert flow.response.status_code == 201
