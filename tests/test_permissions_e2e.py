"""Graph's permission rules end to end: msgraph-sdk and httpx through ``simulate`` and through
the ``permissions`` fault in ``replay``, with JWTs that no key ever signed."""

from __future__ import annotations

import asyncio
import json

import pytest
from helpers import WORK_TENANT, graph_sdk, jwt
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from proxy_addons.cassette import examples
from proxy_addons.graph.permissions import PERSONAL_ACCOUNT_TENANT

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:msgraph"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:kiota_abstractions"),
]

APP_ONLY = jwt(tid=WORK_TENANT, roles=["OnlineMeetings.ReadWrite.All"], idtyp="app")
PERSONAL = jwt(tid=PERSONAL_ACCOUNT_TENANT, scp="OnlineMeetings.ReadWrite")
UNSCOPED = jwt(tid=WORK_TENANT, scp="User.Read openid")
DELEGATED = jwt(tid=WORK_TENANT, scp="User.Read OnlineMeetings.Read")


def join_url_with(proxy, token: str) -> tuple[int, str, str]:
    """What msgraph-sdk's getVirtualAppointmentJoinWebUrl() builder gets with ``token``:
    (200, value, "") or (status, error code, error message) from its ODataError."""

    async def call() -> tuple[int, str, str]:
        async with graph_sdk(proxy, "https://graph.microsoft.com/v1.0", token) as client:
            meeting = client.me.online_meetings.by_online_meeting_id(examples.MEETING_ID)
            try:
                got = await meeting.get_virtual_appointment_join_web_url.get()
            except ODataError as exc:
                assert exc.error is not None
                return exc.response_status_code, exc.error.code, exc.error.message
            assert got is not None and got.value
            return 200, got.value, ""

    return asyncio.run(call())


def test_simulate_refuses_app_only_personal_and_unscoped_tokens_with_graphs_403(start_proxy):
    proxy = start_proxy("simulate")
    for token in (APP_ONLY, PERSONAL, UNSCOPED):
        assert join_url_with(proxy, token) == (403, "Forbidden", "")
    assert join_url_with(proxy, DELEGATED)[0] == 200
    assert join_url_with(proxy, "not-a-jwt")[0] == 200  # today's behaviour for opaque tokens
    assert proxy.stop() == 0
    log = "".join(proxy.stderr)
    assert "app-only" in log and "personal Microsoft account" in log


def test_simulate_takes_other_scopes_code_and_message_or_any_token(start_proxy):
    custom = start_proxy(
        "simulate",
        "--accept-scope",
        "Custom.Scope",
        "--forbidden-code",
        "Authorization_RequestDenied",
        "--forbidden-message",
        "Insufficient privileges to complete the operation.",
    )
    assert join_url_with(custom, DELEGATED) == (
        403,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
    assert join_url_with(custom, jwt(tid=WORK_TENANT, scp="Custom.Scope"))[0] == 200
    anything = start_proxy("simulate", "--allow-any-token")
    assert join_url_with(anything, APP_ONLY)[0] == 200


def test_replay_with_the_permissions_fault_refuses_what_graph_would_and_plays_the_rest(
    start_proxy, client_for, tmp_path
):
    summary = tmp_path / "summary.json"
    proxy = start_proxy(
        "replay",
        "--fault",
        "permissions",
        "--summary-json",
        str(summary),
        "--allow-playback-repeats",  # one recorded create answers both allowed calls
    )
    client = client_for(proxy)

    def create(token: str):
        headers = {**examples.REQUEST_HEADERS, "Authorization": f"Bearer {token}"}
        return client.put(examples.ME_URL, content=examples.REQUEST_BODY, headers=headers)

    refused = create(APP_ONLY)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "Forbidden"
    assert create(jwt(tid=WORK_TENANT, scp="OnlineMeetings.ReadWrite")).status_code == 201
    assert create("test-token").status_code == 201
    assert proxy.stop() == 0
    counts = json.loads(summary.read_text())
    assert counts["faults"] == {"permissions": 1}
    assert counts["answered_by"]["replay"] == 2
