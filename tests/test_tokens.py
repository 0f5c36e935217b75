"""Test tokens: what ``graph-vcr-proxy token`` and ``graph_vcr_token`` mint, and that the
permissions checks judge them as they judge Microsoft's tokens."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from helpers import assert_one_line_error, graph_sdk, run_cli

from proxy_addons.cassette import examples
from proxy_addons.graph import tokens
from proxy_addons.graph.permissions import PERSONAL_ACCOUNT_TENANT, jwt_claims, refusal
from proxy_addons.graph.routes import Operation

TENANT = "a796be92-0000-4000-8000-000000000001"


def decoded(part: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def header_and_claims(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    head, body, signature = token.split(".")
    return decoded(head), decoded(body), signature


def test_a_delegated_token_is_unsigned_and_carries_scp_tid_appid_and_its_lifetime():
    minted = tokens.mint(
        tokens.spec(scopes=["OnlineMeetings.Read User.Read", "OnlineMeetings.Read"], tenant=TENANT),
        now=1_000_000,
    )
    head, claims, signature = header_and_claims(minted)
    assert (head, signature) == ({"typ": "JWT", "alg": "none"}, "")
    assert claims["scp"] == "OnlineMeetings.Read User.Read"  # each once, in order
    assert (claims["tid"], claims["iat"], claims["exp"]) == (TENANT, 1_000_000, 1_003_600)
    assert claims["appid"] == claims["azp"] == tokens.DEFAULT_APP_ID
    assert (claims["aud"], claims["ver"], claims["idtyp"]) == (tokens.GRAPH_AUDIENCE, "1.0", "user")
    assert "roles" not in claims
    assert jwt_claims(minted) == claims  # what the permissions checks read


def test_an_app_only_token_carries_roles_and_no_scp():
    claims = jwt_claims(tokens.token(app=True, roles="OnlineMeetings.ReadWrite.All"))
    assert claims is not None
    assert claims["roles"] == ["OnlineMeetings.ReadWrite.All"] and "scp" not in claims
    assert claims["idtyp"] == "app"


@pytest.mark.parametrize(
    ("arguments", "operation", "refused"),
    [
        ({"scopes": ["OnlineMeetings.ReadWrite"], "tenant": TENANT}, Operation.CREATE, None),
        ({"scopes": ["onlinemeetings.read"]}, Operation.GET, None),
        ({"scopes": ["OnlineMeetings.Read"]}, Operation.CREATE, "include none that create"),
        ({"scopes": []}, Operation.GET, "carries no delegated scopes"),
        ({"app": True, "roles": ["OnlineMeetings.ReadWrite.All"]}, Operation.GET, "app-only"),
        ({"personal": True, "scopes": ["OnlineMeetings.ReadWrite"]}, Operation.GET, "personal"),
    ],
)
def test_the_permissions_checks_judge_minted_tokens_as_microsofts(arguments, operation, refused):
    reason = refusal(f"Bearer {tokens.token(**arguments)}", operation)
    assert reason is None if refused is None else refused in (reason or "")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"app": True, "scopes": ["X"]}, "an app-only token carries roles, not scopes"),
        ({"roles": ["X"]}, "roles are an app-only token's (app)"),
        ({"personal": True, "app": True}, "a personal Microsoft account has no app-only tokens"),
        ({"personal": True, "tenant": TENANT}, "a personal account's tenant is 9188040d"),
        ({"tenant": "contoso"}, "tenant must be a GUID, not 'contoso'"),
        ({"app_id": "x"}, "app id must be a GUID, not 'x'"),
        ({"expires_in": 1.5}, "expires_in must be whole seconds, not 1.5"),
        ({"scopes": [1]}, "scopes must be strings"),
    ],
)
def test_a_token_microsoft_would_not_issue_is_refused_in_one_line(arguments, message):
    with pytest.raises(
        tokens.TokenError, match="^" + message.replace("(", r"\(").replace(")", r"\)")
    ):
        tokens.token(**arguments)


def test_a_personal_token_has_the_consumer_tenant():
    claims = jwt_claims(tokens.token(personal=True, tenant=PERSONAL_ACCOUNT_TENANT.upper()))
    assert claims is not None and claims["tid"] == PERSONAL_ACCOUNT_TENANT


def test_the_cli_prints_the_token_the_fixture_mints():
    result = run_cli(
        "token",
        *("--app", "--role", "OnlineMeetings.ReadWrite.All", "--role", "User.Read.All"),
        *("--tenant", TENANT, "--app-id", tokens.SUBJECT_ID, "--expires-in", "-60"),
    )
    assert result.returncode == 0, result.stderr
    printed = result.stdout.strip()
    claims = jwt_claims(printed)
    assert claims is not None and claims["exp"] - claims["iat"] == -60
    expected = jwt_claims(
        tokens.mint(
            tokens.spec(
                app=True,
                roles=["OnlineMeetings.ReadWrite.All", "User.Read.All"],
                tenant=TENANT,
                app_id=tokens.SUBJECT_ID,
                expires_in=-60,
            ),
            now=claims["iat"],
        )
    )
    assert claims == expected


@pytest.mark.parametrize(
    ("args", "starts"),
    [
        (("--app", "--scope", "X"), "graph-vcr-proxy: token: an app-only token carries roles"),
        (("--personal", "--tenant", TENANT), "graph-vcr-proxy: token: a personal account's"),
        (("--expires-in", "soon"), "graph-vcr-proxy: token: argument --expires-in"),
        (("--tenant", "x"), "graph-vcr-proxy: token: tenant must be a GUID"),
        (("--role", "X"), "graph-vcr-proxy: token: roles are an app-only token's"),
        (("--app-id", ""), "graph-vcr-proxy: token: app id must be a GUID, not ''"),
    ],
)
def test_a_bad_token_argument_is_exit_2_with_one_line(args, starts):
    assert_one_line_error(run_cli("token", *args), starts)


def cli_token(*args: str) -> str:
    result = run_cli("token", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def join_url_with(proxy: Any, token: str) -> int:
    """The status msgraph-sdk's getVirtualAppointmentJoinWebUrl() builder gets with ``token``."""
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    async def call() -> int:
        async with graph_sdk(proxy, "https://graph.microsoft.com/v1.0", token) as client:
            meeting = client.me.online_meetings.by_online_meeting_id(examples.MEETING_ID)
            try:
                await meeting.get_virtual_appointment_join_web_url.get()
            except ODataError as exc:
                assert exc.error is not None and exc.error.code == "Forbidden"
                return int(exc.response_status_code)
            return 200

    return asyncio.run(call())


@pytest.mark.e2e
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_simulate_refuses_minted_wrong_tokens_and_serves_the_right_one(start_proxy):
    proxy = start_proxy("simulate")
    for wrong in (
        cli_token("--scope", "VirtualAppointmentNotification.Send"),  # under-scoped
        cli_token("--app", "--role", "OnlineMeetings.ReadWrite.All"),
        cli_token("--personal", "--scope", "OnlineMeetings.ReadWrite"),
    ):
        assert join_url_with(proxy, wrong) == 403
    assert join_url_with(proxy, cli_token("--scope", "VirtualAppointment.Read")) == 200
