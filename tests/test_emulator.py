"""The emulator addon inside mitmproxy's test context: auth, headers, options, state file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import WORK_TENANT, graph_flow, jwt
from mitmproxy import exceptions, http
from mitmproxy.test import taddons

from proxy_addons.addons import flows
from proxy_addons.addons.emulator import Emulator
from proxy_addons.addons.request_checks import RequestChecks
from proxy_addons.cassette import examples
from proxy_addons.graph import appointments
from proxy_addons.graph.models import ErrorResponse

JOIN_URL = examples.ME_URL.replace("virtualAppointment", "getVirtualAppointmentJoinWebUrl")
AUTH = {"Authorization": "Bearer token", "Content-Type": "application/json"}


def flow_for(method: str, url: str, body: str | None = None, **headers: str) -> http.HTTPFlow:
    """A request with AUTH's headers; ``client_request_id="c-1"`` adds one and
    ``authorization=""`` replaces AUTH's (graph_flow sets them in order, ignoring case)."""
    extra = {name.replace("_", "-"): value for name, value in headers.items()}
    return graph_flow(method, url, body or "", {**AUTH, **extra})


@pytest.fixture
def emulator() -> Iterator[tuple[Emulator, taddons.context]]:
    addon = Emulator()
    with taddons.context(addon) as tctx:
        yield addon, tctx


def send(addon: Emulator, method: str, url: str = examples.ME_URL, body=None, **headers):
    """The request through Graph's request checks and then the emulator, as in every chain."""
    flow = flow_for(method, url, body, **headers)
    RequestChecks().request(flow)
    addon.request(flow)
    assert flow.response is not None, "the emulator should answer every request on our routes"
    return flow.response, flow


def error_code(response: http.Response) -> str:
    return ErrorResponse.model_validate_json(response.content).error.code


def test_create_answers_201_with_graph_headers_and_echoed_client_request_id(emulator):
    addon, _ = emulator
    response, flow = send(addon, "PUT", body=examples.REQUEST_BODY, client_request_id="c-1")
    assert response.status_code == 201
    assert response.headers["client-request-id"] == "c-1"
    for name in ("request-id", "Date", "x-ms-ags-diagnostic", "ETag"):
        assert response.headers.get(name), name
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Type"] == "application/json"
    assert flows.answered_by(flow) == "emulator"


def test_a_request_without_a_bearer_token_is_401_invalid_authentication_token(emulator):
    addon, _ = emulator
    for authorization in ("", "Basic dXNlcjpwdw==", "Bearer "):
        response, _ = send(addon, "GET", authorization=authorization)
        assert response.status_code == 401
        assert error_code(response) == "InvalidAuthenticationToken"
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def test_auth_can_be_switched_off(emulator):
    addon, tctx = emulator
    tctx.configure(addon, graph_require_auth=False)
    response, _ = send(addon, "GET", authorization="")
    assert response.status_code == 404


APP_ONLY = "Bearer " + jwt(tid=WORK_TENANT, roles=["OnlineMeetings.ReadWrite.All"])


def test_a_jwt_without_the_permission_is_403_forbidden_with_graphs_empty_message(emulator):
    addon, _ = emulator
    response, flow = send(addon, "PUT", body="{}", authorization=APP_ONLY)
    assert response.status_code == 403
    error = ErrorResponse.model_validate_json(response.content).error
    assert (error.code, error.message) == ("Forbidden", "")
    assert addon.state.appointments == {}
    assert flows.answered_by(flow) == "emulator"
    delegated = "Bearer " + jwt(tid=WORK_TENANT, scp="OnlineMeetings.ReadWrite")
    assert send(addon, "PUT", body="{}", authorization=delegated)[0].status_code == 201
    assert send(addon, "GET", authorization="Bearer not-a-jwt")[0].status_code == 200


def test_the_403_code_message_and_scopes_are_options_and_any_token_can_be_allowed(emulator):
    addon, tctx = emulator
    tctx.configure(
        addon,
        graph_forbidden_code="Authorization_RequestDenied",
        graph_forbidden_message="Insufficient privileges.",
        graph_accepted_scopes=["Custom.Scope"],
    )
    refused, _ = send(addon, "GET", authorization="Bearer " + jwt(scp="OnlineMeetings.Read"))
    error = ErrorResponse.model_validate_json(refused.content).error
    assert (error.code, error.message) == (
        "Authorization_RequestDenied",
        "Insufficient privileges.",
    )
    assert (
        send(addon, "GET", authorization="Bearer " + jwt(scp="custom.scope"))[0].status_code == 404
    )
    tctx.configure(addon, graph_allow_any_token=True)
    assert send(addon, "GET", authorization=APP_ONLY)[0].status_code == 404


def test_an_empty_scope_or_forbidden_code_is_an_options_error(emulator):
    addon, tctx = emulator
    with pytest.raises(exceptions.OptionsError, match="graph_accepted_scopes"):
        tctx.configure(addon, graph_accepted_scopes=["  "])
    with pytest.raises(exceptions.OptionsError, match="graph_forbidden_code"):
        tctx.configure(addon, graph_forbidden_code=" ")


def test_a_wrong_content_type_is_415_before_anything_is_stored(emulator):
    addon, _ = emulator
    response, _ = send(addon, "PUT", body=examples.REQUEST_BODY, content_type="text/plain")
    assert response.status_code == 415
    assert addon.state.appointments == {}


def test_an_invalid_body_is_400_naming_the_json_path(emulator):
    addon, _ = emulator
    body = json.dumps({"settings": {"allowClientToJoinUsingBrowser": "maybe"}})
    response, _ = send(addon, "PUT", body=body)
    assert response.status_code == 400
    message = ErrorResponse.model_validate_json(response.content).error.message
    assert "$.settings.allowClientToJoinUsingBrowser" in message


def test_provisioning_409_carries_retry_after(emulator):
    addon, tctx = emulator
    tctx.configure(addon, graph_provisioning_delay=3)
    first, _ = send(addon, "PUT", body="{}")
    second, _ = send(addon, "PUT", body="{}")
    assert (first.status_code, first.headers["Retry-After"]) == (409, "3")
    assert second.status_code == 201


def test_a_negative_provisioning_delay_is_an_options_error(emulator):
    addon, tctx = emulator
    with pytest.raises(exceptions.OptionsError, match="graph_provisioning_delay"):
        tctx.configure(addon, graph_provisioning_delay=-1)


def test_deprecation_headers_only_when_enabled_and_only_on_retired_operations(emulator, caplog):
    addon, tctx = emulator
    plain, _ = send(addon, "PUT", body="{}")
    assert "Deprecation" not in plain.headers
    tctx.configure(addon, graph_deprecation_warnings=True)
    retired, _ = send(addon, "GET")
    live, _ = send(addon, "GET", url=JOIN_URL)
    assert retired.headers["Deprecation"] == "@1688083200"
    assert retired.headers["Sunset"] == "Fri, 30 Jun 2023 23:59:59 GMT"
    assert "getvirtualappointmentjoinweburl" in retired.headers["Link"]
    assert live.status_code == 200 and "Deprecation" not in live.headers
    assert "getVirtualAppointmentJoinWebUrl" in caplog.text


def test_other_traffic_is_left_alone_in_proxy_mode(emulator):
    addon, _ = emulator
    flow = flow_for("GET", "https://graph.microsoft.com/v1.0/me/messages")
    addon.request(flow)
    assert flow.response is None


def test_a_state_file_keeps_appointments_across_a_restart(tmp_path: Path):
    path = tmp_path / "state.json"
    first = Emulator()
    with taddons.context(first) as tctx:
        tctx.configure(first, graph_state=str(path))
        created, _ = send(first, "PUT", body=examples.REQUEST_BODY)
    first.done()  # what mitmproxy calls at shutdown: the state file is free again
    assert json.loads(path.read_text())["appointments"][0]["etag"] == created.headers["ETag"]
    second = Emulator()
    with taddons.context(second) as tctx:
        tctx.configure(second, graph_state=str(path))
        got, _ = send(second, "GET")
    assert got.status_code == 200
    assert got.headers["ETag"] == created.headers["ETag"]
    assert got.json() == created.json()


def test_a_corrupt_state_file_is_an_options_error_naming_file_and_line(tmp_path: Path):
    path = tmp_path / "state.json"
    path.write_text('{"format": "graph-vcr-proxy-state",\n "version": }')
    addon = Emulator()
    with (
        taddons.context(addon) as tctx,
        pytest.raises(exceptions.OptionsError, match=r"state\.json.*line 2"),
    ):
        tctx.configure(addon, graph_state=str(path))
    assert path.read_text() == '{"format": "graph-vcr-proxy-state",\n "version": }'


def test_a_failed_state_write_is_500_and_keeps_the_old_state(tmp_path: Path, monkeypatch):
    addon = Emulator()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, graph_state=str(tmp_path / "state.json"))

        def disk_full(path: Path, state: appointments.State) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(appointments, "save_state", disk_full)
        response, _ = send(addon, "PUT", body="{}")
        assert response.status_code == 500
        assert "No space left" in response.json()["error"]["message"]
        assert send(addon, "GET")[0].status_code == 404
