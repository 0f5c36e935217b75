"""JSON batching as Microsoft's SDK sends it, through a real proxy, in every mode.

msgraph-sdk's ``client.batch`` posts a ``BatchRequestContent`` of msgraph-core's
``BatchRequestItem`` s (the retired create and get as plain request informations, the join URL
and the SMS from the SDK's own request builders, a ``dependsOn`` chain) to ``/beta/$batch``:
simulate answers each in turn (ETag/If-Match hold inside a batch), replay serves them from a
cassette recorded without batching, a throttle fault hits one request inside a 200 batch, and
record sends the batch to a local Graph stand-in that implements batching and stores each of
our requests as an interaction of its own, which replay then serves unbatched.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import httpx_client
from helpers import WORK_TENANT, graph_sdk, jwt, serving
from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation
from msgraph.generated.users.item.online_meetings.item.send_virtual_appointment_sms.send_virtual_appointment_sms_post_request_body import (  # noqa: E501
    SendVirtualAppointmentSmsPostRequestBody,
)
from msgraph_core.requests.batch_request_content import BatchRequestContent
from msgraph_core.requests.batch_request_item import BatchRequestItem

from proxy_addons.cassette import cassette, examples
from proxy_addons.cli.launcher import RunningProxy

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:msgraph"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:msgraph_core"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:kiota_abstractions"),
]

BETA = examples.GRAPH_BETA
TOKEN = jwt(tid=WORK_TENANT, scp="OnlineMeetings.ReadWrite VirtualAppointmentNotification.Send")
BUNDLED_ME = cassette.bundled_cassettes() / "create-virtualappointment-me.yaml"
Sent = list[tuple[str, int, dict[str, Any], Any]]  # (id, status, headers, JSON body or None)


def plain(method: Method, url: str, body: str | None = None, **headers: str) -> RequestInformation:
    """A request information for a URL, as code without a typed builder makes one (the
    retired create and get are in no v1.0 builder)."""
    info = RequestInformation(method, url)
    for name, value in headers.items():
        info.headers.try_add(name.replace("_", "-"), value)
    if body is not None:
        info.headers.try_add("Content-Type", "application/json")
        info.content = body.encode()
    return info


def create_item(rid: str = "create", body: str = examples.REQUEST_BODY) -> BatchRequestItem:
    return BatchRequestItem(plain(Method.PUT, examples.ME_URL, body), id=rid)


def get_item(rid: str = "get", after: list[Any] | None = None) -> BatchRequestItem:
    return BatchRequestItem(plain(Method.GET, examples.ME_URL), id=rid, depends_on=after)


def sdk_items(client: Any) -> tuple[BatchRequestItem, BatchRequestItem]:
    """The join URL and an SMS, from the SDK's own request builders."""
    meeting = client.me.online_meetings.by_online_meeting_id(examples.MEETING_ID)
    join = meeting.get_virtual_appointment_join_web_url.to_get_request_information()
    sms_body = SendVirtualAppointmentSmsPostRequestBody()
    sms_body.additional_data = {
        "attendees": [{"phoneNumber": "+15555550100"}],
        "messageType": "confirmation",
    }
    sms = meeting.send_virtual_appointment_sms.to_post_request_information(sms_body)
    return BatchRequestItem(join, id="join"), BatchRequestItem(sms, id="sms")


async def post_batch(proxy: RunningProxy, *items: Any, base: str = BETA) -> Sent:
    """Send one batch with msgraph-sdk's ``client.batch``; each answer's status and headers
    as the SDK reads them, its body from the batch answer on the wire (msgraph-core's
    ``BatchResponseItem`` keeps only a base64 body, not Graph's JSON one)."""
    wire: list[dict[str, Any]] = []

    async def keep(response: httpx.Response) -> None:
        if response.request.url.path.endswith("/$batch"):
            await response.aread()
            wire.append(response.json())

    async with graph_sdk(proxy, base, TOKEN) as client:
        client.request_adapter._http_client.event_hooks["response"].append(keep)
        built = [item(client) if callable(item) else [item] for item in items]
        content = BatchRequestContent({})
        for group in built:
            for item in group:
                content.add_request(item.id, item)
        answer = await client.batch.post(content)
    bodies = {r["id"]: r.get("body") for r in wire[-1]["responses"]}
    return [
        (rid, item.status, dict(item.headers or {}), bodies[rid])
        for rid, item in (answer.responses or {}).items()
    ]


def by_id(sent: Sent) -> dict[str, tuple[int, dict[str, Any], Any]]:
    return {rid: (status, headers, body) for rid, status, headers, body in sent}


# --- simulate -------------------------------------------------------------------------------


def test_simulate_answers_the_sdks_batch_in_turn_with_a_dependson_chain(start_proxy):
    proxy = start_proxy("simulate")

    def with_builders(client: Any) -> list[BatchRequestItem]:
        join, sms = sdk_items(client)
        join.set_depends_on(["create"])
        sms.set_depends_on(["join"])
        return [join, sms]

    create = create_item()
    answers = by_id(asyncio.run(post_batch(proxy, create, get_item(after=[create]), with_builders)))
    assert {rid: a[0] for rid, a in answers.items()} == {
        "create": 201,
        "get": 200,
        "join": 200,
        "sms": 202,
    }
    assert answers["get"][2]["id"] == answers["create"][2]["id"]
    assert answers["join"][2]["value"].startswith("https://")


def test_etag_and_if_match_hold_inside_a_batch_in_simulate(start_proxy):
    proxy = start_proxy("simulate")
    created = by_id(asyncio.run(post_batch(proxy, create_item())))
    etag = created["create"][1]["ETag"]
    patch = '{"externalAppointmentId": "mine"}'
    stale = BatchRequestItem(
        plain(Method.PATCH, examples.ME_URL, patch, If_Match='W/"not-the-current-one"'), id="stale"
    )
    fresh = BatchRequestItem(plain(Method.PATCH, examples.ME_URL, patch, If_Match=etag), id="fresh")
    answers = by_id(asyncio.run(post_batch(proxy, stale, fresh)))
    assert answers["stale"][0] == 412
    assert answers["stale"][2]["error"]["code"] == "ErrorIrresolvableConflict"
    assert 200 <= answers["fresh"][0] < 300


def test_a_throttle_on_create_answers_it_429_inside_a_200_batch_and_its_dependant_424(
    start_proxy,
):
    proxy = start_proxy("simulate", "--fault", "throttle:route=create,retry-after=7")
    create = create_item()

    def join_alone(client: Any) -> list[BatchRequestItem]:
        return [sdk_items(client)[0]]

    answers = by_id(asyncio.run(post_batch(proxy, create, get_item(after=[create]), join_alone)))
    assert answers["create"][0] == 429 and answers["create"][1]["Retry-After"] == "7"
    assert answers["create"][2]["error"]["code"] == "TooManyRequests"
    assert answers["get"][0] == 424
    assert answers["join"][0] == 200  # depends on nothing: answered as if sent alone


def test_a_fault_on_route_batch_fails_the_whole_call(start_proxy, client_for):
    proxy = start_proxy("simulate", "--fault", "unavailable:route=batch,times=1")
    body = {
        "requests": [{"id": "1", "method": "GET", "url": "/me/onlineMeetings/m/virtualAppointment"}]
    }
    client = client_for(proxy)
    first = client.post(f"{BETA}/$batch", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    again = client.post(f"{BETA}/$batch", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert first.status_code == 503 and first.json()["error"]["code"] == "serviceNotAvailable"
    assert again.status_code == 200 and again.json()["responses"][0]["status"] == 404


@pytest.mark.parametrize(
    ("requests", "said"),
    [
        (
            [
                {"id": str(i), "method": "GET", "url": "/me/onlineMeetings/m/virtualAppointment"}
                for i in range(21)
            ],
            "at most 20",
        ),
        (
            [
                {"id": "A", "method": "GET", "url": "/me/onlineMeetings/m/virtualAppointment"},
                {"id": "a", "method": "GET", "url": "/me"},
            ],
            "has to be unique",
        ),
        (
            [
                {
                    "id": "1",
                    "method": "PUT",
                    "url": "/me/onlineMeetings/m/virtualAppointment",
                    "body": {},
                }
            ],
            "Content-Type",
        ),
        (
            [
                {
                    "id": "1",
                    "method": "GET",
                    "url": "/me/onlineMeetings/m/virtualAppointment",
                    "dependsOn": ["2"],
                },
                {"id": "2", "method": "GET", "url": "/me", "dependsOn": ["1"]},
            ],
            "cycle",
        ),
    ],
    ids=["21-requests", "duplicate-ids", "body-without-content-type", "dependson-cycle"],
)
def test_a_malformed_batch_is_graphs_400_whole(start_proxy, client_for, requests, said):
    proxy = start_proxy("simulate")
    answer = client_for(proxy).post(f"{BETA}/$batch", json={"requests": requests})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "BadRequest" and said in error["message"]


# --- replay of an unbatched recording ---------------------------------------------------------


def test_replay_serves_a_batched_create_from_the_unbatched_bundled_cassette(start_proxy):
    proxy = start_proxy("replay", "--cassette", str(BUNDLED_ME))
    answers = by_id(asyncio.run(post_batch(proxy, create_item())))
    status, headers, body = answers["create"]
    assert status == 201 and body == json.loads(examples.RESPONSE_BODY)
    assert headers["Content-Type"].startswith("application/json")


# --- record against a local upstream that implements batching --------------------------------


@contextmanager
def batching_graph(
    whole: int | None = None, drop: str = ""
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A plain-HTTP Graph stand-in on 127.0.0.1 that implements ``$batch``: a PUT is the
    documented 201, a GET 200 with the same object, anything else 404; each batch it was sent
    is kept (decoded); with ``whole``, every batch is answered that status as a whole (a
    throttled batch); the request ``drop`` names gets no answer. Yields its base URL and that
    list."""
    batches: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Encoding") == "gzip":
                raw = gzip.decompress(raw)
            sent = json.loads(raw)
            batches.append(sent)
            if whole is not None:
                error = json.dumps({"error": {"code": "TooManyRequests", "message": "slow"}})
                self.send_response(whole)
                self.send_header("Content-Type", "application/json")
                self.send_header("Retry-After", "3")
                self.send_header("Content-Length", str(len(error)))
                self.end_headers()
                self.wfile.write(error.encode())
                return
            created = json.loads(examples.RESPONSE_BODY)
            responses = []
            for entry in sent["requests"]:
                if entry["id"] == drop:
                    continue
                ours = "virtualAppointment" in entry["url"]
                status = {"PUT": 201, "GET": 200}.get(entry["method"], 404) if ours else 404
                headers = {"Content-Type": "application/json", "ETag": 'W/"abc"'}
                responses.append(
                    {"id": entry["id"], "status": status, "headers": headers, "body": created}
                )
            body = json.dumps({"responses": list(reversed(responses))}).encode()  # any order
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}", batches


def test_record_stores_each_of_our_batched_requests_as_its_own_interaction_replay_serves_both(
    start_proxy, client_for, tmp_path: Path
):
    recorded = tmp_path / "batched.yaml"
    other = BatchRequestItem(plain(Method.GET, f"{BETA}/me"), id="me")
    with batching_graph() as (upstream, batches):
        recorder = start_proxy("record", "--cassette", str(recorded), "--upstream", upstream)
        create = create_item()
        answers = by_id(asyncio.run(post_batch(recorder, create, get_item(after=[create]), other)))
        recorder.stop()
    assert {rid: a[0] for rid, a in answers.items()} == {"create": 201, "get": 200, "me": 404}
    (sent,) = batches  # the batch went upstream once, as sent: ours and the other
    assert [r["id"] for r in sent["requests"]] == ["create", "get", "me"]
    interactions = yaml.safe_load(recorded.read_text())["interactions"]
    assert [(i["request"]["method"], i["request"]["uri"]) for i in interactions] == [
        ("PUT", examples.ME_URL),
        ("GET", examples.ME_URL),
    ]
    text = recorded.read_text()
    assert TOKEN not in text and "$batch" not in text  # redacted; the batch itself not stored
    replay = start_proxy("replay", "--cassette", str(recorded))
    client = client_for(replay)
    alone = client.put(
        examples.ME_URL, content=examples.REQUEST_BODY, headers=examples.REQUEST_HEADERS
    )
    assert alone.status_code == 201 and alone.json() == json.loads(examples.RESPONSE_BODY)
    again = by_id(asyncio.run(post_batch(replay, get_item(after=None))))
    assert again["get"][0] == 200


def test_a_batch_body_not_json_is_sent_as_its_base64_bytes(start_proxy, client_for):
    """A body that is not JSON travels as base64 text (Graph's rule); decoded, the emulator
    reads it as the request alone would be read: not JSON, Graph's 400."""
    proxy = start_proxy("simulate")
    entry = {
        "id": "1",
        "method": "PUT",
        "url": "/me/onlineMeetings/m/virtualAppointment",
        "headers": {"Content-Type": "application/json"},
        "body": base64.b64encode(b"{not json").decode(),
    }
    answer = client_for(proxy).post(
        f"{BETA}/$batch", json={"requests": [entry]}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert answer.status_code == 200
    assert answer.json()["responses"][0]["status"] == 400


def test_an_edge_between_ours_and_another_is_a_501_naming_it_where_ours_stay_here(
    start_proxy, client_for
):
    proxy = start_proxy("simulate")
    body = {
        "requests": [
            {"id": "me", "method": "GET", "url": "/me"},
            {
                "id": "va",
                "method": "GET",
                "url": "/me/onlineMeetings/m/virtualAppointment",
                "dependsOn": ["me"],
            },
        ]
    }
    with httpx_client(proxy) as client:
        answer = client.post(f"{BETA}/$batch", json=body)
    assert answer.status_code == 501
    message = answer.json()["error"]["message"]
    assert "request id 'va'" in message and "request id 'me'" in message


# --- the pytest plugin's journal ----------------------------------------------------------------


@pytest.mark.graph_vcr(mode="simulate", allow_anonymous=True)
def test_the_plugins_journal_lists_each_request_of_a_batch_with_its_id(
    graph_vcr_env, graph_vcr_proxy
):
    import requests  # reads the proxy and its CA from the environment graph_vcr_env set

    body = {
        "requests": [
            {
                "id": "c",
                "method": "PUT",
                "url": examples.ME_URL.removeprefix(BETA),
                "headers": {"Content-Type": "application/json"},
                "body": json.loads(examples.REQUEST_BODY),
            },
            {"id": "g", "method": "GET", "url": examples.ME_URL.removeprefix(BETA + "/")},
        ]
    }
    answer = requests.post(f"{BETA}/$batch", json=body, timeout=30)
    assert [r["status"] for r in answer.json()["responses"]] == [201, 200]
    calls = [
        (c.method, c.operation, c.status, c.answered_by, c.batch) for c in graph_vcr_proxy.calls
    ]
    assert calls == [
        ("PUT", "create", 201, "emulator", "c"),
        ("GET", "get", 200, "emulator", "g"),
    ]


def test_the_other_requests_of_a_mixed_batch_go_upstream_as_a_batch_of_their_own(counted):
    """In simulate, where other traffic passes: ours answered here, the other sent upstream
    alone in a batch, the answers merged with the ids as sent."""
    import requests

    with batching_graph() as (upstream, batches):
        port = int(upstream.rsplit(":", 1)[1])
        proxy = counted("simulate", hosts={"graph.microsoft.com": port}).proxy
        body = {
            "requests": [
                {"id": "Me", "method": "GET", "url": "/me"},
                {
                    "id": "Create",
                    "method": "PUT",
                    "url": examples.ME_URL.removeprefix(BETA),
                    "headers": {"Content-Type": "application/json"},
                    "body": json.loads(examples.REQUEST_BODY),
                },
            ]
        }
        with requests.Session() as session:
            session.trust_env = False
            session.proxies = {"http": proxy.url}
            answer = session.post(
                "http://graph.microsoft.com/beta/$batch",
                json=body,
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=30,
            )
    assert answer.status_code == 200
    assert [(r["id"], r["status"]) for r in answer.json()["responses"]] == [
        ("Me", 404),
        ("Create", 201),
    ]
    assert batches == [{"requests": [{"id": "Me", "method": "GET", "url": "/me"}]}]


def test_in_replay_others_whose_host_does_not_answer_get_502_inside_and_ours_are_kept(counted):
    import socket

    import requests

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]  # nobody listens there once closed
    proxy = counted(
        "replay", "--cassette", str(BUNDLED_ME), hosts={"graph.microsoft.com": closed}
    ).proxy
    body = {
        "requests": [
            {"id": "va", "method": "GET", "url": "/me/onlineMeetings/m/virtualAppointment"},
            {"id": "me", "method": "GET", "url": "/me"},
        ]
    }
    with requests.Session() as session:
        session.trust_env = False
        session.proxies = {"http": proxy.url}
        answer = session.post("http://graph.microsoft.com/beta/$batch", json=body, timeout=30)
    assert answer.status_code == 200
    found = {r["id"]: r for r in answer.json()["responses"]}
    assert found["va"]["status"] == 501 and found["va"]["body"]["error"]["code"] == "CassetteMiss"
    assert found["me"]["status"] == 502
    assert found["me"]["body"]["error"]["code"] == "UpstreamUnreachable"


def test_the_batchs_bearer_token_is_each_requests_permissions_in_simulate(start_proxy, client_for):
    proxy = start_proxy("simulate")
    unscoped = jwt(tid=WORK_TENANT, scp="User.Read openid")
    body = {
        "requests": [
            {
                "id": "j",
                "method": "GET",
                "url": "/me/onlineMeetings/m/getVirtualAppointmentJoinWebUrl",
            }
        ]
    }
    answer = client_for(proxy).post(
        f"{BETA}/$batch", json=body, headers={"Authorization": f"Bearer {unscoped}"}
    )
    (only,) = answer.json()["responses"]
    assert (answer.status_code, only["status"], only["body"]["error"]["code"]) == (
        200,
        403,
        "Forbidden",
    )


def test_a_batch_throttled_whole_upstream_reaches_the_client_as_it_came_and_nothing_is_recorded(
    start_proxy, client_for, tmp_path: Path
):
    recorded = tmp_path / "throttled.yaml"
    body = {
        "requests": [
            {"id": "g", "method": "GET", "url": examples.ME_URL.removeprefix(BETA)},
        ]
    }
    with batching_graph(whole=429) as (upstream, _):
        recorder = start_proxy("record", "--cassette", str(recorded), "--upstream", upstream)
        answer = client_for(recorder).post(
            f"{BETA}/$batch", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        recorder.stop()
    assert (answer.status_code, answer.headers["Retry-After"]) == (429, "3")
    assert not recorded.exists() or "interactions: []" in recorded.read_text()


def test_a_request_the_upstream_batch_answer_leaves_out_is_a_502_inside_and_not_recorded(
    start_proxy, client_for, tmp_path: Path
):
    recorded = tmp_path / "partial.yaml"
    relative = examples.ME_URL.removeprefix(BETA)
    body = {
        "requests": [
            {
                "id": "c",
                "method": "PUT",
                "url": relative,
                "headers": {"Content-Type": "application/json"},
                "body": json.loads(examples.REQUEST_BODY),
            },
            {"id": "g", "method": "GET", "url": relative},
        ]
    }
    with batching_graph(drop="g") as (upstream, _):
        recorder = start_proxy("record", "--cassette", str(recorded), "--upstream", upstream)
        answer = client_for(recorder).post(
            f"{BETA}/$batch", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        recorder.stop()
    found = {r["id"]: r for r in answer.json()["responses"]}
    assert (found["c"]["status"], found["g"]["status"]) == (201, 502)
    interactions = yaml.safe_load(recorded.read_text())["interactions"]
    assert [i["request"]["method"] for i in interactions] == ["PUT"]


def test_a_malformed_request_inside_a_batch_meets_graphs_request_checks_in_replay(
    start_proxy, client_for
):
    """The checks are a step of every chain, and each request of a batch walks the chain:
    replay would call the request a miss (501); Graph's checks refuse it first."""
    proxy = start_proxy("replay")
    entry = {
        "id": "1",
        "method": "PUT",
        "url": "/me/onlineMeetings/m/virtualAppointment",
        "headers": {"Content-Type": "text/plain"},
        "body": "not declared JSON",
    }
    answer = client_for(proxy).post(f"{BETA}/$batch", json={"requests": [entry]})
    (inside,) = answer.json()["responses"]
    assert (answer.status_code, inside["status"]) == (200, 415)
    assert inside["body"]["error"]["code"] == "UnsupportedMediaType"
