"""The rules behind graph_vcr_proxy.assert_*: which calls a selector selects, and the failure
messages, each listing the calls one per line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from vcr.request import Request

from proxy_addons.cassette.cassette import Interaction
from proxy_addons.cassette.matching import CassetteIndex
from proxy_addons.cassette.redaction import CREDENTIAL_HEADERS
from proxy_addons.graph.routes import Operation
from proxy_addons.testing.call_assertions import (
    ANY,
    OPERATIONS,
    Recorded,
    Selector,
    SelectorError,
    called_failure,
    in_order_failure,
    json_contains,
    not_called_failure,
    selector,
    unconditional_writes_failure,
    unplayed_failure,
)
from proxy_addons.testing.journal import SECRET_PLACEHOLDER, Call, calls_from_json, journal_headers

URL = "https://graph.microsoft.com/beta/me/onlineMeetings/m1/virtualAppointment"
CREATE = Call(
    "PUT",
    URL,
    "create",
    {"externalAppointmentId": "A1", "appointmentClients": [{"displayName": "Grady"}]},
    201,
    "replay",
    headers={"Content-Type": "application/json", "Authorization": SECRET_PLACEHOLDER},
)
GET = Call("GET", URL, "get", None, 200, "replay", headers={})
UPDATE = Call("PATCH", URL, "update", {"externalAppointmentId": "A2"}, 200, "emulator", headers={})
DELETE = Call("DELETE", URL, "delete", None, None, "fault", headers={"if-match": 'W/"1"'})
CALLS = (CREATE, GET, UPDATE, DELETE)
LISTING = (
    f"  1. PUT {URL} create 201 replay\n"
    f"  2. GET {URL} get 200 replay\n"
    f"  3. PATCH {URL} update 200 emulator\n"
    f"  4. DELETE {URL} delete no response fault"
)


def flagged(*lines: int) -> str:
    """LISTING with these (1-based) lines flagged as selected."""
    rows = LISTING.split("\n")
    return "\n".join(">" + row[1:] if i + 1 in lines else row for i, row in enumerate(rows))


def test_the_operation_names_are_the_routes_operations():
    assert tuple(op.value for op in Operation) == OPERATIONS


def test_a_misspelt_operation_is_refused_rather_than_never_called():
    with pytest.raises(SelectorError, match="unknown operation 'craete'; expected one of create"):
        Selector("craete")


def test_a_selector_is_a_string_or_a_selector_without_more_criteria():
    with pytest.raises(SelectorError, match="a target is a string, not 3"):
        Selector(3)  # type: ignore[arg-type]
    with pytest.raises(SelectorError, match="give criteria in the Selector, or not one"):
        selector(Selector("get"), method="GET")
    assert selector(Operation.GET) == Selector("get")


@pytest.mark.parametrize(
    ("wanted", "selected"),
    [
        (Selector("create"), [CREATE]),
        (Selector("/beta/me/onlineMeetings/*/virtualAppointment"), list(CALLS)),
        (Selector("/beta/users/*"), []),
        (Selector(None, method="patch"), [UPDATE]),
        (Selector("create", json={"appointmentClients": [{"displayName": "Grady"}]}), [CREATE]),
        (Selector("create", json={"appointmentClients": []}), []),
        (Selector(None, json={"externalAppointmentId": "A2"}), [UPDATE]),
        (Selector(None, headers={"content-type": "application/json"}), [CREATE]),
        (Selector(None, headers={"AUTHORIZATION": ANY}), [CREATE]),
        (Selector(None, headers={"If-Match": 'W/"1"'}), [DELETE]),
        (Selector(None, headers={"If-Match": 'W/"2"'}), []),
    ],
)
def test_a_selector_selects_by_operation_path_method_json_subset_and_headers(wanted, selected):
    assert [call for call in CALLS if wanted.matches(call)] == selected


def test_json_contains_is_a_subset_for_dicts_and_item_by_item_for_lists():
    assert json_contains({"a": {"b": 1, "c": 2}, "d": [1, {"e": 3, "f": 4}]}, {"d": [1, {"e": 3}]})
    assert not json_contains({"d": [1, 2]}, {"d": [1]})
    assert not json_contains("text body", {"a": 1})
    assert not json_contains({"a": None}, {"b": None})


def test_assert_called_fails_listing_the_calls_with_the_selected_ones_flagged():
    assert called_failure(CALLS, Selector("create"), None) is None
    assert called_failure(CALLS, Selector("create"), 1) is None
    assert called_failure(CALLS, Selector("create"), 2) == (
        "expected create to be called 2 times, it was called once; the calls (> selected):\n"
        + flagged(1)
    )
    assert called_failure(CALLS, Selector("sms", method="post"), None) == (
        "expected sms method=POST to be called at least once, it was called never; "
        "the calls (> selected):\n" + LISTING
    )


def test_assert_not_called_fails_naming_how_often_it_was():
    assert not_called_failure(CALLS, Selector("sms")) is None
    assert not_called_failure(CALLS, Selector(None, json={"externalAppointmentId": "A2"})) == (
        "expected any call json={'externalAppointmentId': 'A2'} not to be called, it was called "
        "once; the calls (> selected):\n" + flagged(3)
    )


def test_in_order_is_a_subsequence_unless_exact():
    assert in_order_failure(CALLS, [Selector("create"), Selector("delete")], False) is None
    assert in_order_failure(CALLS, [Selector("delete"), Selector("create")], False) == (
        "expected calls in this order: delete, create; found the first 1, then no create after "
        "them; the calls (> matched in order):\n" + flagged(4)
    )
    assert in_order_failure(CALLS, [Selector("create"), Selector("delete")], True) == (
        "expected exactly these calls in this order: create, delete; the calls:\n" + LISTING
    )
    assert in_order_failure(CALLS, [selector(c.operation) for c in CALLS], True) is None


def test_writes_without_if_match_are_flagged():
    assert unconditional_writes_failure([GET, DELETE]) is None
    assert unconditional_writes_failure(CALLS) == (
        "expected every PUT, PATCH and DELETE to carry If-Match; 2 did not (> without it):\n"
        + flagged(1, 3)
    )


def test_the_calls_listing_says_when_there_were_none():
    assert called_failure((), Selector("get"), 1) == (
        "expected get to be called once, it was called never; the calls (> selected):\n"
        "  (no Graph calls)"
    )


def test_the_unplayed_message_lists_each_recording_then_the_calls():
    left = [Recorded("GET", URL, "two.yaml", 1)]
    assert unplayed_failure([], CALLS) is None
    assert unplayed_failure(left, [CREATE]) == (
        "graph-vcr-proxy: 1 recorded interaction never played (assert_all_played):\n"
        f"  GET {URL} (two.yaml #1)\n"
        "the calls:\n"
        f"  1. PUT {URL} create 201 replay"
    )


def test_credential_headers_keep_their_names_and_lose_their_values():
    fields = [
        ("Authorization", "Bearer eyJ.secret.x"),
        ("cookie", "a=1"),
        ("Proxy-Authorization", "Basic c2VjcmV0"),
        ("If-Match", 'W/"1"'),
        ("Accept", "a"),
        ("accept", "b"),
    ]
    headers = journal_headers(fields, CREDENTIAL_HEADERS)
    assert headers == {
        "Authorization": SECRET_PLACEHOLDER,
        "cookie": SECRET_PLACEHOLDER,
        "Proxy-Authorization": SECRET_PLACEHOLDER,
        "If-Match": 'W/"1"',
        "Accept": "a, b",
    }


def test_a_call_with_headers_survives_the_trip_through_json():
    (back,) = calls_from_json(json.loads(json.dumps([CREATE.to_json()])))
    assert back == CREATE and back.headers is not None


def interaction(method: str, position: int, body: str | None = None) -> Interaction:
    response = {"status": {"code": 200, "message": "OK"}, "headers": {}, "body": {"string": ""}}
    return Interaction(Request(method, URL, body, {}), response, Path("c.yaml"), position)


def test_the_index_names_what_no_request_has_played_in_recorded_order():
    recorded = [interaction("GET", 0), interaction("GET", 1), interaction("DELETE", 2)]
    index = CassetteIndex(recorded)
    assert index.unplayed() == recorded
    index.lookup("GET", URL, None)
    assert index.unplayed() == recorded[1:]
    index.lookup("DELETE", URL, None)
    index.lookup("GET", URL, None)
    assert index.unplayed() == []


class FakeProxy:
    """What the plugin's end-of-test check reads of a test's proxy; ``unplayed`` counts asks."""

    stopped = False
    calls = (CREATE,)

    def __init__(self) -> None:
        self.asked = 0

    @property
    def unplayed(self) -> tuple[Recorded, ...]:
        self.asked += 1
        return (Recorded("GET", URL, "c.yaml", 1),)


class FakeItem:
    def __init__(self) -> None:
        self.stash = pytest.Stash()


@pytest.mark.parametrize("asked", [False, True])
def test_the_plugin_asks_what_is_unplayed_only_of_a_test_that_asked(asked):
    from proxy_addons import pytest_plugin

    proxy, item = FakeProxy(), FakeItem()
    item.stash[pytest_plugin.ACTIVE] = pytest_plugin.Active(proxy, False, asked)  # type: ignore[arg-type]
    message = pytest_plugin.proxy_message(item, None)  # type: ignore[arg-type]
    assert proxy.asked == int(asked)
    assert (message or "").startswith(
        "graph-vcr-proxy: 1 recorded interaction never played"
    ) is asked
    assert pytest_plugin.proxy_message(item, ValueError()) is None  # the test's own failure first


def test_the_played_route_answers_get_only():
    from proxy_addons.addons import control_rules as control

    class Session:
        def unplayed(self) -> list[dict[str, object]]:
            return [Recorded("GET", URL, "c.yaml", 1).to_json()]

    get = control.ControlRequest("GET", "/played", {})
    reply = control.answer_played(get, Session())  # type: ignore[arg-type]
    assert (reply.status, json.loads(reply.body)) == (
        200,
        {"unplayed": [{"method": "GET", "uri": URL, "source": "c.yaml", "position": 1}]},
    )
    post = control.ControlRequest("POST", "/played", {})
    assert control.answer_played(post, Session()).status == 405  # type: ignore[arg-type]
