"""The request journal's records: what crosses the control endpoint and what tests assert on."""

from __future__ import annotations

import dataclasses
import json

import pytest

from proxy_addons.common.answered_by import AnsweredBy, answered
from proxy_addons.testing.journal import (
    MAX_DEPTH,
    Call,
    calls_from_json,
    failures_message,
    misses_message,
    parsed_body,
)

CREATE = Call("PUT", "https://graph.microsoft.com/beta/me/x", "create", {"a": 1}, 201, "replay")


def miss(message: str) -> Call:
    return Call(
        "GET", "https://graph.microsoft.com/beta/me/x", "get", None, 501, "miss", None, message
    )


def test_a_call_survives_the_trip_through_json_and_compares_with_plain_strings():
    (back,) = calls_from_json(json.loads(json.dumps([CREATE.to_json()])))
    assert back == CREATE
    assert back.answered_by is AnsweredBy.REPLAY and back.answered_by == "replay"
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.status = 500  # type: ignore[misc]


@pytest.mark.parametrize(
    ("body", "parsed"),
    [
        (b'{"a": [1, 2]}', {"a": [1, 2]}),
        (b"a=1&b=2", "a=1&b=2"),
        (b"\xff\xfe", "\xff\xfe"),
        (b"", None),
        (None, None),
    ],
)
def test_request_bodies_are_json_when_they_can_be_and_text_otherwise(body, parsed):
    assert parsed_body(body) == parsed


def test_no_miss_no_message_and_several_misses_name_the_first():
    assert misses_message([CREATE]) is None
    message = misses_message([CREATE, miss("No recorded interaction matches A"), miss("B")])
    assert (
        message == "graph-vcr-proxy: cassette miss (and 1 more): No recorded interaction matches A"
    )


@pytest.mark.parametrize(
    ("tag", "has_response", "expected"),
    [
        ("fault", False, AnsweredBy.FAULT),
        (None, True, AnsweredBy.UPSTREAM),
        (None, False, AnsweredBy.NO_RESPONSE),
    ],
)
def test_an_untagged_answer_came_from_upstream_or_from_nobody(tag, has_response, expected):
    assert answered(tag, has_response) is expected


DEEP = "[" * 600 + "]" * 600  # what broke GET /calls with a RecursionError


@pytest.mark.parametrize(
    "body",
    [DEEP, '{"a": ' * 600 + "1" + "}" * 600, "[" * 100_000, b"\xff\xfe{", "x" * 2_000_000],
    ids=["list 600 deep", "object 600 deep", "unparsable depth", "bad UTF-8", "2 MB"],
)
def test_a_call_with_any_body_goes_through_json_and_back(body):
    raw = body.encode() if isinstance(body, str) else body
    call = Call("PUT", "https://g/x", "create", parsed_body(raw), 201, "replay")
    assert calls_from_json(json.loads(json.dumps([call.to_json()]))) == (call,)


def test_a_body_nested_too_deeply_is_kept_as_its_text():
    assert parsed_body(DEEP.encode()) == DEEP
    shallow = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert parsed_body(shallow.encode()) == json.loads(shallow)


@pytest.mark.parametrize(
    "by",
    [
        AnsweredBy.INTERNAL_ERROR,
        AnsweredBy.RECORDING_FAILED,
        AnsweredBy.UNREACHABLE,
        AnsweredBy.NETWORK_POLICY,
    ],
)
def test_a_request_the_proxy_failed_is_named_with_who_answered_and_why(by):
    failed = dataclasses.replace(CREATE, status=500, answered_by=by, error="it broke")
    message = failures_message([CREATE, failed, failed])
    assert message == (
        f"graph-vcr-proxy: PUT https://graph.microsoft.com/beta/me/x was answered 500 by "
        f"{by.value} (and 1 more): it broke"
    )


@pytest.mark.parametrize("by", ["replay", "miss", "emulator", "upstream", "fault", "check"])
def test_answers_the_code_under_test_may_meet_fail_nothing(by):
    assert failures_message([dataclasses.replace(CREATE, answered_by=by)]) is None
