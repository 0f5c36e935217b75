"""Faults through a real proxy (``graph-vcr-proxy replay``) and real HTTPS clients."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from helpers import assert_one_line_error, jwt, recorder_over_emulator, run_cli
from msgraph_core import GraphClientFactory
from vcr.request import Request

from proxy_addons.addons import control_rules
from proxy_addons.cassette import cassette, examples
from proxy_addons.graph.faults import ERROR_DEFAULTS, Kind
from proxy_addons.graph.replies import format_seconds

pytestmark = pytest.mark.e2e

ME = examples.ME_URL
HEADERS = {**examples.REQUEST_HEADERS, "Authorization": "Bearer test-token"}
CONTROL = f"http://{control_rules.HOST}{control_rules.PATH}"


def create(client: httpx.Client) -> httpx.Response:
    return client.put(ME, content=examples.REQUEST_BODY, headers=HEADERS)


def set_faults(client: httpx.Client, *specs: str) -> None:
    response = client.put(CONTROL, json=list(specs))
    assert response.status_code == 200, response.text


def read_summary(path: Path) -> dict:
    return json.loads(path.read_text())


# --- a client nobody here wrote -----------------------------------------------------------


async def create_with_msgraph_core(proxy_url: str, ca: Path) -> httpx.Response:
    verify = ssl.create_default_context(cafile=str(ca))
    base = httpx.AsyncClient(proxy=proxy_url, verify=verify, timeout=30)
    client = GraphClientFactory.create_with_default_middleware(client=base)
    async with client:
        return await client.put(
            ME,
            content=examples.REQUEST_BODY,
            headers=HEADERS,
            extensions={"kiota_request_options": {}},  # what Kiota's request adapter adds
        )


def test_msgraph_core_retry_handler_recovers_from_an_injected_429(start_proxy, tmp_path):
    summary = tmp_path / "summary.json"
    proxy = start_proxy(
        "replay", "--fault", "throttle:times=1,retry-after=1", "--summary-json", str(summary)
    )
    started = time.monotonic()
    response = asyncio.run(create_with_msgraph_core(proxy.url, proxy.ca))
    waited = time.monotonic() - started
    assert proxy.stop() == 0
    assert response.status_code == 201
    assert response.json() == json.loads(examples.RESPONSE_BODY)
    assert response.request.headers.get("Retry-Attempt") == "1"
    assert waited >= 0.9  # it honoured Retry-After: 1
    counts = read_summary(summary)
    assert counts["requests"] == 2
    assert counts["faults"] == {"throttle": 1}
    assert counts["answered_by"]["replay"] == 1


# --- ETag knowledge through replay --------------------------------------------------------


def etag_cassette(tmp_path: Path) -> Path:
    """A GET that answers with an ETag, and an update that answers 204."""
    get = (
        Request("GET", ME, None, {}),
        {
            "status": {"code": 200, "message": "OK"},
            "headers": {"Content-Type": ["application/json"], "ETag": ['W/"current"']},
            "body": {"string": examples.RESPONSE_BODY},
        },
    )
    update = (
        Request("PATCH", ME, '{"externalAppointmentId": "new"}', {}),
        {"status": {"code": 204, "message": "No Content"}, "headers": {}, "body": {"string": ""}},
    )
    path = tmp_path / "etag.yaml"
    path.write_text(cassette.cassette_text([get, update]), encoding="utf-8")
    return path


def test_stale_etag_is_stopped_and_a_fresh_one_goes_through(start_proxy, client_for, tmp_path):
    proxy = start_proxy(
        "replay",
        "--cassette",
        str(etag_cassette(tmp_path)),
        "--fault",
        "etag-mismatch:when=stale",
        "--allow-playback-repeats",  # the one recorded update answers every PATCH
    )
    client = client_for(proxy)

    def update(if_match: str) -> httpx.Response:
        headers = {"Content-Type": "application/json", "If-Match": if_match}
        return client.patch(ME, content='{"externalAppointmentId": "new"}', headers=headers)

    assert update('W/"never-seen"').status_code == 204  # no ETag known yet: let through
    assert client.get(ME).headers["ETag"] == 'W/"current"'
    assert update('W/"current"').status_code == 204
    stale = update('W/"old"')
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "ErrorIrresolvableConflict"


# --- every kind, switched on at runtime through the control endpoint ----------------------


@pytest.fixture
def replay_proxy(start_proxy, client_for):
    proxy = start_proxy("replay", "--allow-playback-repeats")  # one create, answered each time
    return proxy, client_for(proxy)


def test_each_error_kind_reaches_the_client_with_graphs_status_and_code(replay_proxy):
    _, client = replay_proxy
    app_only = {**HEADERS, "Authorization": "Bearer " + jwt(roles=["OnlineMeetings.ReadWrite.All"])}
    for kind, default in ERROR_DEFAULTS.items():
        set_faults(client, f"{kind}:times=1")
        # permissions fires only for a token Graph would refuse
        headers = app_only if kind is Kind.PERMISSIONS else HEADERS
        response = client.put(ME, content=examples.REQUEST_BODY, headers=headers)
        assert response.status_code == default.status, kind
        assert response.json()["error"]["code"] == default.code, kind
        retry_after = response.headers.get("Retry-After")
        expected = None if default.retry_after is None else format_seconds(default.retry_after)
        assert retry_after == expected, kind
        assert create(client).status_code == 201, f"{kind} fired more than times=1"


def test_code_message_and_fractional_retry_after_reach_the_client(replay_proxy):
    _, client = replay_proxy
    set_faults(client, "throttle:retry-after=2.128,code=ActivityLimitReached,message=Slow down")
    response = create(client)
    assert response.headers["Retry-After"] == "2.128"
    assert response.json()["error"] | {"innerError": None} == {
        "code": "ActivityLimitReached",
        "message": "Slow down",
        "innerError": None,
    }


def test_reset_closes_the_connection_without_a_response(replay_proxy):
    _, client = replay_proxy
    set_faults(client, "reset:times=1")
    with pytest.raises(httpx.RemoteProtocolError):
        create(client)
    assert create(client).status_code == 201


def test_malformed_and_empty_spoil_the_replayed_201(replay_proxy):
    _, client = replay_proxy
    set_faults(client, "malformed:times=1")
    broken = create(client)
    assert broken.status_code == 201
    assert examples.RESPONSE_BODY.encode().startswith(broken.content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.content)
    set_faults(client, "empty:times=1")
    empty = create(client)
    assert (empty.status_code, empty.content) == (201, b"")
    assert empty.headers["Content-Type"] == "application/json"


def test_latency_holds_one_request_without_holding_the_others(replay_proxy):
    proxy, client = replay_proxy
    set_faults(client, "latency:ms=1500,nth=1")
    finished: list[str] = []

    def slow() -> None:
        create(client)
        finished.append("slow")

    started = time.monotonic()
    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.3)
    verify = ssl.create_default_context(cafile=str(proxy.ca))
    with httpx.Client(proxy=proxy.url, verify=verify, timeout=30) as other:
        assert create(other).status_code == 201
    finished.append("fast")
    thread.join(30)
    assert finished == ["fast", "slow"]
    assert time.monotonic() - started >= 1.4


def test_control_endpoint_lists_and_clears_rules(replay_proxy):
    _, client = replay_proxy
    assert client.post(CONTROL, json=["forbidden"]).status_code == 200
    assert create(client).status_code == 403
    listed = client.get(CONTROL).json()["faults"]
    assert listed == [{"spec": "forbidden", "kind": "forbidden", "matched": 1, "injected": 1}]
    assert client.delete(CONTROL).json() == {"faults": []}
    assert create(client).status_code == 201


FAULTS_PAGE = Path(__file__).parent.parent / "docs" / "faults.md"


def documented_control_lines() -> list[str]:
    """The curl lines of the docs' control endpoint example, as a user copies them."""
    text = FAULTS_PAGE.read_text(encoding="utf-8")
    block = text.split("P=http://127.0.0.1:8080\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_the_docs_control_endpoint_curl_lines_work(replay_proxy):
    proxy, _ = replay_proxy
    lines = documented_control_lines()
    answers = []
    for line in lines:
        done = subprocess.run(
            ["sh", "-c", f"curl -sS {line.removeprefix('curl ')}"],
            env={**os.environ, "P": proxy.url},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        answers.append([rule["spec"] for rule in json.loads(done.stdout)["faults"]])
    assert answers == [
        [],
        ["throttle:times=1,retry-after=1"],
        ["reset:nth=2", "latency:ms=500"],
        [],
    ]


# --- reproducibility and refusals ---------------------------------------------------------


def test_a_seed_makes_random_faults_repeat_run_after_run(start_proxy, client_for):
    def run() -> list[int]:
        proxy = start_proxy(
            "replay", "--seed", "42", "--fault", "unavailable:rate=0.5", "--allow-playback-repeats"
        )
        client = client_for(proxy)
        codes = [create(client).status_code for _ in range(16)]
        proxy.stop()
        return codes

    first, second = run(), run()
    assert first == second
    assert {201, 503} == set(first)


def test_a_bad_spec_exits_2_with_one_line_naming_the_key(confdir):
    result = run_cli("replay", "--fault", "throttle:tims=1", confdir=confdir)
    message = (
        "graph-vcr-proxy: fault 'throttle:tims=1': unknown key 'tims' for throttle; allowed: "
        "code, enforce, message, method, nth, rate, retry-after, route, times"
    )
    assert assert_one_line_error(result, message) == message


def test_a_bad_faults_file_exits_2_naming_file_and_line(confdir, tmp_path):
    path = tmp_path / "faults.yaml"
    path.write_text("- reset:nth=2\n- kind: throttle\n  tims: 1\n")
    result = run_cli("replay", "--faults", str(path), confdir=confdir)
    assert_one_line_error(result, f"graph-vcr-proxy: {path}:2: unknown key 'tims' for throttle")


# --- the same faults in the other modes ---------------------------------------------------


def test_faults_apply_in_simulate_mode_and_learn_the_emulators_etags(
    start_proxy, client_for, tmp_path
):
    summary = tmp_path / "summary.json"
    proxy = start_proxy(
        "simulate",
        "--fault",
        "throttle:times=1,route=create",
        "--fault",
        "etag-mismatch:when=stale,message=stopped by the proxy",
        "--summary-json",
        str(summary),
    )
    client = client_for(proxy)
    assert create(client).status_code == 429
    etag = create(client).headers["ETag"]

    def update(if_match: str, value: str) -> httpx.Response:
        body = json.dumps({"externalAppointmentId": value})
        return client.patch(ME, content=body, headers={**HEADERS, "If-Match": if_match})

    updated = update(etag, "first")
    assert updated.status_code == 204
    stale = update(etag, "second")  # the emulator's 204 taught the proxy a newer ETag
    assert stale.status_code == 412
    assert stale.json()["error"]["message"] == "stopped by the proxy"
    assert update(updated.headers["ETag"], "second").status_code == 204
    assert proxy.stop() == 0
    counts = read_summary(summary)
    assert counts["faults"] == {"etag-mismatch": 1, "throttle": 1}
    assert counts["answered_by"]["emulator"] == 3


def test_faults_apply_in_record_mode_and_are_never_recorded(start_proxy, client_for, tmp_path):
    recorded, summary = tmp_path / "recorded.yaml", tmp_path / "summary.json"
    proxy = recorder_over_emulator(
        start_proxy,
        recorded,
        "--fault",
        "throttle:times=1",
        "--summary-json",
        str(summary),
    )
    client = client_for(proxy)
    assert [create(client).status_code for _ in range(2)] == [429, 201]
    assert proxy.stop() == 0
    statuses = [i.response["status"]["code"] for i in cassette.load(recorded)]
    assert statuses == [201]
    counts = read_summary(summary)
    assert (counts["recorded"], counts["faults"]) == (1, {"throttle": 1})
    assert counts["answered_by"]["upstream"] == 1


# If-Match forms as functions of the current tag W/"o", and what Graph's rule says of them.
IF_MATCH_FORMS = {
    "o": 412,  # not an entity-tag
    '"x", *': 412,  # * only alone
    'w/"o"': 412,  # the weak prefix is W/
    'W/"o"': 204,
    '"o"': 204,  # weak comparison
    '"x", W/"o"': 204,
    "*": 204,
}


def test_simulate_and_the_stale_etag_fault_refuse_the_same_if_match_forms(start_proxy, client_for):
    """One ETag rule: a simulate whose stale-ETag fault answers first (with its own code) and
    a plain simulate refuse exactly the same If-Match headers."""
    plain = client_for(start_proxy("simulate"))
    faulted = client_for(
        start_proxy("simulate", "--fault", "etag-mismatch:when=stale,code=FaultSaysStale")
    )
    for client, refused_by in ((plain, "ErrorIrresolvableConflict"), (faulted, "FaultSaysStale")):
        for form, status in IF_MATCH_FORMS.items():
            current = create(client).headers["ETag"]  # each form meets a fresh tag
            opaque = current.removeprefix('W/"').removesuffix('"')
            header = form.replace('"o"', f'"{opaque}"') if form != "o" else opaque
            answer = client.patch(ME, content="{}", headers={**HEADERS, "If-Match": header})
            assert answer.status_code == status, (form, answer.text)
            if status == 412:
                assert answer.json()["error"]["code"] == refused_by
