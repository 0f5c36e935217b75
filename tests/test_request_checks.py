"""Graph refuses a malformed request on our routes with its own status, before any lookup."""

from __future__ import annotations

import gzip

import pytest
from bombs import bomb
from helpers import graph_flow

from proxy_addons.addons import flows
from proxy_addons.addons.request_checks import RequestChecks
from proxy_addons.cassette import examples
from proxy_addons.graph.models import ErrorResponse
from proxy_addons.graph.replies import error_reply
from proxy_addons.graph.request_checks import MAX_BODY_BYTES, check_request
from proxy_addons.graph.routes import parse

ME_PUT = parse("PUT", examples.ME_URL)
JSON_HEADERS = {"Content-Type": "application/json", "client-request-id": "c-42"}


def refused(route, headers, body):
    reply = check_request(route, headers, body)
    assert reply is not None, "the request should have been refused"
    error = ErrorResponse.model_validate(reply.json()).error
    return reply.status, error.code, error.message, reply


def test_the_documented_request_passes():
    assert check_request(ME_PUT, examples.REQUEST_HEADERS, examples.REQUEST_BODY.encode()) is None


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON", "application/json;"]
)
def test_json_content_type_with_parameters_or_any_case_passes(content_type):
    assert check_request(ME_PUT, {"Content-Type": content_type}, b"{}") is None


def test_bodiless_get_and_delete_need_no_content_type():
    for method in ("GET", "DELETE"):
        assert check_request(parse(method, examples.ME_URL), {}, None) is None


def test_malformed_json_is_400_naming_line_and_column():
    status, code, message, _ = refused(ME_PUT, JSON_HEADERS, b'{"settings": {\n  "a": }')
    assert (status, code) == (400, "BadRequest")
    assert "Unable to read JSON request payload" in message
    assert "line 2 column 8" in message


def test_non_utf8_body_is_400_naming_the_byte():
    status, code, message, _ = refused(ME_PUT, JSON_HEADERS, b'{"displayName": "\xff"}')
    assert (status, code) == (400, "BadRequest")
    assert "not valid UTF-8 (byte 17)" in message


def test_a_10_mb_body_is_413_even_without_a_content_type():
    status, code, message, _ = refused(ME_PUT, {}, b" " * (10 * 1024 * 1024))
    assert (status, code) == (413, "RequestEntityTooLarge")
    assert str(MAX_BODY_BYTES) in message


def test_a_body_of_exactly_the_limit_is_not_refused_for_size():
    body = b'{"a": "' + b"x" * (MAX_BODY_BYTES - 10) + b'"}'
    assert len(body) == MAX_BODY_BYTES - 1
    assert check_request(ME_PUT, JSON_HEADERS, body) is None


@pytest.mark.parametrize("headers", [{"Content-Type": "text/plain"}, {}])
def test_a_body_that_is_not_declared_json_is_415(headers):
    status, code, message, _ = refused(ME_PUT, headers, examples.REQUEST_BODY.encode())
    assert (status, code) == (415, "UnsupportedMediaType")
    assert "application/json" in message


def test_a_method_graph_does_not_allow_is_405_with_allow_header():
    status, code, _, reply = refused(parse("POST", examples.ME_URL), JSON_HEADERS, b"{}")
    assert status == 405 and code == "Request_BadRequest"
    assert reply.header("Allow") == "PUT, GET, PATCH, DELETE"


def test_refusals_carry_graph_headers_with_the_client_request_id_echoed():
    _, _, _, reply = refused(ME_PUT, JSON_HEADERS, b"{")
    assert reply.header("client-request-id") == "c-42"
    assert reply.header("Content-Type") == "application/json"
    assert reply.header("Date")
    inner = reply.json()["error"]["innerError"]
    assert inner["request-id"] == reply.header("request-id")
    assert inner["client-request-id"] == "c-42"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"null", "JSON NoneType, not an object"),
        (b"[1, 2]", "JSON list, not an object"),
        (b'"x"', "JSON str, not an object"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "nested too deeply"),
    ],
)
def test_a_body_that_is_not_one_json_object_gets_400_naming_why(body, reason):
    status, code, message, _ = refused(ME_PUT, {"Content-Type": "application/json"}, body)
    assert (status, code) == (400, "BadRequest")
    assert reason in message


def test_a_number_with_more_digits_than_python_reads_is_400_not_a_crash():
    body = b'{"externalAppointmentId": ' + b"1" * 5_000 + b"}"
    status, code, message, _ = refused(ME_PUT, JSON_HEADERS, body)
    assert (status, code) == (400, "BadRequest")
    assert "too many digits" in message


@pytest.mark.parametrize(
    "url",
    [
        examples.ME_URL.replace(examples.MEETING_ID, "m\udcff"),
        examples.ME_URL + "?$select=\udcff",
        examples.USERS_URL.replace(examples.EXAMPLE_USER, "a\udce9@contoso.com"),
        f"{examples.GRAPH_BETA}/communications/onlineMeetings(joinWebUrl='https://t/\udcff')"
        "/getVirtualAppointmentJoinWebUrl()",
    ],
)
def test_a_url_sent_with_bytes_that_are_not_utf8_is_400_before_anything_stores_it(url):
    """mitmproxy hands such raw bytes on as surrogate escapes, which nothing can encode."""
    status, code, message, _ = refused(parse("GET", url), {}, None)
    assert (status, code) == (400, "BadRequest")
    assert "not UTF-8" in message


def test_a_percent_encoded_id_is_not_refused_whatever_it_decodes_to():
    url = examples.ME_URL.replace(examples.MEETING_ID, "m%FF%0D%0A%C3%A9")
    assert check_request(parse("GET", url), {}, None) is None


# --- compressed bodies: decoded as a stream that stops at the limit ------------------------


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_a_compressed_body_that_inflates_past_the_limit_is_413_once_decoded(coding):
    flow = graph_flow("PUT", examples.ME_URL, None, {**JSON_HEADERS, "Content-Encoding": coding})
    flow.request.raw_content = bomb(64, coding)
    RequestChecks().request(flow)
    error = ErrorResponse.model_validate(flow.response.json()).error
    assert (flow.response.status_code, error.code) == (413, "RequestEntityTooLarge")
    assert error.message == (
        f"The request body is larger than the limit of {MAX_BODY_BYTES} bytes once decoded."
    )


def test_a_compressed_body_within_the_limit_is_read_decoded():
    headers = {**JSON_HEADERS, "Content-Encoding": "gzip"}
    flow = graph_flow("PUT", examples.ME_URL, None, headers)
    flow.request.raw_content = gzip.compress(examples.REQUEST_BODY.encode())
    RequestChecks().request(flow)
    assert flow.response is None
    assert flows.body_of(flow).raw == examples.REQUEST_BODY.encode()


# --- the addon: one step of its own, before anything claims a request ---------------------


def test_the_checks_answer_a_malformed_request_of_ours_with_graphs_4xx_tagged_check():
    flow = graph_flow("PUT", examples.ME_URL, "{not json", JSON_HEADERS)
    RequestChecks().request(flow)
    assert flow.response is not None and flow.response.status_code == 400
    assert flows.answered_by(flow) == "check"


def test_claiming_a_flow_checks_nothing_any_more():
    """Which addon answers a malformed request no longer depends on which one claims first."""
    flow = graph_flow("PUT", examples.ME_URL, "{not json", JSON_HEADERS)
    assert flows.claim(flow) is not None
    assert flow.response is None


def test_the_checks_leave_other_hosts_and_answered_flows_alone():
    other = graph_flow("PUT", "https://example.com/beta/me", "{not json", JSON_HEADERS)
    answered = graph_flow("PUT", examples.ME_URL, "{not json", JSON_HEADERS)
    answered.response = flows.to_response(error_reply(503, "x", "y", {}))
    RequestChecks().request(other)
    RequestChecks().request(answered)
    assert other.response is None and answered.response.status_code == 503
