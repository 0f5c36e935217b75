"""ratelimit, latency distributions, hang and slow-body: their specs, and the fault injector
carrying them out under mitmproxy's test helpers (no sockets; a clock the test moves)."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from pathlib import Path

import pytest
from fault_chain import FakeTime
from helpers import WORK_TENANT, graph_flow, jwt
from mitmproxy import http
from mitmproxy.test import taddons

from proxy_addons.addons import flows
from proxy_addons.addons.fault_injection import FaultInjector
from proxy_addons.addons.flows import to_response
from proxy_addons.addons.stalls import PacedWriter
from proxy_addons.cassette import examples
from proxy_addons.graph.faults import FaultSpecError, Kind, parse_rules_text, parse_spec
from proxy_addons.graph.latency import DistributedDelay, Distribution
from proxy_addons.graph.rate_limits import Policy, RateLimit
from proxy_addons.graph.replies import json_reply
from proxy_addons.graph.routes import Operation
from proxy_addons.graph.stalls import Hang, SlowBody

ME = examples.ME_URL


# --- the specs ----------------------------------------------------------------------------


def test_ratelimit_defaults_to_120_a_minute_each_call_costing_one_with_throttles_body():
    assert parse_spec("ratelimit").effect == RateLimit(
        Policy(120, 60.0, (), 1), "TooManyRequests", "Please retry again later."
    )


@pytest.mark.parametrize(
    ("cost", "costs", "default"),
    [
        ("create:5|get:1", ((Operation.CREATE, 5), (Operation.GET, 1)), 1),
        ("3", (), 3),
        ("sms:2|4", ((Operation.REMINDER_SMS, 2), (Operation.SMS, 2)), 4),
        ("Create:2", ((Operation.CREATE, 2),), 1),
    ],
)
def test_ratelimit_cost_names_operations_and_a_bare_number_prices_the_rest(cost, costs, default):
    effect = parse_spec(f"ratelimit:limit=10,window=2.5,cost={cost}").effect
    assert effect.policy == Policy(10, 2.5, costs, default)


def test_a_faults_file_gives_costs_as_a_mapping_or_a_list():
    rules = parse_rules_text(
        "- {kind: ratelimit, limit: 9, cost: {create: 5, get: 2}}\n"
        "- {kind: ratelimit, limit: 9, cost: ['create:5', 'get:2']}\n",
        "faults.yaml",
    )
    assert rules[0].effect == rules[1].effect
    assert rules[0].effect.policy.costs == ((Operation.CREATE, 5), (Operation.GET, 2))


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        ("ratelimit:limit=0", ["limit", ">= 1"]),
        ("ratelimit:window=0", ["window", "above 0"]),
        ("ratelimit:limit=3,cost=create:5", ["costs more than the whole limit (3)"]),
        ("ratelimit:cost=meet:1", ["unknown route 'meet'", "create:5|get:1"]),
        ("ratelimit:cost=create:1|create:2", ["'create' is given a cost twice"]),
        ("ratelimit:cost=1|2", ["two bare costs"]),
        ("ratelimit:cost=create:x", ["cost", "whole number"]),
        ("ratelimit:retry-after=1", ["unknown key 'retry-after' for ratelimit", "window"]),
        ("latency:dist=pareto", ["dist", "lognormal", "normal"]),
        ("latency:dist=lognormal,median=100", ["dist=lognormal takes median=MS,p99=MS"]),
        ("latency:dist=lognormal,mean=100,stddev=3", ["mean: not a key of dist=lognormal"]),
        ("latency:dist=lognormal,median=500,p99=100", ["median <= p99"]),
        ("latency:dist=normal,mean=100,p99=300", ["mean=MS,stddev=MS or median=MS,p99=MS"]),
        ("latency:median=100,p99=300", ["median: not a key of dist=uniform", "ms"]),
        ("latency:dist=normal,mean=700000,stddev=1", ["mean", "600000"]),
        ("hang:max=0", ["max", "above 0"]),
        ("hang:max=soon", ["max", "seconds"]),
        ("hang:max=7200", ["up to 3600"]),
        ("slow-body:ms=0", ["ms", "1 to 600000"]),
        ("slow-body:chunks=5000", ["chunks", "1 to 1000"]),
        ("slow-body:retry-after=1", ["unknown key", "chunks"]),
    ],
)
def test_bad_shape_specs_are_refused_naming_the_key_and_what_it_takes(spec, fragments):
    with pytest.raises(FaultSpecError) as refused:
        parse_spec(spec)
    for fragment in fragments:
        assert fragment in str(refused.value)


def test_latency_specs_give_the_distribution_asked_for():
    lognormal = parse_spec("latency:dist=lognormal,median=100,p99=1000").effect
    normal = parse_spec("latency:dist=normal,mean=200,stddev=20").effect
    by_percentiles = parse_spec("latency:dist=Normal,median=200,p99=200").effect
    assert isinstance(lognormal, DistributedDelay)
    assert lognormal.dist is Distribution.LOGNORMAL
    assert (normal.dist, normal.location, normal.scale) == (Distribution.NORMAL, 200, 20)
    assert (by_percentiles.location, by_percentiles.scale) == (200, 0)


def test_hang_and_slow_body_take_their_defaults_and_seconds_with_an_s():
    assert parse_spec("hang").effect == Hang(30.0)
    assert parse_spec("hang:max=2.5s").effect == Hang(2.5)
    assert parse_spec("slow-body").effect == SlowBody(1000, 10)
    assert parse_spec("slow-body:ms=300,chunks=3,route=get").effect == SlowBody(300, 3)


def test_slow_body_cuts_a_body_into_near_equal_pieces_none_empty():
    assert SlowBody(100, 3).pieces(b"abcdefgh") == [b"abc", b"def", b"gh"]
    assert SlowBody(100, 10).pieces(b"ab") == [b"a", b"b"]
    assert SlowBody(100, 4).gap_seconds() == 0.025


# --- the injector carrying them out -------------------------------------------------------


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def injector(clock):
    addon = FaultInjector(clock=clock.clock, sleep=clock.sleep)
    with taddons.context(addon) as tctx:

        def configure(*specs: str, **options):
            tctx.configure(addon, graph_faults=list(specs), **options)

        addon.configure_with = configure  # type: ignore[attr-defined]
        yield addon


def create_flow(app: str = "app-a") -> http.HTTPFlow:
    token = jwt(appid=app, tid=WORK_TENANT, scp="OnlineMeetings.ReadWrite")
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    flow = graph_flow("PUT", ME, examples.REQUEST_BODY, headers)
    flow.client_conn.timestamp_end = None  # connected (tflow's client has come and gone)
    return flow


def through(addon: FaultInjector, flow: http.HTTPFlow) -> http.HTTPFlow:
    """The request hook, the mode's answer (a 201, as replay gives) and the response hook."""
    asyncio.run(addon.request(flow))
    if flow.response is None and flow.error is None:
        flow.response = to_response(json_reply(201, {"id": "x"}, flow.request.headers))
    addon.response(flow)
    return flow


def test_ratelimit_refuses_over_budget_with_retry_after_from_the_window(injector, clock):
    injector.configure_with("ratelimit:limit=3,window=60,cost=create:2")
    first = through(injector, create_flow())
    clock.now += 10.5
    refused = through(injector, create_flow())
    assert first.response.status_code == 201
    assert refused.response.status_code == 429
    assert refused.response.json()["error"]["code"] == "TooManyRequests"
    assert refused.response.headers["Retry-After"] == "50"  # 49.5 left, rounded up
    assert flows.answered_by(refused) == "fault"
    assert refused.metadata[flows.FAULT] == "ratelimit"
    clock.now += 50
    assert through(injector, create_flow()).response.status_code == 201


def test_every_answer_while_the_rule_applies_carries_the_ratelimit_headers(injector):
    injector.configure_with("ratelimit:limit=2,window=30,route=create")
    answers = [through(injector, create_flow()).response for _ in range(3)]
    assert [(a.status_code, a.headers["RateLimit-Remaining"]) for a in answers] == [
        (201, "1"),
        (201, "0"),
        (429, "0"),
    ]
    assert {(a.headers["RateLimit-Limit"], a.headers["RateLimit-Reset"]) for a in answers} == {
        ("2", "30")
    }
    other_route = through(injector, graph_flow("GET", ME, None, {}))
    assert "RateLimit-Limit" not in other_route.response.headers


def test_ratelimit_lets_later_rules_run_on_what_it_lets_through(injector):
    injector.configure_with("ratelimit:limit=1", "latency:ms=5", "forbidden")
    allowed, refused = through(injector, create_flow()), through(injector, create_flow())
    assert allowed.response.status_code == 403
    assert allowed.response.headers["RateLimit-Remaining"] == "0"
    assert refused.response.status_code == 429  # decided here: later rules never see it


def test_ratelimit_draws_repeat_under_a_seed(clock):
    def run(seed: int) -> list[int]:
        addon = FaultInjector(clock=clock.clock, sleep=clock.sleep)
        with taddons.context(addon) as tctx:
            tctx.configure(
                addon, graph_faults=["ratelimit:limit=2,window=5,rate=0.5"], graph_fault_seed=seed
            )
            codes = []
            for _ in range(24):
                clock.now += 1
                codes.append(through(addon, create_flow()).response.status_code)
            return codes

    assert run(11) == run(11)
    assert {201, 429} <= set(run(11))


def test_latency_distributions_sleep_what_the_seeded_stream_draws(clock):
    def slept(seed: int) -> list[float]:
        clock.slept.clear()
        addon = FaultInjector(clock=clock.clock, sleep=clock.sleep)
        with taddons.context(addon) as tctx:
            spec = "latency:dist=lognormal,median=100,p99=1000"
            tctx.configure(addon, graph_faults=[spec], graph_fault_seed=seed)
            for _ in range(5):
                through(addon, create_flow())
        return list(clock.slept)

    first = slept(4)
    assert first == slept(4)
    assert len(set(first)) == 5 and all(0 < s < 600 for s in first)


def test_hang_holds_the_flow_until_the_client_disconnects_and_leaves_no_task(injector):
    injector.configure_with("hang:max=30")
    flow = create_flow()

    async def scenario() -> tuple[int, int, set[asyncio.Task]]:
        hook = asyncio.create_task(injector.request(flow))
        await asyncio.sleep(0.05)
        held = injector.rule_table()[0]["held"]
        injector.client_disconnected(flow.client_conn)
        await asyncio.wait_for(hook, 5)
        others = asyncio.all_tasks() - {asyncio.current_task()}
        return held, injector.rule_table()[0]["held"], others

    started = time.monotonic()
    held_during, held_after, left = asyncio.run(scenario())
    assert (held_during, held_after, left) == (1, 0, set())
    assert time.monotonic() - started < 5
    assert flow.response is None and flow.error.msg == flow.error.KILLED_MESSAGE
    assert flows.answered_by(flow) == "fault"


def test_hang_kills_the_flow_itself_at_max(injector):
    injector.configure_with("hang:max=0.2")
    flow = create_flow()
    started = time.monotonic()
    asyncio.run(injector.request(flow))
    assert 0.15 <= time.monotonic() - started < 5
    assert flow.error.msg == flow.error.KILLED_MESSAGE
    assert injector.rule_table()[0]["held"] == 0


def test_a_client_gone_before_the_hang_is_let_go_at_once(injector):
    injector.configure_with("hang:max=30")
    flow = create_flow()
    flow.client_conn.timestamp_end = time.time()
    started = time.monotonic()
    asyncio.run(injector.request(flow))
    assert time.monotonic() - started < 1
    assert flow.error.msg == flow.error.KILLED_MESSAGE


def test_stopping_the_proxy_lets_every_held_flow_go(injector):
    injector.configure_with("hang:max=30")
    flow = create_flow()

    async def scenario() -> None:
        hook = asyncio.create_task(injector.request(flow))
        await asyncio.sleep(0.05)
        injector.done()
        await asyncio.wait_for(hook, 5)

    asyncio.run(scenario())
    assert flow.error.msg == flow.error.KILLED_MESSAGE


# --- the paced writer ---------------------------------------------------------------------


class RecordingWriter:
    """A stand-in for an asyncio.StreamWriter that notes when each write came."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, bytes]] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append((time.monotonic(), data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"extra {name}"


def test_the_paced_writer_sends_headers_at_once_the_body_in_pieces_then_the_rest():
    real = RecordingWriter()

    async def scenario() -> None:
        tasks: set[asyncio.Task[None]] = set()
        paced = PacedWriter(real, tasks)
        paced.arm(SlowBody(ms=300, chunks=3))
        started = time.monotonic()
        paced.write(b"HEADERS")
        paced.write(b"abcdefghi")
        paced.write(b"NEXT")
        paced.close()
        assert paced.is_closing() and not real.closed  # the close waits for the body
        assert paced.get_extra_info("peername") == "extra peername"
        await asyncio.gather(*tasks)
        real.writes.insert(0, (started, b"start"))

    asyncio.run(scenario())
    started = real.writes[0][0]
    times = [at - started for at, _ in real.writes[1:]]
    assert [data for _, data in real.writes[1:]] == [b"HEADERS", b"abc", b"def", b"ghi", b"NEXT"]
    assert times[0] < 0.05  # the headers at once
    gaps = [later - earlier for earlier, later in itertools.pairwise(times[:4])]
    assert all(gap >= 0.09 for gap in gaps)  # a gap before each piece of the body
    assert times[4] - times[3] < 0.05  # what queued behind the body follows it at once
    assert real.closed


def test_an_unarmed_paced_writer_writes_straight_through():
    real = RecordingWriter()
    paced = PacedWriter(real, set())
    paced.write(b"one")
    paced.write(b"two")
    paced.close()
    assert [data for _, data in real.writes] == [b"one", b"two"]
    assert real.closed


def test_slow_body_leaves_an_answer_without_a_body_alone(injector):
    injector.configure_with("slow-body:ms=100")
    flow = create_flow()
    asyncio.run(injector.request(flow))
    flow.response = to_response(json_reply(204, {}, flow.request.headers))
    flow.response.content = b""
    injector.response(flow)  # no client connection to find, and none needed
    assert flow.response.status_code == 204
    assert flow.metadata[flows.FAULT] == "slow-body"


# --- the documented examples --------------------------------------------------------------

FAULTS_PAGE = Path(__file__).parent.parent / "docs" / "faults.md"
SHAPE_SPEC = re.compile(r"`((?:ratelimit|latency|hang|slow-body):[^`\s]+)`")


def test_every_yaml_example_and_shape_spec_on_the_faults_page_parses():
    text = FAULTS_PAGE.read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    # examples, not forms: `hang:max=SECONDS` names its placeholder in capitals
    specs = [
        spec for spec in SHAPE_SPEC.findall(text) if not re.search(r"[A-Z]{1,}\b|\.\.\.", spec)
    ]
    rules = [rule for block in blocks for rule in parse_rules_text(block, "faults.md")]
    specs += re.findall(r"--fault '([^']+)'", text)
    rules += [parse_spec(spec) for spec in specs]
    kinds = {str(rule.kind) for rule in rules}
    assert {"ratelimit", "latency", "hang", "slow-body"} <= kinds
    assert len(specs) >= 5


README = Path(__file__).parent.parent / "README.md"


def test_every_fault_spec_the_readme_lists_parses_and_every_kind_is_there():
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- not-run: fault specs, each given as --fault SPEC -->", 1)[1]
    block = block.split("```text\n", 1)[1].split("```", 1)[0]
    specs = [spec for line in block.splitlines() for spec in line.split("#")[0].split()]
    kinds = {str(parse_spec(spec).kind) for spec in specs}
    assert kinds == {str(kind) for kind in Kind}
