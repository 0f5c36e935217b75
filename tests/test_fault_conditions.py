"""A fault rule's conditions, judged from what the flow carries (pure: no mitmproxy)."""

from __future__ import annotations

from helpers import WORK_TENANT, jwt

from proxy_addons.graph.fault_conditions import Facts, Stale, TokenRefused, reasons
from proxy_addons.graph.faults import parse_spec
from proxy_addons.graph.routes import Operation

KNOWN = 'W/"v2"'


def write(if_match: str | None = None, known: str | None = KNOWN, method: str = "PATCH") -> Facts:
    headers = {"If-Match": if_match} if if_match is not None else {}
    return Facts(method, Operation.UPDATE, headers, known)


def with_token(token: str | None, operation: Operation = Operation.CREATE) -> Facts:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Facts("PUT", operation, headers)


def test_stale_holds_when_the_write_names_another_etag_than_the_known_one():
    assert Stale().why(write('W/"v1"')) == f"stale precondition (current ETag {KNOWN})"
    assert Stale().why(write(KNOWN)) is None
    assert Stale().why(write(None)) is None  # an unconditional write is never stale


def test_stale_never_holds_without_a_known_etag_or_for_a_read():
    assert Stale().why(write('W/"v1"', known=None)) is None
    assert Stale().why(write('W/"v1"', method="GET")) is None


def test_token_refused_says_why_graph_would_answer_403():
    app_only = jwt(tid=WORK_TENANT, roles=["OnlineMeetings.ReadWrite.All"])
    assert "app-only" in (TokenRefused().why(with_token(app_only)) or "")
    assert TokenRefused().why(with_token(jwt(scp="OnlineMeetings.ReadWrite"))) is None
    assert TokenRefused().why(with_token(None)) is None  # no token: not judged


def test_a_rule_fires_only_when_every_condition_holds_and_gives_each_reason():
    conditions = (Stale(), TokenRefused())
    app_only = jwt(tid=WORK_TENANT, roles=["OnlineMeetings.ReadWrite.All"])
    headers = {"If-Match": 'W/"v1"', "Authorization": f"Bearer {app_only}"}
    found = reasons(conditions, Facts("PATCH", Operation.UPDATE, headers, KNOWN))
    assert found is not None and len(found) == 2
    assert reasons(conditions, write('W/"v1"')) is None  # stale, but no token to refuse
    assert reasons((), write()) == []  # no conditions: always


def test_staleness_and_token_refusal_are_conditions_of_their_rules():
    assert parse_spec("etag-mismatch:when=stale").conditions == (Stale(),)
    assert parse_spec("permissions:scopes=A").conditions == (TokenRefused(frozenset({"A"})),)
