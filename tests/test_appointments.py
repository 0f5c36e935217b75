"""The emulator's rules as pure transitions: statuses, ETags, preconditions, persistence."""

from __future__ import annotations

import base64
import json
import re
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy_addons.cassette import examples
from proxy_addons.graph import appointments
from proxy_addons.graph.appointments import (
    AppointmentRequest,
    State,
    StateFileError,
    handle,
    join_web_url,
    load_state,
    loads_state,
    save_state,
)
from proxy_addons.graph.replies import CONFLICT_CODE, CONFLICT_MESSAGE
from proxy_addons.graph.routes import Operation
from proxy_addons.graph.validation import response_problems

MEETING = examples.MEETING_ID
ETAG_FORM = re.compile(r'^W/"[A-Za-z0-9+/]+={0,2}"$')


def fresh() -> State:
    return State(epoch="test-epoch")


def call(
    operation: Operation, body: object = None, owner: str = "me", **kwargs
) -> AppointmentRequest:
    if body is not None and not isinstance(body, str):
        body = json.dumps(body)
    return AppointmentRequest(operation, owner, kwargs.pop("meeting", MEETING), body, **kwargs)


def created(state: State | None = None, body: str = examples.REQUEST_BODY, owner: str = "me"):
    state, outcome = handle(state or fresh(), call(Operation.CREATE, body, owner=owner))
    assert outcome.status == 201
    return state, outcome


# --- create -------------------------------------------------------------------------------


def test_create_is_201_with_guid_id_join_url_etag_and_the_clients_values_as_sent():
    _, outcome = created()
    body = outcome.payload
    uuid.UUID(body["id"])
    assert body["appointmentClientJoinWebUrl"].startswith(
        "https://visit.teams.microsoft.com/webrtc-svc/api/route?"
    )
    assert ETAG_FORM.match(outcome.etag)
    assert len(base64.b64decode(outcome.etag[3:-1])) == 22  # an Exchange change key's size
    assert body["settings"]["allowClientToJoinUsingBrowser"] == "true"  # kept as sent
    sent = json.loads(examples.REQUEST_BODY)
    assert {k: body[k] for k in sent} == sent
    assert not [
        p
        for p in response_problems(Operation.CREATE, 201, json.dumps(body))
        if p.severity == "error"
    ]


def test_create_adds_odata_type_and_keeps_a_join_url_the_client_sent():
    _, outcome = created(body=json.dumps({"appointmentClientJoinWebUrl": "https://x.test/j"}))
    assert outcome.payload["@odata.type"] == "#microsoft.graph.virtualAppointment"
    assert outcome.payload["appointmentClientJoinWebUrl"] == "https://x.test/j"


def test_a_client_sent_id_is_ignored_because_the_service_owns_it():
    _, outcome = created(body=json.dumps({"id": "mine"}))
    assert outcome.payload["id"] != "mine"
    uuid.UUID(outcome.payload["id"])


def test_put_on_an_existing_appointment_replaces_it_with_200_same_id_new_etag():
    state, first = created()
    state, second = handle(state, call(Operation.CREATE, {"externalAppointmentId": "new"}))
    assert second.status == 200
    assert second.payload["id"] == first.payload["id"]
    assert second.payload["externalAppointmentId"] == "new"
    assert "appointmentClients" not in second.payload  # replaced, not merged
    assert second.etag != first.etag


def test_put_replace_honours_if_match():
    state, first = created()
    _, stale = handle(state, call(Operation.CREATE, {}, if_match='W/"stale"'))
    _, fresh_ = handle(state, call(Operation.CREATE, {}, if_match=first.etag))
    assert (stale.status, stale.error_code, stale.message) == (412, CONFLICT_CODE, CONFLICT_MESSAGE)
    assert fresh_.status == 200


def test_if_none_match_star_refuses_to_overwrite_but_allows_create():
    state, _ = handle(fresh(), call(Operation.CREATE, {}, if_none_match="*"))
    assert handle(fresh(), call(Operation.CREATE, {}, if_none_match="*"))[1].status == 201
    after, outcome = handle(state, call(Operation.CREATE, {}, if_none_match="*"))
    assert outcome.status == 412
    assert after is state


def test_if_match_on_a_missing_appointment_is_412_for_put_patch_and_delete():
    for operation in (Operation.CREATE, Operation.UPDATE, Operation.DELETE):
        body = {} if operation is not Operation.DELETE else None
        assert handle(fresh(), call(operation, body, if_match="*"))[1].status == 412


# --- get / patch / delete -----------------------------------------------------------------


def test_get_returns_the_object_and_its_etag_and_404_item_not_found_when_absent():
    state, created_ = created()
    _, outcome = handle(state, call(Operation.GET))
    assert (outcome.status, outcome.payload, outcome.etag) == (200, created_.payload, created_.etag)
    _, missing = handle(state, call(Operation.GET, meeting="other"))
    assert (missing.status, missing.error_code) == (404, "itemNotFound")
    assert "other" in missing.message


def test_patch_merges_settings_replaces_lists_and_gives_a_new_etag():
    state, first = created()
    patch = {
        "settings": {"allowClientToJoinUsingBrowser": False},
        "appointmentClients": [{"displayName": "B"}],
    }
    state, outcome = handle(state, call(Operation.UPDATE, patch, if_match=first.etag))
    assert (outcome.status, outcome.payload) == (204, None)
    assert outcome.etag != first.etag and ETAG_FORM.match(outcome.etag)
    _, got = handle(state, call(Operation.GET))
    assert got.etag == outcome.etag
    assert got.payload["settings"] == {
        "@odata.type": "microsoft.graph.virtualAppointmentSettings",
        "allowClientToJoinUsingBrowser": False,
    }
    assert got.payload["appointmentClients"] == [{"displayName": "B"}]
    assert got.payload["externalAppointmentId"] == "AAMkADKnAAA="  # untouched


def test_stale_if_match_patch_is_412_with_graphs_conflict_body_and_changes_nothing():
    state, first = created()
    state, _ = handle(state, call(Operation.UPDATE, {"externalAppointmentId": "a"}))
    after, outcome = handle(
        state, call(Operation.UPDATE, {"externalAppointmentId": "b"}, if_match=first.etag)
    )
    assert (outcome.status, outcome.error_code, outcome.message) == (
        412,
        CONFLICT_CODE,
        CONFLICT_MESSAGE,
    )
    assert after is state
    assert handle(state, call(Operation.GET))[1].payload["externalAppointmentId"] == "a"


@pytest.mark.parametrize("form", ["{tag}", '"{opaque}"', 'W/"x", {tag}', "*", ""])
def test_if_match_accepts_weak_strong_listed_star_and_empty_forms(form):
    state, first = created()
    header = form.format(tag=first.etag, opaque=first.etag[3:-1])
    assert handle(state, call(Operation.UPDATE, {}, if_match=header))[1].status == 204


@pytest.mark.parametrize("form", ["{opaque}", 'w/"{opaque}"', 'W/"x", *'])
def test_if_match_refuses_what_is_not_an_entity_tag(form):
    state, first = created()
    header = form.format(opaque=first.etag[3:-1])
    after, outcome = handle(state, call(Operation.UPDATE, {}, if_match=header))
    assert (outcome.status, after) == (412, state)


def test_patch_of_a_missing_appointment_is_404():
    assert handle(fresh(), call(Operation.UPDATE, {}))[1].status == 404


def test_delete_is_204_then_get_is_404_and_a_recreate_never_reuses_an_etag():
    state, first = created()
    state, deleted = handle(state, call(Operation.DELETE))
    assert deleted.status == 204
    assert handle(state, call(Operation.GET))[1].status == 404
    assert handle(state, call(Operation.DELETE))[1].status == 404
    _, again = created(state)
    assert again.etag != first.etag and again.payload["id"] != first.payload["id"]


def test_me_and_users_are_separate_owners():
    state, _ = created(owner="me")
    _, outcome = handle(state, call(Operation.GET, owner=f"users/{examples.EXAMPLE_USER}"))
    assert outcome.status == 404


# --- live actions -------------------------------------------------------------------------


def test_join_url_works_without_an_appointment_and_is_stable_per_meeting():
    _, outcome = handle(fresh(), call(Operation.JOIN_URL))
    assert outcome.status == 200
    assert outcome.payload == {
        "@odata.context": "https://graph.microsoft.com/beta/$metadata#Edm.String",
        "value": join_web_url(MEETING),
    }
    assert join_web_url(MEETING) != join_web_url("another-meeting")


def test_join_url_of_an_appointment_is_its_stored_url():
    state, _ = created(body=json.dumps({"appointmentClientJoinWebUrl": "https://x.test/j"}))
    assert handle(state, call(Operation.JOIN_URL))[1].payload["value"] == "https://x.test/j"


def test_sms_actions_validate_and_answer_202_without_changing_state():
    sms = {"attendees": [{"phoneNumber": "+1"}], "messageType": "confirmation"}
    reminder = {"attendees": [], "remindBeforeTimeInMinutesType": "mins15"}
    for operation, body in ((Operation.SMS, sms), (Operation.REMINDER_SMS, reminder)):
        state = fresh()
        after, outcome = handle(state, call(operation, body))
        assert (outcome.status, outcome.payload, after) == (202, None, state)
    _, bad = handle(fresh(), call(Operation.SMS, {**sms, "messageType": "shout"}))
    assert bad.status == 400 and "$.messageType" in bad.message


# --- meetings addressed by join URL (onlineMeetings(joinWebUrl='...')) ----------------------

TEAMS_URL = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_N2E@thread.v2/0?context=x"


def by_join_url(operation: Operation, url: str, body: object = None) -> AppointmentRequest:
    return call(operation, body, meeting=None, join_web_url=url)


def test_a_join_url_the_store_issued_names_the_meeting_it_was_issued_for():
    state, issued = handle(fresh(), call(Operation.JOIN_URL))  # issued for MEETING
    generated = issued.payload["value"]
    assert state.join_urls == {generated: MEETING}
    custom = json.dumps({"appointmentClientJoinWebUrl": "https://x.test/j"})
    state, _ = created(state, body=custom)
    _, outcome = handle(state, by_join_url(Operation.JOIN_URL, generated))
    assert outcome.payload["value"] == "https://x.test/j"  # the same meeting's appointment
    state, _ = handle(state, call(Operation.GET))  # issues https://x.test/j for MEETING too
    assert handle(state, by_join_url(Operation.JOIN_URL, "https://x.test/j"))[1].payload == (
        outcome.payload
    )


def test_a_join_url_the_store_never_issued_is_a_meeting_of_its_own():
    state, first = handle(fresh(), by_join_url(Operation.JOIN_URL, TEAMS_URL))
    assert first.status == 200
    assert first.payload["value"] not in (join_web_url(MEETING), TEAMS_URL)
    _, again = handle(state, by_join_url(Operation.JOIN_URL, TEAMS_URL))
    assert again.payload == first.payload  # stable
    _, other = handle(state, by_join_url(Operation.JOIN_URL, TEAMS_URL + "1"))
    assert other.payload["value"] != first.payload["value"]
    # Its answer was issued by the store, so it now names that same URL-keyed meeting.
    assert handle(state, by_join_url(Operation.JOIN_URL, first.payload["value"]))[1] == first


def test_sms_actions_by_join_url_are_accepted_without_a_meeting_id():
    sms = {"attendees": [{"phoneNumber": "+1"}], "messageType": "confirmation"}
    state = fresh()
    after, outcome = handle(state, by_join_url(Operation.SMS, TEAMS_URL, sms))
    assert (outcome.status, after) == (202, state)


def test_issued_join_urls_survive_a_save_and_load(tmp_path: Path):
    state, issued = handle(fresh(), call(Operation.JOIN_URL, meeting="m-1"))
    path = tmp_path / "state.json"
    save_state(path, state)
    assert json.loads(path.read_text())["joinWebUrls"] == {issued.payload["value"]: "m-1"}
    loaded = load_state(path)
    assert loaded.join_urls == {issued.payload["value"]: "m-1"}
    custom = json.dumps({"appointmentClientJoinWebUrl": "https://x.test/m1"})
    loaded, _ = handle(loaded, call(Operation.CREATE, custom, meeting="m-1"))
    by_url = by_join_url(Operation.JOIN_URL, issued.payload["value"])
    assert handle(loaded, by_url)[1].payload["value"] == "https://x.test/m1"


def test_a_version_1_state_file_without_join_urls_still_loads():
    document = json.loads(appointments.dumps_state(created()[0]))
    del document["joinWebUrls"]
    document["version"] = 1
    loaded = loads_state(json.dumps(document))
    assert loaded.join_urls == {} and len(loaded.appointments) == 1


# --- validation and provisioning ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (
            {"settings": {"allowClientToJoinUsingBrowser": "maybe"}},
            "$.settings.allowClientToJoinUsingBrowser",
        ),
        ({"appointmentClients": [{"emailAddress": 7}]}, "$.appointmentClients[0].emailAddress"),
        ({"colour": "red"}, "$.colour"),
    ],
)
def test_an_invalid_body_is_400_naming_the_property_and_stores_nothing(body, path):
    for operation in (Operation.CREATE, Operation.UPDATE):
        state = created()[0] if operation is Operation.UPDATE else fresh()
        after, outcome = handle(state, call(operation, body))
        assert (outcome.status, outcome.error_code) == (400, "BadRequest")
        assert path in outcome.message
        assert after is state


def test_first_create_per_owner_is_409_with_retry_after_once():
    state, first = handle(fresh(), call(Operation.CREATE, {}), provisioning_delay=7)
    assert (first.status, first.retry_after) == (409, 7)
    assert handle(state, call(Operation.GET))[1].status == 404  # nothing was created
    state, second = handle(state, call(Operation.CREATE, {}), provisioning_delay=7)
    assert second.status == 201
    other = call(Operation.CREATE, {}, owner="users/u1")
    assert handle(state, other, provisioning_delay=7)[1].status == 409


# --- ETag uniqueness as a property --------------------------------------------------------

OPERATIONS = st.sampled_from([Operation.CREATE, Operation.UPDATE, Operation.DELETE])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(OPERATIONS, st.sampled_from(["m1", "m2"])), max_size=25))
def test_every_write_issues_an_etag_never_seen_before_and_get_reports_the_latest(steps):
    state, seen, latest = fresh(), set(), {}
    for operation, meeting in steps:
        body = None if operation is Operation.DELETE else {}
        state, outcome = handle(state, call(operation, body, meeting=meeting))
        if outcome.etag is not None and outcome.status < 300:
            assert outcome.etag not in seen
            seen.add(outcome.etag)
            latest[meeting] = outcome.etag
        elif operation is Operation.DELETE and outcome.status == 204:
            latest.pop(meeting)
    for meeting in ("m1", "m2"):
        assert handle(state, call(Operation.GET, meeting=meeting))[1].etag == latest.get(meeting)


# --- persistence --------------------------------------------------------------------------


def test_state_survives_a_save_and_load_and_keeps_issuing_new_etags(tmp_path: Path):
    state, first = created(owner="users/u1")
    state, _ = handle(state, call(Operation.CREATE, {}), provisioning_delay=5)
    path = tmp_path / "state.json"
    save_state(path, state)
    loaded = load_state(path)
    assert loaded == state
    assert handle(loaded, call(Operation.GET, owner="users/u1"))[1].etag == first.etag
    _, patched = handle(loaded, call(Operation.UPDATE, {}, owner="users/u1"))
    assert patched.etag != first.etag
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left


def test_a_missing_or_empty_state_file_is_a_new_store(tmp_path: Path):
    assert load_state(tmp_path / "absent.json").appointments == {}
    (tmp_path / "empty.json").write_text("\n")
    assert load_state(tmp_path / "empty.json").revision == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"format": "graph-vcr-proxy-state",\n  "version": 1,,}', r"not valid JSON .* line 2"),
        ("[]", "not a graph-vcr-proxy state file"),
        (
            '{"format": "other", "version": 1, "epoch": "e", "revision": 0, "provisioned": [], '
            '"appointments": []}',
            r"format",
        ),
    ],
)
def test_a_corrupt_state_file_is_an_error_naming_it_and_is_left_untouched(
    tmp_path: Path, text: str, expected: str
):
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(StateFileError, match=expected) as raised:
        load_state(path)
    assert str(path) in str(raised.value)
    assert path.read_text() == text


def test_a_duplicate_appointment_in_the_file_is_refused():
    state, _ = created()
    document = json.loads(appointments.dumps_state(state))
    document["appointments"] *= 2
    with pytest.raises(StateFileError, match="twice"):
        loads_state(json.dumps(document), "f.json")


def test_a_state_file_in_a_missing_directory_is_refused(tmp_path: Path):
    with pytest.raises(StateFileError, match="does not exist"):
        load_state(tmp_path / "nope" / "state.json")


def test_a_failed_save_leaves_the_previous_file_whole(tmp_path: Path, monkeypatch):
    path = tmp_path / "state.json"
    state, _ = created()
    save_state(path, state)
    before = path.read_text()

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(appointments.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        save_state(path, handle(state, call(Operation.DELETE))[0])
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
