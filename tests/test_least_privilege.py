"""The least-privilege report: each operation's least privileged scope, each token's scopes
beyond what its calls needed, named without the token, merged across runs."""

from __future__ import annotations

import json

import pytest
from helpers import jwt

from proxy_addons.graph import least_privilege, tokens
from proxy_addons.graph.least_privilege import TokenKind, Usage, identify
from proxy_addons.graph.permissions import DOCUMENTED_SCOPES, PERMISSIONS
from proxy_addons.graph.routes import Operation


def bearer(token: str) -> str:
    return f"Bearer {token}"


def test_every_operation_names_a_least_privileged_scope_the_permission_checks_accept():
    for operation in Operation:
        assert PERMISSIONS[operation].least == DOCUMENTED_SCOPES[operation][0]


@pytest.mark.parametrize(
    ("operation", "least"),
    [
        (Operation.CREATE, "OnlineMeetings.ReadWrite"),  # the seed page's table
        (Operation.GET, "OnlineMeetings.Read"),
        (Operation.JOIN_URL, "VirtualAppointment.Read"),
        (Operation.SMS, "VirtualAppointmentNotification.Send"),
    ],
)
def test_the_least_privileged_scope_is_the_one_the_docs_mark(operation, least):
    assert least_privilege.least_privileged([operation]) == (least,)


def test_a_delegated_token_is_named_by_app_and_tenant_never_by_its_text():
    token = tokens.token(scopes=["OnlineMeetings.ReadWrite", "User.Read"])
    identity = identify(bearer(token))
    assert identity is not None
    assert identity.kind is TokenKind.DELEGATED
    assert identity.app_id == tokens.DEFAULT_APP_ID and identity.tenant == tokens.DEFAULT_TENANT
    report = json.dumps(_report([(Operation.CREATE, token)]))
    assert token not in report and token.split(".")[1] not in report


def test_scopes_beyond_what_the_calls_needed_are_listed_per_token():
    token = tokens.token(scopes="OnlineMeetings.ReadWrite VirtualAppointment.Read User.Read")
    report = _report([(Operation.CREATE, token), (Operation.GET, token)])
    (row,) = report["tokens"]
    assert row["least_privileged"] == ["OnlineMeetings.Read", "OnlineMeetings.ReadWrite"]
    assert row["beyond_needed"] == ["User.Read", "VirtualAppointment.Read"]
    assert row["missing"] == ["OnlineMeetings.Read"]  # it reads with the higher ReadWrite


def test_a_token_holding_exactly_the_least_privileged_scopes_has_nothing_beyond():
    token = tokens.token(scopes="virtualappointment.read")  # Graph ignores a scope's case
    (row,) = _report([(Operation.JOIN_URL, token)])["tokens"]
    assert (row["beyond_needed"], row["missing"]) == ([], [])


def test_an_app_only_tokens_roles_are_all_beyond_needed_and_it_says_why():
    token = tokens.token(app=True, roles=["OnlineMeetings.ReadWrite.All"])
    (row,) = _report([(Operation.CREATE, token)])["tokens"]
    assert row["kind"] == "app-only"
    assert row["beyond_needed"] == ["OnlineMeetings.ReadWrite.All"]
    assert "application permissions are not supported" in row["note"]


def test_an_opaque_token_is_named_by_a_short_hash_only():
    identity = identify("Bearer not-a-jwt-secret")
    assert identity is not None and identity.kind is TokenKind.NOT_JWT
    assert identity.name.startswith("token sha256:") and "secret" not in identity.name
    assert len(identity.fingerprint) == least_privilege.HASH_LENGTH


def test_tokens_minted_per_test_with_the_same_grants_are_one_row():
    first = tokens.token(scopes="OnlineMeetings.ReadWrite", expires_in=10)
    second = tokens.token(scopes="OnlineMeetings.ReadWrite", expires_in=20)
    assert first != second
    (row,) = _report([(Operation.CREATE, first), (Operation.CREATE, second)])["tokens"]
    assert row["operations"] == {"create": 2}


def test_calls_without_a_bearer_token_are_counted_apart():
    usage = Usage()
    usage.add(Operation.GET, identify(None))
    assert usage.to_json()["without_token"] == {"get": 1}


def test_claims_are_the_clients_to_write_and_are_cut_short():
    token = jwt(appid="x" * 10_000, tid="t", scp="OnlineMeetings.ReadWrite")
    identity = identify(bearer(token))
    assert identity is not None and len(identity.app_id) == least_privilege.NAME_LENGTH


def test_two_runs_reports_merge_into_the_report_of_both():
    token = tokens.token(scopes="OnlineMeetings.ReadWrite VirtualAppointmentNotification.Send")
    one = Usage.from_json(_report([(Operation.CREATE, token)]))
    other = Usage.from_json(_report([(Operation.SMS, token), (Operation.GET, None)]))
    one.merge(other)
    both = one.to_json()
    assert {name: row["calls"] for name, row in both["operations"].items()} == {
        "create": 1,
        "get": 1,
        "sms": 1,
    }
    (row,) = both["tokens"]
    assert row["beyond_needed"] == []  # together, its calls needed both scopes
    assert json.loads(json.dumps(both)) == Usage.from_json(both).to_json()


def _report(calls):
    usage = Usage()
    for operation, token in calls:
        usage.add(operation, identify(bearer(token)) if token else None)
    return usage.to_json()


def test_a_huge_authorization_header_is_read_but_not_remembered():
    least_privilege._remembered.cache_clear()
    huge = "Bearer " + "x" * 100_000
    identity = identify(huge)
    assert identity is not None and identity.kind is TokenKind.NOT_JWT
    assert least_privilege._remembered.cache_info().currsize == 0
