"""Guidance: what Graph recommends that a request did not do, as a pure function of it."""

from __future__ import annotations

import json

import pytest

from proxy_addons.common.json_body import JsonBody
from proxy_addons.graph.guidance import Advice, advise, phone_numbers_as_documented
from proxy_addons.graph.routes import parse

ID = {"client-request-id": "6f1f5a8e-0b6e-4f4a-9d3a-2a8f7f3c1b00"}
V1 = "https://graph.microsoft.com/v1.0/me/onlineMeetings/MSpk/"
BETA = "https://graph.microsoft.com/beta/me/onlineMeetings/MSpk/"


def advice_for(method, url, headers=None, body=None) -> list[Advice]:
    route = parse(method, url)
    assert route is not None
    return advise(route, headers or {}, JsonBody(json.dumps(body)) if body is not None else None)


def sms(*numbers):
    return {
        "attendees": [{"phoneNumber": n, "timeZone": "Pacific Standard Time"} for n in numbers],
        "messageType": "confirmation",
    }


def test_a_request_doing_all_graph_recommends_gets_no_advice():
    url = V1 + "sendVirtualAppointmentSms"
    assert advice_for("POST", url, ID, sms("+13125550100")) == []


def test_a_request_without_client_request_id_is_advised_to_send_one():
    assert advice_for("GET", V1 + "getVirtualAppointmentJoinWebUrl") == [
        Advice.NO_CLIENT_REQUEST_ID
    ]


def test_header_names_are_read_in_any_case():
    headers = {"Client-Request-Id": "x", "IF-MATCH": 'W/"1"'}
    assert advice_for("PATCH", V1.replace("v1.0", "beta") + "virtualAppointment", headers) == [
        Advice.BETA_URL
    ]


def test_a_beta_url_is_advised_against():
    assert Advice.BETA_URL in advice_for("GET", BETA + "getVirtualAppointmentJoinWebUrl", ID)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_a_write_without_if_match_is_advised_to_send_it(method):
    assert Advice.WRITE_WITHOUT_IF_MATCH in advice_for(method, BETA + "virtualAppointment", ID)


def test_a_read_needs_no_if_match():
    assert Advice.WRITE_WITHOUT_IF_MATCH not in advice_for("GET", BETA + "virtualAppointment")


@pytest.mark.parametrize(
    "number",
    ["123-456-7890", "+44 20 7946 0958", "3125550100", "+1 312 555 0100", "+11235550100", ""],
)
def test_an_sms_attendee_without_a_us_e164_number_is_advised(number):
    url = V1 + "sendVirtualAppointmentReminderSms"
    assert advice_for("POST", url, ID, sms("+13125550100", number)) == [Advice.SMS_PHONE_NUMBER]


@pytest.mark.parametrize(
    "document",
    [None, [], {}, {"attendees": []}, {"attendees": ["+13125550100"]}, {"attendees": [{}]}],
)
def test_an_sms_body_not_in_the_documented_shape_reaches_nobody(document):
    assert not phone_numbers_as_documented(document)


def test_a_create_with_a_phone_number_is_not_judged_as_an_sms():
    body = {"appointmentClients": [{"smsCapablePhoneNumber": "123-456-7890"}]}
    headers = {**ID, "If-Match": "*"}
    assert advice_for("PUT", BETA + "virtualAppointment", headers, body) == [Advice.BETA_URL]


def test_every_advice_says_what_graph_recommends():
    assert all(kind.recommendation for kind in Advice)
