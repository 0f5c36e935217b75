"""``graph-vcr-proxy simulate`` end to end: a real proxy, real HTTPS clients, no network."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from helpers import assert_one_line_error, run_cli
from msgraph_core import APIVersion, GraphClientFactory

from proxy_addons.cassette import examples
from proxy_addons.graph.models import ErrorResponse, VirtualAppointment
from proxy_addons.graph.validation import response_problems

pytestmark = pytest.mark.e2e

URL = examples.ME_URL
USERS_URL = examples.USERS_URL
ACTIONS = URL.removesuffix("/virtualAppointment")
AUTH = {"Authorization": "Bearer test-token"}
JSON = {**AUTH, "Content-Type": "application/json"}
CONFLICT = (
    "The send or update operation could not be performed because the change key passed in "
    "the request does not match the current change key for the item."
)


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    error = ErrorResponse.model_validate_json(response.content).error
    assert error.inner_error is not None and error.inner_error.request_id
    return response.status_code, error.code, error.message


def test_client_session_create_get_stale_patch_fresh_patch_delete_get(start_proxy, client_for):
    proxy = start_proxy("simulate")
    client = client_for(proxy)

    created = client.put(URL, content=examples.REQUEST_BODY, headers=JSON)
    assert created.status_code == 201
    assert created.headers["ETag"].startswith('W/"')
    body = created.json()
    assert body["appointmentClientJoinWebUrl"].startswith("https://visit.teams.microsoft.com/")
    assert not [p for p in response_problems(None, 201, created.content) if p.severity == "error"]

    got = client.get(URL, headers={**AUTH, "client-request-id": "abc-123"})
    assert (got.status_code, got.json()) == (200, body)
    assert got.headers["ETag"] == created.headers["ETag"]
    assert got.headers["client-request-id"] == "abc-123"
    for name in ("request-id", "Date", "Cache-Control", "x-ms-ags-diagnostic"):
        assert got.headers.get(name), name
    etag = got.headers["ETag"]

    client.patch(URL, json={"externalAppointmentId": "first"}, headers=JSON)  # someone else
    stale = client.patch(
        URL, json={"externalAppointmentId": "mine"}, headers={**JSON, "If-Match": etag}
    )
    assert error_of(stale) == (412, "ErrorIrresolvableConflict", CONFLICT)

    fresh_etag = client.get(URL, headers=AUTH).headers["ETag"]
    patched = client.patch(
        URL, json={"externalAppointmentId": "mine"}, headers={**JSON, "If-Match": fresh_etag}
    )
    assert (patched.status_code, patched.content) == (204, b"")
    assert patched.headers["ETag"] not in (etag, fresh_etag)
    assert client.get(URL, headers=AUTH).json()["externalAppointmentId"] == "mine"

    assert client.delete(URL, headers=AUTH).status_code == 204
    assert error_of(client.get(URL, headers=AUTH))[:2] == (404, "itemNotFound")


def test_replace_preconditions_owners_and_live_actions(start_proxy, client_for):
    proxy = start_proxy("simulate")
    client = client_for(proxy)
    first = client.put(URL, content=examples.REQUEST_BODY, headers=JSON)
    assert first.status_code == 201

    again = client.put(URL, content="{}", headers={**JSON, "If-None-Match": "*"})
    assert error_of(again)[:2] == (412, "ErrorIrresolvableConflict")
    replaced = client.put(URL, content="{}", headers={**JSON, "If-Match": first.headers["ETag"]})
    assert replaced.status_code == 200
    assert replaced.json()["id"] == first.json()["id"]

    other_owner = client.get(USERS_URL, headers=AUTH)
    assert other_owner.status_code == 404  # /me and /users/{id} are separate owners

    join = client.get(f"{ACTIONS}/getVirtualAppointmentJoinWebUrl", headers=AUTH)
    assert join.status_code == 200
    assert join.json() == {
        "@odata.context": "https://graph.microsoft.com/beta/$metadata#Edm.String",
        "value": replaced.json()["appointmentClientJoinWebUrl"],
    }
    sms = {"attendees": [{"phoneNumber": "+15550100"}], "messageType": "confirmation"}
    reminder = {"attendees": [], "remindBeforeTimeInMinutesType": "mins30"}
    assert (
        client.post(f"{ACTIONS}/sendVirtualAppointmentSms", json=sms, headers=AUTH).status_code
        == 202
    )
    sent = client.post(f"{ACTIONS}/sendVirtualAppointmentReminderSms", json=reminder, headers=AUTH)
    assert sent.status_code == 202


def test_refusals_are_graph_errors_401_400_415(start_proxy, client_for):
    proxy = start_proxy("simulate")
    client = client_for(proxy)
    no_token = client.put(
        URL, content=examples.REQUEST_BODY, headers={"Content-Type": "application/json"}
    )
    assert error_of(no_token)[:2] == (401, "InvalidAuthenticationToken")

    bad = {"settings": {"allowClientToJoinUsingBrowser": "sometimes"}}
    status, code, message = error_of(client.put(URL, json=bad, headers=AUTH))
    assert (status, code) == (400, "BadRequest")
    assert "$.settings.allowClientToJoinUsingBrowser" in message

    wrong_type = client.put(URL, content="{}", headers={**AUTH, "Content-Type": "text/plain"})
    assert error_of(wrong_type)[0] == 415
    assert client.get(URL, headers=AUTH).status_code == 404  # none of them stored anything


def test_sixteen_clients_patching_with_if_match_have_one_winner_per_etag_and_lose_nothing(
    start_proxy, client_for
):
    proxy = start_proxy("simulate")
    clients = [client_for(proxy) for _ in range(16)]
    created = clients[0].put(URL, json={"appointmentClients": []}, headers=AUTH)
    assert created.status_code == 201
    everyone_has_read = threading.Barrier(len(clients))
    attempts: list[tuple[str, int]] = []
    lock = threading.Lock()

    def add_myself(n: int) -> bool:
        client = clients[n]
        for attempt in range(50):
            got = client.get(URL, headers=AUTH)
            etag, listed = got.headers["ETag"], got.json()["appointmentClients"]
            if attempt == 0:
                everyone_has_read.wait(timeout=60)  # all 16 now hold the same ETag
            patched = client.patch(
                URL,
                json={"appointmentClients": [*listed, {"displayName": f"client {n}"}]},
                headers={**AUTH, "If-Match": etag},
            )
            with lock:
                attempts.append((etag, patched.status_code))
            if patched.status_code == 204:
                return True
            assert error_of(patched)[:2] == (412, "ErrorIrresolvableConflict")
        return False

    with ThreadPoolExecutor(len(clients)) as pool:
        results = list(pool.map(add_myself, range(len(clients))))

    assert all(results)
    winners = Counter(etag for etag, status in attempts if status == 204)
    used = {etag for etag, _ in attempts}
    assert all(winners[etag] == 1 for etag in used), "exactly one winner per ETag"
    first_round = [status for etag, status in attempts if etag == created.headers["ETag"]]
    assert sorted(first_round) == [204] + [412] * 15
    final = clients[0].get(URL, headers=AUTH).json()["appointmentClients"]
    assert sorted(c["displayName"] for c in final) == sorted(f"client {n}" for n in range(16))


def test_msgraph_core_pipeline_creates_gets_and_patches_through_the_proxy(start_proxy):
    proxy = start_proxy("simulate")
    pipeline = {"extensions": {"kiota_request_options": {}}}

    async def session() -> list[int]:
        verify = ssl.create_default_context(cafile=str(proxy.ca))
        raw = httpx.AsyncClient(proxy=proxy.url, verify=verify, timeout=30)
        async with GraphClientFactory.create_with_default_middleware(
            api_version=APIVersion.beta, client=raw
        ) as client:
            created = await client.put(URL, content=examples.REQUEST_BODY, headers=JSON, **pipeline)
            # Microsoft's telemetry middleware stamps a client-request-id; Graph echoes it.
            assert created.headers.get("client-request-id")
            VirtualAppointment.model_validate(created.json())
            got = await client.get(URL, headers=AUTH, **pipeline)
            patched = await client.patch(
                URL,
                json={"externalAppointmentUrl": "https://example.test/a/1"},
                headers={**JSON, "If-Match": got.headers["ETag"]},
                **pipeline,
            )
            again = await client.get(URL, headers=AUTH, **pipeline)
            assert again.json()["externalAppointmentUrl"] == "https://example.test/a/1"
            return [created.status_code, got.status_code, patched.status_code]

    assert asyncio.run(session()) == [201, 200, 204]


def test_state_file_keeps_appointments_across_a_restart(start_proxy, client_for, tmp_path):
    state = tmp_path / "state.json"
    first = start_proxy("simulate", "--state", str(state))
    created = client_for(first).put(URL, content=examples.REQUEST_BODY, headers=JSON)
    assert created.status_code == 201
    assert first.stop() == 0

    second = start_proxy("simulate", "--state", str(state))
    got = client_for(second).get(URL, headers=AUTH)
    assert (got.status_code, got.json()) == (200, created.json())
    assert got.headers["ETag"] == created.headers["ETag"]


def test_a_corrupt_state_file_exits_2_with_one_line_and_is_left_untouched(confdir, tmp_path):
    state = tmp_path / "state.json"
    state.write_text('{"format": "graph-vcr-proxy-state",\n  "appointments": [\n')
    before = state.read_bytes()
    done = run_cli("simulate", "--state", str(state), confdir=confdir)
    line = assert_one_line_error(done, "graph-vcr-proxy: ")
    assert str(state) in line
    assert "line 3" in line
    assert state.read_bytes() == before


def test_reverse_mode_is_a_plain_http_graph_endpoint(start_proxy):
    proxy = start_proxy("simulate", "--reverse")
    path = "/beta/me/onlineMeetings/reverse-meeting/virtualAppointment"
    with httpx.Client(base_url=proxy.url, timeout=30, trust_env=False) as client:
        created = client.put(path, content=examples.REQUEST_BODY, headers=JSON)
        assert created.status_code == 201
        got = client.get(path, headers=AUTH)
        assert (got.status_code, got.headers["ETag"]) == (200, created.headers["ETag"])
        elsewhere = client.get("/v1.0/me/messages", headers=AUTH)
        assert error_of(elsewhere)[:2] == (400, "BadRequest")  # never sent to the real Graph


def test_provisioning_409_then_201_with_deprecation_headers_and_warning(start_proxy, client_for):
    proxy = start_proxy("simulate", "--provisioning-delay", "2", "--deprecation-warnings")
    client = client_for(proxy)
    provisioning = client.put(URL, content=examples.REQUEST_BODY, headers=JSON)
    assert error_of(provisioning)[0] == 409
    assert provisioning.headers["Retry-After"] == "2"
    created = client.put(URL, content=examples.REQUEST_BODY, headers=JSON)
    assert created.status_code == 201
    assert created.headers["Deprecation"] == "@1688083200"
    assert created.headers["Sunset"] == "Fri, 30 Jun 2023 23:59:59 GMT"
    assert proxy.stop() == 0
    log = "".join(proxy.stderr)
    assert "retired" in log and "getVirtualAppointmentJoinWebUrl" in log


def test_simulate_rejects_a_negative_provisioning_delay_with_exit_2(confdir):
    done = run_cli("simulate", "--provisioning-delay", "-5", confdir=confdir)
    message = (
        "graph-vcr-proxy: graph_provisioning_delay must be 0 (off) or a number of seconds, got -5"
    )
    assert assert_one_line_error(done, message) == message


def test_a_second_simulate_on_the_same_state_file_is_refused_with_one_line(
    start_proxy, confdir, tmp_path
):
    state = tmp_path / "state.json"
    start_proxy("simulate", "--state", str(state))
    second = run_cli("simulate", "--state", str(state), confdir=confdir)
    assert_one_line_error(second, f"graph-vcr-proxy: state file {state}: in use by another")
