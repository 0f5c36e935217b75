"""Rate limits, hangs and slow bodies through a real proxy and real HTTPS clients."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from pathlib import Path

import httpx
import pytest
import requests
from helpers import WORK_TENANT, jwt, recorder_over_emulator
from msgraph_core import GraphClientFactory

from proxy_addons.addons import control_rules
from proxy_addons.cassette import cassette, examples

pytestmark = pytest.mark.e2e

ME = examples.ME_URL
CONTROL = f"http://{control_rules.HOST}{control_rules.PATH}"
APP_A = "11111111-0000-4000-8000-00000000000a"
APP_B = "11111111-0000-4000-8000-00000000000b"


def bearer(app: str) -> dict[str, str]:
    token = jwt(appid=app, tid=WORK_TENANT, scp="OnlineMeetings.ReadWrite")
    return {**examples.REQUEST_HEADERS, "Authorization": f"Bearer {token}"}


def create(client: httpx.Client, headers: dict[str, str] | None = None) -> httpx.Response:
    return client.put(ME, content=examples.REQUEST_BODY, headers=headers or bearer(APP_A))


def rules(client: httpx.Client) -> list[dict]:
    return client.get(CONTROL).json()["faults"]


@pytest.fixture
def replay_proxy(start_proxy, client_for):
    proxy = start_proxy("replay", "--allow-playback-repeats")  # one create, answered each time
    return proxy, client_for(proxy)


# --- ratelimit ----------------------------------------------------------------------------


def test_ratelimit_spends_a_budget_per_app_and_tenant_with_headers_on_every_answer(
    replay_proxy,
):
    _, client = replay_proxy
    assert client.put(CONTROL, json=["ratelimit:limit=5,window=60,cost=create:2"]).is_success
    answers = [create(client) for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["3", "1", "1"]
    assert {a.headers["RateLimit-Limit"] for a in answers} == {"5"}
    refused = answers[2]
    assert refused.json()["error"]["code"] == "TooManyRequests"
    assert 59 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["Retry-After"] == refused.headers["RateLimit-Reset"]
    # another app in the same tenant has a budget of its own
    other = create(client, bearer(APP_B))
    assert (other.status_code, other.headers["RateLimit-Remaining"]) == (201, "3")


def test_ratelimit_counts_per_client_address_when_the_token_is_not_a_jwt(replay_proxy):
    _, client = replay_proxy
    opaque = {**examples.REQUEST_HEADERS, "Authorization": "Bearer not-a-jwt"}
    assert client.put(CONTROL, json=["ratelimit:limit=1,window=30"]).is_success
    assert create(client, opaque).status_code == 201
    assert create(client, {**opaque, "Authorization": "Bearer other-opaque"}).status_code == 429


def test_the_window_turns_after_retry_after_and_the_budget_is_whole_again(replay_proxy):
    _, client = replay_proxy
    assert client.put(CONTROL, json=["ratelimit:limit=1,window=1"]).is_success
    assert create(client).status_code == 201
    refused = create(client)
    assert refused.status_code == 429
    time.sleep(float(refused.headers["Retry-After"]))
    again = create(client)
    assert (again.status_code, again.headers["RateLimit-Remaining"]) == (201, "0")


async def create_twice_with_retry_handler(proxy_url: str, ca: Path) -> list[httpx.Response]:
    """Two creates through msgraph-core's default pipeline, whose RetryHandler honours
    Retry-After on a 429 (inside the pipeline: the caller sees only the final answers)."""
    verify = ssl.create_default_context(cafile=str(ca))
    base = httpx.AsyncClient(proxy=proxy_url, verify=verify, timeout=30)
    client = GraphClientFactory.create_with_default_middleware(client=base)
    async with client:
        return [
            await client.put(
                ME,
                content=examples.REQUEST_BODY,
                headers=bearer(APP_A),
                extensions={"kiota_request_options": {}},  # what Kiota's request adapter adds
            )
            for _ in range(2)
        ]


def test_msgraph_core_retry_handler_waits_out_the_window_and_succeeds(start_proxy, tmp_path):
    summary = tmp_path / "summary.json"
    proxy = start_proxy(
        "replay",
        "--allow-playback-repeats",
        "--fault",
        "ratelimit:limit=1,window=2",
        "--summary-json",
        str(summary),
    )
    started = time.monotonic()
    first, second = asyncio.run(create_twice_with_retry_handler(proxy.url, proxy.ca))
    waited = time.monotonic() - started
    assert proxy.stop() == 0
    assert (first.status_code, second.status_code) == (201, 201)
    assert "Retry-Attempt" not in first.request.headers
    assert second.request.headers["Retry-Attempt"] == "1"  # the 429 came between
    # It waited Retry-After (the window's 2 s less the first call's time, rounded up: 2), not
    # its own backoff (3 s and more without the header).
    assert 1.9 <= waited < 3.4
    assert second.headers["RateLimit-Remaining"] == "0"  # a new window, its one unit spent
    counts = json.loads(summary.read_text())
    assert (counts["requests"], counts["faults"]) == (3, {"ratelimit": 1})


def test_record_mode_answers_carry_the_headers_and_the_cassette_keeps_none(
    start_proxy, client_for, tmp_path
):
    recorded = tmp_path / "recorded.yaml"
    proxy = recorder_over_emulator(
        start_proxy,
        recorded,
        "--fault",
        "ratelimit:limit=10,cost=create:4",
    )
    client = client_for(proxy)
    answers = [create(client), client.get(ME, headers=bearer(APP_A))]
    assert [(a.status_code, a.headers["RateLimit-Remaining"]) for a in answers] == [
        (201, "6"),
        (200, "5"),
    ]
    assert proxy.stop() == 0
    stored = [i.response["headers"] for i in cassette.load(recorded)]
    assert len(stored) == 2
    assert not [name for headers in stored for name in headers if name.startswith("RateLimit")]


def test_each_request_inside_a_batch_spends_the_budget_and_gets_its_own_429(
    start_proxy, client_for
):
    client = client_for(start_proxy("simulate", "--fault", "ratelimit:limit=1,window=60"))
    join = "/me/onlineMeetings/abc/getVirtualAppointmentJoinWebUrl()"
    batch = {"requests": [{"id": n, "method": "GET", "url": join} for n in ("1", "2")]}
    answer = client.post(
        "https://graph.microsoft.com/beta/$batch", json=batch, headers=bearer(APP_A)
    )
    by_id = {a["id"]: a for a in answer.json()["responses"]}
    assert (by_id["1"]["status"], by_id["2"]["status"]) == (200, 429)
    assert by_id["2"]["body"]["error"]["code"] == "TooManyRequests"
    assert by_id["2"]["headers"]["Retry-After"] == by_id["2"]["headers"]["RateLimit-Reset"]
    assert by_id["1"]["headers"]["RateLimit-Remaining"] == "0"


# --- hang ---------------------------------------------------------------------------------


def test_hang_holds_until_the_client_times_out_and_then_frees_the_flow(replay_proxy):
    proxy, client = replay_proxy
    assert client.put(CONTROL, json=["hang:max=30,times=1"]).is_success
    verify = ssl.create_default_context(cafile=str(proxy.ca))
    started = time.monotonic()
    with (
        httpx.Client(proxy=proxy.url, verify=verify, timeout=1) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        create(impatient)  # type: ignore[arg-type]
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 10
    while rules(client)[0]["held"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rules(client)[0] | {"spec": None} == {
        "spec": None,
        "kind": "hang",
        "matched": 1,
        "injected": 1,
        "held": 0,  # the proxy let the flow go when the client did
    }
    assert create(client).status_code == 201  # times=1: the next one is answered


def test_many_hung_requests_are_all_let_go_when_their_clients_time_out(replay_proxy):
    proxy, client = replay_proxy
    assert client.put(CONTROL, json=["hang:max=60"]).is_success

    async def impatient_clients(count: int) -> list[BaseException | httpx.Response]:
        verify = ssl.create_default_context(cafile=str(proxy.ca))
        async with httpx.AsyncClient(proxy=proxy.url, verify=verify, timeout=1) as each:
            calls = (
                each.put(ME, content=examples.REQUEST_BODY, headers=bearer(APP_A))
                for _ in range(count)
            )
            return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(impatient_clients(20))
    assert {type(outcome) for outcome in outcomes} == {httpx.ReadTimeout}
    deadline = time.monotonic() + 15
    while rules(client)[0]["held"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (rules(client)[0]["injected"], rules(client)[0]["held"]) == (20, 0)


def test_hang_closes_the_connection_itself_at_max(replay_proxy):
    _, client = replay_proxy
    assert client.put(CONTROL, json=["hang:max=1"]).is_success
    started = time.monotonic()
    with pytest.raises(httpx.RemoteProtocolError):
        create(client)  # no client timeout below 30 s: the proxy's max ends it
    assert 0.9 <= time.monotonic() - started < 10
    assert rules(client)[0]["held"] == 0


# --- slow-body ----------------------------------------------------------------------------


def test_slow_body_sends_headers_at_once_and_the_body_over_the_period(replay_proxy):
    _, client = replay_proxy
    assert client.put(CONTROL, json=["slow-body:ms=1500,chunks=5"]).is_success
    started = time.monotonic()
    with client.stream("PUT", ME, content=examples.REQUEST_BODY, headers=bearer(APP_A)) as slow:
        headers_after = time.monotonic() - started
        body = slow.read()
    body_after = time.monotonic() - started
    assert slow.status_code == 201
    assert json.loads(body) == json.loads(examples.RESPONSE_BODY)
    assert headers_after < 1.0
    assert body_after - headers_after >= 1.2
    # the connection goes on serving, in order, once the body is through
    assert create(client).status_code == 201


def test_over_plain_http_the_body_arrives_piece_by_piece(start_proxy):
    served = start_proxy("simulate", "--reverse", "--fault", "slow-body:ms=1200,chunks=4")
    path = ME.removeprefix("https://graph.microsoft.com")
    arrivals: list[tuple[float, int]] = []
    with httpx.Client(base_url=served.url, timeout=30) as plain:
        started = time.monotonic()
        request = plain.build_request(
            "PUT", path, content=examples.REQUEST_BODY, headers=bearer(APP_A)
        )
        answer = plain.send(request, stream=True)
        try:
            arrivals.extend((time.monotonic() - started, len(c)) for c in answer.iter_raw())
        finally:
            answer.close()
    assert answer.status_code == 201
    assert len(arrivals) == 4  # each piece read as it came
    assert arrivals[-1][0] - arrivals[0][0] >= 0.8  # three gaps of 0.3 s between them


def test_slow_body_paces_an_upstream_answer_in_record_mode(start_proxy, client_for, tmp_path):
    recorded = tmp_path / "recorded.yaml"
    proxy = recorder_over_emulator(
        start_proxy,
        recorded,
        "--fault",
        "slow-body:ms=1000,chunks=2",
    )
    client = client_for(proxy)
    started = time.monotonic()
    with client.stream("PUT", ME, content=examples.REQUEST_BODY, headers=bearer(APP_A)) as slow:
        headers_after = time.monotonic() - started
        body = slow.read()
    assert slow.status_code == 201
    assert time.monotonic() - started - headers_after >= 0.8
    assert proxy.stop() == 0
    (stored,) = cassette.load(recorded)
    recorded_body = json.loads(stored.response["body"]["string"])
    assert recorded_body == json.loads(body)  # recorded whole, as it came


def test_slow_body_on_a_request_inside_a_batch_paces_the_batchs_answer(start_proxy, client_for):
    client = client_for(start_proxy("simulate", "--fault", "slow-body:ms=1200,chunks=3"))
    join = "/me/onlineMeetings/abc/getVirtualAppointmentJoinWebUrl()"
    batch = {"requests": [{"id": "1", "method": "GET", "url": join}]}
    started = time.monotonic()
    with client.stream(
        "POST", "https://graph.microsoft.com/beta/$batch", json=batch, headers=bearer(APP_A)
    ) as slow:
        headers_after = time.monotonic() - started
        answers = json.loads(slow.read())["responses"]
    assert [(a["id"], a["status"]) for a in answers] == [("1", 200)]
    assert time.monotonic() - started - headers_after >= 1.0


def test_a_read_timeout_shorter_than_the_dribble_trips_the_client(replay_proxy):
    proxy, client = replay_proxy
    assert client.put(CONTROL, json=["slow-body:ms=3000,chunks=3"]).is_success
    verify = ssl.create_default_context(cafile=str(proxy.ca))
    with (
        httpx.Client(proxy=proxy.url, verify=verify, timeout=httpx.Timeout(5, read=0.5)) as c,
        pytest.raises(httpx.ReadTimeout),
    ):
        create(c)  # type: ignore[arg-type]


# --- the same specs from a faults file and in simulate ------------------------------------


def test_faults_file_shapes_apply_in_simulate(start_proxy, client_for, tmp_path):
    faults = tmp_path / "faults.yaml"
    faults.write_text(
        "- {kind: latency, dist: lognormal, median: 50, p99: 200}\n"
        "- kind: ratelimit\n  limit: 3\n  cost: {create: 2}\n"
    )
    proxy = start_proxy("simulate", "--faults", str(faults), "--seed", "3")
    client = client_for(proxy)
    first, second = create(client), create(client)
    assert (first.status_code, first.headers["RateLimit-Remaining"]) == (201, "1")
    assert second.status_code == 429
    read = client.get(ME, headers=bearer(APP_A))
    assert (read.status_code, read.headers["RateLimit-Remaining"]) == (200, "0")


# --- the same specs from the pytest plugin's marker ---------------------------------------


@pytest.fixture(scope="module")
def graph_vcr_cassette_dir() -> Path:
    """The marker tests' cassettes are the bundled ones (the plugin's own override point)."""
    return cassette.bundled_cassettes()


def create_from_environment(timeout: float = 30) -> requests.Response:
    """A create with requests, which finds the plugin's proxy and CA in the environment."""
    return requests.put(ME, data=examples.REQUEST_BODY, headers=bearer(APP_A), timeout=timeout)


@pytest.mark.graph_vcr(
    cassette="create-virtualappointment-me.yaml",
    faults=["latency:dist=normal,mean=20,stddev=5", "ratelimit:limit=1,window=60"],
    allow_playback_repeats=True,
)
def test_the_marker_takes_a_ratelimit_and_a_latency_distribution(graph_vcr_env, graph_vcr_proxy):
    first, second = create_from_environment(), create_from_environment()
    assert (first.status_code, first.headers["RateLimit-Remaining"]) == (201, "0")
    assert (second.status_code, second.headers["RateLimit-Limit"]) == (429, "1")
    assert [c.fault for c in graph_vcr_proxy.calls] == ["latency", "ratelimit"]


@pytest.mark.graph_vcr(
    cassette="create-virtualappointment-me.yaml",
    faults=["hang:max=30,nth=1", "slow-body:ms=1000,nth=1"],
    allow_playback_repeats=True,
)
def test_the_marker_takes_hang_and_slow_body(graph_vcr_env, graph_vcr_proxy):
    with pytest.raises(requests.exceptions.ReadTimeout):
        create_from_environment(timeout=0.5)
    started = time.monotonic()
    slowed = create_from_environment()  # the slow-body rule's first match
    assert slowed.status_code == 201
    assert time.monotonic() - started >= 0.9
    assert [c.fault for c in graph_vcr_proxy.calls] == ["hang", "slow-body"]
