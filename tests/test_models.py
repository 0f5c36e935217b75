"""The models read the documented traffic, and the strict check says what a strict reader would."""

from __future__ import annotations

import json

import pytest

from proxy_addons.cassette import examples
from proxy_addons.graph.models import (
    ErrorResponse,
    JoinWebUrlResponse,
    Problem,
    SendVirtualAppointmentSmsBody,
    VirtualAppointment,
    errors_only,
    strict_problems,
)
from proxy_addons.graph.replies import error_body
from proxy_addons.graph.routes import Operation
from proxy_addons.graph.validation import request_problems, response_problems

DOCUMENTED_REQUEST = json.loads(examples.REQUEST_BODY)
DOCUMENTED_RESPONSE = json.loads(examples.RESPONSE_BODY)


def test_documented_response_parses_with_camel_case_names_and_string_true_as_boolean():
    appointment = VirtualAppointment.model_validate(DOCUMENTED_RESPONSE)
    assert appointment.id == "0c7fda79-ff00-f57f-37e3-28183b6d09b5"
    assert appointment.odata_type == "#microsoft.graph.virtualAppointment"
    assert appointment.settings is not None
    assert appointment.settings.allow_client_to_join_using_browser is True
    assert appointment.appointment_clients is not None
    assert appointment.appointment_clients[0].sms_capable_phone_number == "123-456-7890"
    assert appointment.external_appointment_id == "AAMkADKnAAA="


@pytest.mark.parametrize("body", [DOCUMENTED_REQUEST, DOCUMENTED_RESPONSE])
def test_documented_bodies_have_only_the_string_true_note(body):
    problems = strict_problems(VirtualAppointment, body)
    assert errors_only(problems) == []
    assert problems == [
        Problem(
            "$.settings.allowClientToJoinUsingBrowser",
            "boolean",
            "string 'true' (accepted)",
            "note",
        )
    ]


def test_documented_example_validates_as_create_request_and_201_response():
    assert errors_only(request_problems(Operation.CREATE, examples.REQUEST_BODY)) == []
    assert errors_only(response_problems(Operation.CREATE, 201, examples.RESPONSE_BODY)) == []


def test_unknown_properties_are_reported_with_their_json_path_at_any_depth():
    body = {
        "surprise": 1,
        "settings": {"allowClientToJoinUsingBrowser": True, "extraSetting": "x"},
        "appointmentClients": [{"displayName": "a"}, {"displayName": "b", "nickname": "c"}],
    }
    paths = {p.path for p in strict_problems(VirtualAppointment, body)}
    assert paths == {"$.surprise", "$.settings.extraSetting", "$.appointmentClients[1].nickname"}


def test_wrong_types_are_errors_with_their_json_path():
    body = {
        "externalAppointmentId": 42,
        "settings": {"allowClientToJoinUsingBrowser": "maybe"},
        "appointmentClients": [{"emailAddress": ["a@b.c"]}],
    }
    problems = {p.path: p for p in strict_problems(VirtualAppointment, body)}
    assert set(problems) == {
        "$.externalAppointmentId",
        "$.settings.allowClientToJoinUsingBrowser",
        "$.appointmentClients[0].emailAddress",
    }
    assert all(p.severity == "error" for p in problems.values())
    assert problems["$.externalAppointmentId"].got == "42"
    assert "valid string" in problems["$.externalAppointmentId"].expected


def test_a_wrong_odata_type_is_an_error_and_the_hashless_form_is_fine():
    body = {
        "@odata.type": "microsoft.graph.virtualAppointment",
        "settings": {"@odata.type": "#microsoft.graph.onlineMeeting"},
    }
    problems = strict_problems(VirtualAppointment, body)
    assert [(p.path, p.expected) for p in problems] == [
        ("$.settings.@odata.type", "#microsoft.graph.virtualAppointmentSettings")
    ]


def test_a_body_that_is_not_an_object_is_one_error_at_the_root():
    assert strict_problems(VirtualAppointment, [1, 2]) == [Problem("$", "a JSON object", "list")]


def test_sms_body_requires_its_fields_and_reads_the_enum():
    assert (
        strict_problems(
            SendVirtualAppointmentSmsBody,
            {"attendees": [{"phoneNumber": "+1 206 555 0100"}], "messageType": "confirmation"},
        )
        == []
    )
    problems = strict_problems(SendVirtualAppointmentSmsBody, {"messageType": "shout"})
    assert {p.path for p in problems} == {"$.attendees", "$.messageType"}
    assert next(p for p in problems if p.path == "$.attendees").expected == "a value (required)"


def test_join_web_url_response_is_an_edm_string_wrapper():
    body = {
        "@odata.context": "https://graph.microsoft.com/beta/$metadata#Edm.String",
        "value": "https://visit.teams.microsoft.com/webrtc-svc/x",
    }
    assert strict_problems(JoinWebUrlResponse, body) == []
    assert JoinWebUrlResponse.model_validate(body).value.startswith("https://visit.teams")


@pytest.mark.parametrize("inner_name", ["innerError", "innererror"])
def test_error_envelope_accepts_both_spellings_of_inner_error(inner_name):
    body = {
        "error": {
            "code": "TooManyRequests",
            "message": "Please retry again later.",
            inner_name: {
                "date": "2021-07-02T01:40:19",
                "request-id": "6a7c5b0e-0000-0000-0000-000000000001",
                "client-request-id": "6a7c5b0e-0000-0000-0000-000000000002",
            },
        }
    }
    error = ErrorResponse.model_validate(body).error
    assert error.code == "TooManyRequests"
    assert error.inner_error is not None
    assert error.inner_error.request_id == "6a7c5b0e-0000-0000-0000-000000000001"
    assert errors_only(strict_problems(ErrorResponse, body)) == []


def test_our_own_error_bodies_satisfy_the_error_model():
    body = error_body("CassetteMiss", "no match", request_id="r-1", client_request_id="c-1")
    assert strict_problems(ErrorResponse, body) == []
    assert ErrorResponse.model_validate(body).error.inner_error.client_request_id == "c-1"


def test_an_error_status_without_the_envelope_is_invalid():
    problems = response_problems(Operation.CREATE, 500, '{"message": "boom"}')
    assert {p.path for p in errors_only(problems)} == {"$.error", "$.message"}


def test_unparseable_bodies_are_one_root_problem():
    (problem,) = request_problems(Operation.CREATE, b"{not json")
    assert problem.path == "$" and problem.expected == "a JSON document"
    (problem,) = response_problems(Operation.GET, 200, b"\xff\xfe")
    assert problem.path == "$"


def test_bodiless_requests_and_responses_are_valid_where_graph_sends_none():
    assert request_problems(Operation.GET, None) == []
    assert request_problems(Operation.UPDATE, b"") == []
    assert response_problems(Operation.UPDATE, 204, b"") == []
    assert response_problems(Operation.DELETE, 204, None) == []
    assert [p.expected for p in request_problems(Operation.CREATE, None)] == ["a JSON body"]
