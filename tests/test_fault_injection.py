"""The fault injector addon on its own, driven by mitmproxy's test helpers (no sockets)."""

from __future__ import annotations

import asyncio
import json

import pytest
from fault_chain import FakeTime, answer_as_graph, fault_chain, make_flow, respond, send
from helpers import WORK_TENANT, jwt
from mitmproxy import exceptions
from mitmproxy.test import taddons

from proxy_addons import fault_injection as fault_injection_script
from proxy_addons.addons import flows
from proxy_addons.addons.fault_injection import FaultInjector
from proxy_addons.addons.replay import Replay
from proxy_addons.addons.script_chain import chain_of
from proxy_addons.cassette import cassette, examples

ME = examples.ME_URL
OTHER_MEETING = ME.replace(examples.MEETING_ID, "another-meeting")
JOIN_URL = ME.replace("virtualAppointment", "getVirtualAppointmentJoinWebUrl")


@pytest.fixture
def time_():
    return FakeTime()


@pytest.fixture
def injector(time_):
    with fault_chain(time_) as addon:
        yield addon


def statuses(addon: FaultInjector, count: int, **kwargs) -> list[int | str | None]:
    """What each of ``count`` requests got from the faults: a status, 'reset', or None."""
    seen: list[int | str | None] = []
    for _ in range(count):
        flow = send(addon, make_flow(**kwargs))
        seen.append(
            "reset" if flow.error else (flow.response.status_code if flow.response else None)
        )
    return seen


# --- firing windows and order -------------------------------------------------------------


def test_throttle_times_one_answers_the_first_request_only(injector):
    injector.configure_with("throttle:times=1,retry-after=1")
    first, second = send(injector, make_flow()), send(injector, make_flow())
    assert first.response.status_code == 429
    assert first.response.headers["Retry-After"] == "1"
    assert first.response.json()["error"]["code"] == "TooManyRequests"
    assert flows.answered_by(first) == "fault"
    assert first.metadata[flows.FAULT] == "throttle"
    assert second.response is None and flows.FAULT not in second.metadata


def test_nth_resets_only_that_request(injector):
    injector.configure_with("reset:nth=2")
    assert statuses(injector, 4) == [None, "reset", None, None]


def test_selectors_limit_a_rule_to_its_method_and_route(injector):
    injector.configure_with("server-error:route=join-url", "forbidden:method=PUT")
    assert statuses(injector, 1, method="GET", url=JOIN_URL) == [500]
    assert statuses(injector, 1, method="PUT") == [403]
    assert statuses(injector, 1, method="DELETE") == [None]


def test_first_rule_that_fires_decides_the_answer(injector):
    injector.configure_with("unavailable:times=1", "gateway-timeout")
    assert statuses(injector, 3) == [503, 504, 504]


def test_latency_delays_and_then_the_next_rule_still_applies(injector, time_):
    injector.configure_with("latency:ms=250", "throttle")
    flow = send(injector, make_flow())
    assert time_.slept == [0.25]
    assert flow.response.status_code == 429
    assert flow.metadata[flows.FAULTS_INJECTED] == ["latency", "throttle"]


def test_latency_alone_lets_the_request_go_on(injector, time_):
    injector.configure_with("latency:ms=10-20")
    flow = send(injector, make_flow())
    assert flow.response is None and 0.01 <= time_.slept[0] <= 0.02
    assert flow.metadata[flows.FAULT] == "latency"


def test_other_hosts_and_malformed_requests_get_no_fault(injector):
    """Graph's request checks stand before the rules: a malformed request is theirs."""
    injector.configure_with("throttle")
    other = send(injector, make_flow(url="https://example.com/beta/me"))
    refused = send(injector, make_flow(headers={"Content-Type": "text/plain"}))
    assert other.response is None
    assert refused.response.status_code == 415 and flows.answered_by(refused) == "check"


def test_seeded_rate_repeats_exactly_and_another_seed_does_not(time_):
    def pattern(seed: int) -> list[int | str | None]:
        addon = FaultInjector(clock=time_.clock, sleep=time_.sleep)
        with taddons.context(addon) as tctx:
            tctx.configure(addon, graph_faults=["throttle:rate=0.5"], graph_fault_seed=seed)
            return statuses(addon, 40)

    assert pattern(11) == pattern(11)
    assert pattern(11) != pattern(12)
    assert 5 < pattern(11).count(429) < 35


def test_a_rules_draws_do_not_depend_on_other_rules_traffic(time_):
    def throttled(extra_traffic: bool) -> list[int]:
        addon = FaultInjector(clock=time_.clock, sleep=time_.sleep)
        with taddons.context(addon) as tctx:
            tctx.configure(
                addon,
                graph_faults=["server-error:route=get,rate=0.5", "throttle:route=create,rate=0.5"],
                graph_fault_seed=5,
            )
            fired = []
            for n in range(30):
                if extra_traffic:
                    statuses(addon, 1, method="GET")
                if statuses(addon, 1) == [429]:
                    fired.append(n)
            return fired

    assert throttled(False) == throttled(True)


# --- throttle enforcement -----------------------------------------------------------------


def test_enforced_throttle_answers_early_returns_with_what_is_left(injector, time_):
    injector.configure_with("throttle:times=1,retry-after=10,enforce=true")
    assert statuses(injector, 1) == [429]
    time_.now += 3.2
    early = send(injector, make_flow())
    assert early.response.status_code == 429
    assert early.response.headers["Retry-After"] == "7"
    time_.now += 7
    assert statuses(injector, 2) == [None, None]
    assert injector.rule_table()[0] == {
        "spec": "throttle:times=1,retry-after=10,enforce=true",
        "kind": "throttle",
        "matched": 3,
        "injected": 2,
    }


def test_unenforced_throttle_lets_an_early_client_through(injector, time_):
    injector.configure_with("throttle:times=1,retry-after=10")
    assert statuses(injector, 2) == [429, None]


def test_enforced_fractional_retry_after_counts_down_in_milliseconds(injector, time_):
    injector.configure_with("throttle:times=1,retry-after=2.5,enforce=true")
    statuses(injector, 1)
    time_.now += 1.2
    assert send(injector, make_flow()).response.headers["Retry-After"] == "1.3"


# --- conditions (the ETag ones: test_etag_tracker.py) --------------------------------------


def patch(addon: FaultInjector, if_match: str | None, url: str = ME) -> int | None:
    headers = {"If-Match": if_match} if if_match else {}
    flow = send(addon, make_flow("PATCH", url, '{"externalAppointmentId": "b"}', headers))
    return flow.response.status_code if flow.response else None


def test_etag_mismatch_always_refuses_every_matching_request(injector):
    injector.configure_with("etag-mismatch:method=PATCH")
    assert patch(injector, None) == 412
    reply = send(injector, make_flow("PATCH", body="{}")).response
    assert "change key" in reply.json()["error"]["message"]


# --- response-phase kinds -----------------------------------------------------------------


def test_malformed_cuts_the_body_the_mode_answered_with():
    faults, replay = FaultInjector(), Replay()
    with taddons.context(faults, replay) as tctx:
        tctx.configure(faults, graph_faults=["malformed:times=1"])
        tctx.configure(replay, graph_cassette=str(cassette.bundled_cassettes()))
        flow = make_flow()
        asyncio.run(faults.request(flow))
        replay.request(flow)
        real = flow.response.content
        faults.response(flow)
    assert flow.response.status_code == 201
    assert real.startswith(flow.response.content) and len(flow.response.content) < len(real)
    with pytest.raises(json.JSONDecodeError):
        json.loads(flow.response.content)
    assert (flows.answered_by(flow), flow.metadata[flows.FAULT]) == ("fault", "malformed")


@pytest.mark.parametrize("kind", ["malformed", "empty"])
def test_a_cassette_miss_is_never_spoilt_into_a_200(kind, tmp_path):
    """Replay's 501 CassetteMiss is the proxy's own answer, the loud one a test must read:
    a malformed or empty rule leaves it as it is, and counts nothing injected."""
    faults, replay = FaultInjector(), Replay()
    with taddons.context(faults, replay) as tctx:
        tctx.configure(faults, graph_faults=[kind])
        tctx.configure(replay, graph_cassette=str(cassette.bundled_cassettes()))
        flow = make_flow("GET", OTHER_MEETING)
        asyncio.run(faults.request(flow))
        replay.request(flow)
        faults.response(flow)
        injected = faults.rule_table()[0]["injected"]
    assert flow.response.json()["error"]["code"] == "CassetteMiss"
    assert (flow.response.status_code, flows.answered_by(flow), injected) == (501, "miss", 0)
    assert flows.FAULT not in flow.metadata


def test_a_broken_body_still_carries_the_ratelimit_headers(injector):
    """A request a ratelimit rule lets through and a malformed rule breaks: the broken
    answer is the one that gets RateLimit-*, as every answer while the limit applies."""
    injector.configure_with("ratelimit:limit=5", "malformed")
    flow = send(injector, make_flow())
    answer_as_graph(flow, 201, {"id": "x", "displayName": "a name long enough to cut"})
    respond(injector, flow)
    assert flow.metadata[flows.FAULT] == "malformed"
    assert (flow.response.status_code, flow.response.headers.get("RateLimit-Remaining")) == (
        201,
        "4",
    )


def test_empty_keeps_a_2xx_and_drops_the_body(injector):
    injector.configure_with("empty")
    flow = send(injector, make_flow())
    answer_as_graph(flow, 201, {"id": "x"})
    respond(injector, flow)
    assert (flow.response.status_code, flow.response.content) == (201, b"")
    assert flow.response.headers["Content-Type"] == "application/json"


def test_an_answer_given_by_a_fault_is_left_to_replay_untouched():
    faults, replay = FaultInjector(), Replay()
    with taddons.context(faults, replay) as tctx:
        tctx.configure(faults, graph_faults=["bad-gateway"])
        flow = make_flow()
        asyncio.run(faults.request(flow))
        replay.request(flow)
    assert flow.response.status_code == 502 and flows.answered_by(flow) == "fault"


# --- options and commands -------------------------------------------


def test_bad_specs_are_refused_by_configure_naming_the_key(injector):
    with pytest.raises(exceptions.OptionsError, match=r"unknown key 'tims' for throttle; allowed"):
        injector.configure_with("throttle:tims=1")


def test_faults_file_rules_come_before_option_rules(injector, tmp_path):
    path = tmp_path / "faults.yaml"
    path.write_text("- kind: server-error\n  times: 1\n")
    injector.configure_with("throttle", graph_faults_file=str(path))
    assert statuses(injector, 2) == [500, 429]


def test_bad_faults_file_is_refused_with_file_and_line(injector, tmp_path):
    path = tmp_path / "faults.yaml"
    path.write_text("- reset\n- kind: throttle\n  retry-after: soon\n")
    with pytest.raises(exceptions.OptionsError, match=r"faults\.yaml:2: retry-after"):
        injector.configure_with(graph_faults_file=str(path))


def test_commands_add_list_set_and_clear_rules_at_runtime(injector):
    tctx = injector.tctx
    injector.configure_with("throttle:times=1")
    assert statuses(injector, 1) == [429]
    tctx.command(injector.add_command, "reset:nth=1,method=PUT", "latency:ms=1")
    listing = tctx.command(injector.list_command)
    assert listing == [
        "throttle:times=1  (matched 1, injected 1)",
        "reset:nth=1,method=PUT  (matched 0, injected 0)",
        "latency:ms=1  (matched 0, injected 0)",
    ]
    assert statuses(injector, 1) == ["reset"]  # the throttle kept its count
    tctx.command(injector.set_command, "forbidden")
    assert statuses(injector, 1) == [403]
    tctx.command(injector.clear_command)
    assert statuses(injector, 1) == [None] and injector.rule_table() == []


def test_a_bad_command_spec_changes_nothing(injector):
    injector.configure_with("throttle")
    with pytest.raises(exceptions.CommandError, match="unknown fault kind 'nope'"):
        injector.tctx.command(injector.add_command, "reset", "nope")
    assert [r["spec"] for r in injector.rule_table()] == ["throttle"]


def test_the_addon_loads_as_a_mitmdump_script():
    with taddons.context() as tctx:
        tctx.script(fault_injection_script.__file__)
        addon = next(a for a in chain_of(tctx.master.addons).addons if hasattr(a, "states"))
        tctx.configure(addon, graph_faults=["throttle:times=1"])
        flow = send(addon, make_flow())
    assert type(addon).__name__ == "FaultInjector"
    assert flow.response.status_code == 429


# --- permissions --------------------------------------------------------------------------


def create_with(addon: FaultInjector, authorization: str | None) -> int | None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    flow = send(addon, make_flow("PUT", ME, headers=headers))
    return flow.response.status_code if flow.response else None


def test_permissions_fault_refuses_only_tokens_graph_would_refuse(injector):
    injector.configure_with("permissions")
    app_only = "Bearer " + jwt(tid=WORK_TENANT, roles=["OnlineMeetings.ReadWrite.All"])
    personal = "Bearer " + jwt(tid="9188040d-6c67-4c5b-b112-36a304b66dad", scp="x")
    assert create_with(injector, app_only) == 403
    assert create_with(injector, personal) == 403
    assert create_with(injector, "Bearer " + jwt(tid=WORK_TENANT, scp="User.Read")) == 403
    assert create_with(injector, "Bearer " + jwt(scp="OnlineMeetings.ReadWrite")) is None
    assert create_with(injector, "Bearer x") is None  # not a JWT: not judged
    assert create_with(injector, None) is None
    assert injector.rule_table()[0]["matched"] == 3  # only the refused ones count


def test_permissions_fault_answers_graphs_forbidden_envelope_and_takes_its_own_scopes(injector):
    injector.configure_with("permissions:scopes=Custom.Scope,method=PUT")
    flow = send(injector, make_flow("PUT", ME, headers={"Authorization": "Bearer " + jwt(scp="x")}))
    assert flow.response is not None
    error = json.loads(flow.response.content)["error"]
    assert (error["code"], error["message"]) == ("Forbidden", "")
    assert flows.answered_by(flow) == "fault"
    assert create_with(injector, "Bearer " + jwt(scp="custom.scope")) is None


def test_reset_keeps_the_rules_but_forgets_their_counts_and_throttle_windows(injector, time_):
    injector.configure_with("throttle:times=1,retry-after=60,enforce=true", "forbidden:nth=2")
    assert statuses(injector, 3) == [429, 429, 429]  # the window holds the client back
    injector.reset()
    assert [s["matched"] for s in injector.rule_table()] == [0, 0]
    assert statuses(injector, 3) == [429, 429, 429]
    time_.now += 60
    assert statuses(injector, 2) == [None, 403]  # the forbidden rule counts afresh


# --- a JSON $batch call -------------------------------------------------------------------

BATCH_BODY = json.dumps(
    {"requests": [{"id": "1", "method": "GET", "url": "/me/onlineMeetings/m/virtualAppointment"}]}
)


def test_route_batch_fails_the_batch_call_and_other_rules_leave_it_to_its_requests(injector):
    injector.configure_with("throttle:route=create", "unavailable:route=batch,times=1")
    url = "https://graph.microsoft.com/v1.0/$batch"
    first = send(injector, make_flow("POST", url, BATCH_BODY))
    second = send(injector, make_flow("POST", url, BATCH_BODY))
    assert first.response is not None and first.response.status_code == 503
    assert second.response is None  # batching.py runs each request through the rules
