"""Graph's permission tables against a bearer token read as an unverified JWT."""

from __future__ import annotations

import base64
import json

import pytest
from helpers import WORK_TENANT, jwt
from hypothesis import given
from hypothesis import strategies as st

from proxy_addons.graph.permissions import (
    DOCUMENTED_SCOPES,
    PERSONAL_ACCOUNT_TENANT,
    bearer_token,
    jwt_claims,
    parse_scopes,
    refusal,
)
from proxy_addons.graph.routes import Operation


def _segment(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def bearer(**claims: object) -> str:
    return "Bearer " + jwt(**claims)


def delegated(scp: str, **claims: object) -> str:
    return bearer(tid=WORK_TENANT, scp=scp, **claims)


ALL = list(Operation)


@pytest.mark.parametrize("authorization", [None, "", "Bearer x", "Bearer a.b.c", "Basic dTpw"])
def test_requests_without_a_jwt_bearer_token_are_not_judged(authorization):
    for operation in ALL:
        assert refusal(authorization, operation) is None


def test_a_jwt_is_read_without_any_key_and_without_padding():
    token = jwt(scp="OnlineMeetings.ReadWrite", tid=WORK_TENANT)
    assert "=" not in token
    assert jwt_claims(token) == {"scp": "OnlineMeetings.ReadWrite", "tid": WORK_TENANT}
    assert bearer_token("bearer  " + token) == token


@pytest.mark.parametrize(
    "token",
    [
        "a.b",  # two parts
        "a.b.c.d.e",  # an encrypted token (JWE): nothing to read
        f"{_segment({'alg': 'none'})}.{_segment(['a', 'list'])}.x",  # claims not an object
        f"{_segment('text')}.{_segment({'scp': 'x'})}.x",  # header not an object
        f"{_segment({'alg': 'none'})}.e30*.x",  # not base64url
        _segment({"alg": "none"}) + ".__8.x",  # claims not UTF-8 (0xff 0xff)
    ],
)
def test_what_is_not_a_jws_compact_token_has_no_claims(token):
    assert jwt_claims(token) is None
    assert refusal(f"Bearer {token}", Operation.CREATE) is None


@pytest.mark.parametrize(
    ("operation", "granting", "not_granting"),
    [
        (Operation.CREATE, "OnlineMeetings.ReadWrite", "OnlineMeetings.Read"),
        (Operation.CREATE, "VirtualAppointment.ReadWrite", "VirtualAppointment.Read"),
        (Operation.UPDATE, "OnlineMeetings.ReadWrite", "User.Read"),
        (Operation.DELETE, "VirtualAppointment.ReadWrite", "Calendars.ReadWrite"),
        (Operation.GET, "OnlineMeetings.Read", "User.Read"),
        (Operation.GET, "VirtualAppointment.Read", "VirtualAppointmentNotification.Send"),
        (Operation.JOIN_URL, "VirtualAppointment.Read", "User.Read"),
        (Operation.JOIN_URL, "OnlineMeetings.ReadWrite", "Calendars.Read"),
        (Operation.SMS, "VirtualAppointmentNotification.Send", "OnlineMeetings.ReadWrite"),
        (Operation.REMINDER_SMS, "VirtualAppointmentNotification.Send", "User.Read"),
    ],
)
def test_each_operation_takes_its_documented_delegated_scopes(operation, granting, not_granting):
    assert refusal(delegated(f"User.Read {granting} openid"), operation) is None
    reason = refusal(delegated(f"{not_granting} openid"), operation)
    assert reason is not None
    assert f"include none that {operation} accepts" in reason
    assert ", ".join(DOCUMENTED_SCOPES[operation]) in reason


def test_scopes_compare_without_regard_to_case():
    assert refusal(delegated("onlinemeetings.readwrite"), Operation.CREATE) is None


@pytest.mark.parametrize("claims", [{"roles": ["OnlineMeetings.ReadWrite.All"]}, {"idtyp": "app"}])
def test_an_app_only_token_is_refused_everywhere(claims):
    for operation in ALL:
        reason = refusal(bearer(tid=WORK_TENANT, **claims), operation)
        assert reason is not None and "app-only" in reason


def test_a_personal_accounts_token_is_refused_even_with_the_right_scope():
    token = bearer(tid=PERSONAL_ACCOUNT_TENANT.upper(), scp="OnlineMeetings.ReadWrite")
    reason = refusal(token, Operation.CREATE)
    assert reason is not None and "personal Microsoft account" in reason


def test_a_jwt_without_scopes_or_roles_is_refused():
    reason = refusal(bearer(tid=WORK_TENANT, scp="  "), Operation.GET)
    assert reason is not None and "no delegated scopes" in reason


def test_configured_scopes_replace_the_documented_ones_for_every_operation():
    accepted = parse_scopes(["Custom.Scope", "Other.One Third.One"])
    assert accepted == {"Custom.Scope", "Other.One", "Third.One"}
    for operation in ALL:
        assert refusal(delegated("custom.scope"), operation, accepted) is None
        reason = refusal(delegated("OnlineMeetings.ReadWrite"), operation, accepted)
        assert reason is not None and "Custom.Scope, Other.One, Third.One" in reason


def test_an_unparsed_method_is_not_judged():
    assert refusal(bearer(roles=["x"]), None) is None


@given(st.text(alphabet=st.characters(exclude_characters="."), max_size=40))
def test_a_token_without_the_two_dots_of_a_jwt_is_never_refused(token):
    for operation in ALL:
        assert refusal(f"Bearer {token}", operation) is None
