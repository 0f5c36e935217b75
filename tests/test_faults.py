"""Fault specs: parsing, refusals that name the key, selectors, effects and --faults files."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy_addons.graph.fault_conditions import Stale, TokenRefused
from proxy_addons.graph.faults import (
    ERROR_DEFAULTS,
    BrokenBody,
    Delay,
    FaultSpecError,
    GraphError,
    Kind,
    Reset,
    Selector,
    load_rules_file,
    parse_rules_text,
    parse_spec,
    rule_from_item,
    seeded_random,
)
from proxy_addons.graph.replies import Reply, format_seconds
from proxy_addons.graph.routes import Operation

REQUEST_HEADERS = {"client-request-id": "c1d2"}


# --- parsing ------------------------------------------------------------------------------


def test_throttle_spec_sets_window_and_retry_after():
    rule = parse_spec("throttle:times=1,retry-after=1")
    assert rule.kind is Kind.THROTTLE
    assert rule.select.times == 1
    assert rule.effect == GraphError(429, "TooManyRequests", "Please retry again later.", 1.0)


def test_keys_kinds_and_route_names_are_case_insensitive():
    rule = parse_spec(" Latency : MS=100-300 , Route=SendVirtualAppointmentSms|JOIN-URL ")
    assert rule.effect == Delay(100, 300)
    assert rule.select.operations == {Operation.SMS, Operation.JOIN_URL}


def test_route_batch_selects_the_batch_call_alone_and_with_an_operation_both():
    alone = parse_spec("unavailable:route=batch").select
    both = parse_spec("unavailable:route=create|Batch").select
    assert (alone.matches_batch("POST"), alone.matches("PUT", Operation.CREATE)) == (True, False)
    assert (both.matches_batch("POST"), both.matches("PUT", Operation.CREATE)) == (True, True)
    assert not parse_spec("unavailable:route=create").select.matches_batch("POST")


def test_route_sms_selects_both_sms_actions_and_exact_names_select_one():
    assert parse_spec("reset:route=sms").select.operations == {
        Operation.SMS,
        Operation.REMINDER_SMS,
    }
    exact = parse_spec("reset:route=sendVirtualAppointmentReminderSms")
    assert exact.select.operations == {Operation.REMINDER_SMS}


def test_code_and_message_override_the_graph_defaults():
    rule = parse_spec("etag-mismatch:code=entityTagDoesNotMatch,message=stale etag,when=stale")
    assert rule.effect == GraphError(412, "entityTagDoesNotMatch", "stale etag")
    assert rule.conditions == (Stale(),)
    assert parse_spec("etag-mismatch:when=always").conditions == ()


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("etag-mismatch", 412, "ErrorIrresolvableConflict"),
        ("throttle", 429, "TooManyRequests"),
        ("provisioning-conflict", 409, "Conflict"),
        ("unavailable", 503, "serviceNotAvailable"),
        ("gateway-timeout", 504, "GatewayTimeout"),
        ("bad-gateway", 502, "BadGateway"),
        ("server-error", 500, "generalException"),
        ("insufficient-storage", 507, "quotaLimitReached"),
        ("unauthorized", 401, "InvalidAuthenticationToken"),
        ("forbidden", 403, "Authorization_RequestDenied"),
        ("permissions", 403, "Forbidden"),
    ],
)
def test_each_error_kind_answers_with_graphs_status_and_envelope(kind, status, code):
    reply = parse_spec(kind).effect.reply(REQUEST_HEADERS)
    error = reply.json()["error"]
    assert (reply.status, error["code"]) == (status, code)
    assert error["innerError"]["client-request-id"] == "c1d2"
    assert error["innerError"]["request-id"] == reply.header("request-id")
    assert reply.header("Content-Type") == "application/json"


@pytest.mark.parametrize(
    ("kind", "retry_after"),
    [("throttle", "2"), ("provisioning-conflict", "30"), ("unavailable", "5")],
)
def test_kinds_graph_asks_to_retry_carry_retry_after_by_default(kind, retry_after):
    assert parse_spec(kind).effect.reply(REQUEST_HEADERS).header("Retry-After") == retry_after


def test_permissions_fault_answers_graphs_403_and_checks_the_documented_or_given_scopes():
    rule = parse_spec("permissions")
    assert rule.effect.reply(REQUEST_HEADERS).json()["error"]["message"] == ""
    assert rule.conditions == (TokenRefused(None),)
    assert parse_spec("forbidden").conditions == ()
    custom = parse_spec("permissions:scopes=Custom.A|Custom.B,code=AccessDenied,message=no")
    assert custom.conditions == (TokenRefused(frozenset({"Custom.A", "Custom.B"})),)
    assert custom.effect == GraphError(403, "AccessDenied", "no")
    from_yaml = rule_from_item({"kind": "permissions", "scopes": ["Custom.A", "Custom.B"]})
    assert from_yaml.conditions == custom.conditions


def test_unauthorized_says_how_to_authenticate():
    reply = parse_spec("unauthorized").effect.reply(REQUEST_HEADERS)
    assert reply.header("WWW-Authenticate").startswith("Bearer ")


def test_fractional_retry_after_is_sent_as_written():
    reply = parse_spec("throttle:retry-after=2.128").effect.reply(REQUEST_HEADERS)
    assert reply.header("Retry-After") == "2.128"
    assert format_seconds(3.0) == "3"


def test_latency_without_ms_waits_one_second_and_other_kinds_have_their_effects():
    assert parse_spec("latency").effect == Delay(1000, 1000)
    assert parse_spec("reset:nth=3").effect == Reset()
    assert parse_spec("malformed").effect == BrokenBody(truncate=True)
    assert parse_spec("empty").effect == BrokenBody(truncate=False)
    others = {Kind.LATENCY, Kind.RESET, Kind.MALFORMED, Kind.EMPTY}
    shapes = {Kind.RATELIMIT, Kind.HANG, Kind.SLOW_BODY}  # test_traffic_shapes.py
    assert set(ERROR_DEFAULTS) | others | shapes == set(Kind)


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        ("thrott", ["unknown fault kind 'thrott'", "throttle", "etag-mismatch"]),
        ("throttle:tims=1", ["unknown key 'tims'", "times", "retry-after", "enforce"]),
        ("reset:retry-after=1", ["unknown key 'retry-after' for reset", "nth"]),
        ("throttle:times=0", ["times", ">= 1", "'0'"]),
        ("throttle:nth=-1", ["nth", "'-1'"]),
        ("latency:ms=300-100", ["ms", "MIN <= MAX", "'300-100'"]),
        ("latency:rate=1.5", ["rate", "0 to 1", "'1.5'"]),
        ("throttle:retry-after=soon", ["retry-after", "seconds", "'soon'"]),
        ("throttle:enforce=maybe", ["enforce", "true or false"]),
        ("etag-mismatch:when=sometimes", ["when", "always or stale"]),
        ("reset:method=FETCH", ["method", "'FETCH'", "PATCH"]),
        ("reset:route=list", ["route", "'list'", "join-url", "sendVirtualAppointmentSms"]),
        ("throttle:times=1,times=2", ["'times' given twice"]),
        ("throttle:times", ["key=value", "'times'"]),
        ("throttle:code=", ["code", "empty"]),
        ("", ["empty fault spec"]),
    ],
)
def test_bad_specs_are_refused_naming_the_key_and_what_is_allowed(spec, fragments):
    with pytest.raises(FaultSpecError) as caught:
        parse_spec(spec)
    for fragment in fragments:
        assert fragment in str(caught.value)


# --- fuzzing ------------------------------------------------------------------------------

_spec_alphabet = st.sampled_from(
    list("=,:|-.0123456789 abcdefghijklmnopqrstuvwxyzA_\u0661\x00\r\n\t\x1b\x85\u2028")
)
_KEYS = ("method", "route", "nth", "times", "rate", "code", "message", "retry-after", "when")
_keys = st.sampled_from([*_KEYS, "enforce", "ms", "kind", ""])
_values = st.one_of(
    st.text(_spec_alphabet, max_size=12),
    st.integers(-5, 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)


@st.composite
def specs(draw: st.DrawFn) -> str:
    kind = draw(st.one_of(st.sampled_from([k.value for k in Kind]), st.text(max_size=8)))
    pairs = draw(st.lists(st.tuples(_keys, _values), max_size=4))
    return kind + (":" + ",".join(f"{k}={v}" for k, v in pairs) if pairs else "")


@settings(max_examples=400, deadline=None)
@given(st.one_of(specs(), st.text(max_size=40)))
def test_spec_parser_raises_nothing_but_fault_spec_errors(spec):
    try:
        rule = parse_spec(spec)
    except FaultSpecError as exc:
        assert_one_line(exc)
    else:
        assert rule.kind in Kind
        assert 0.0 <= rule.select.rate <= 1.0


_yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        _yaml_values,
        st.dictionaries(st.one_of(_keys, st.integers()), _yaml_values, max_size=4),
        st.fixed_dictionaries({"kind": st.sampled_from([k.value for k in Kind])}).flatmap(
            lambda base: st.dictionaries(_keys, _yaml_values, max_size=3).map(
                lambda extra: {**extra, **base}
            )
        ),
    )
)
def test_yaml_items_raise_nothing_but_fault_spec_errors(item):
    try:
        rule_from_item(item)
    except FaultSpecError as exc:
        assert_one_line(exc)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_faults_file_text_raises_nothing_but_fault_spec_errors(text):
    try:
        parse_rules_text(text, "faults.yaml")
    except FaultSpecError as exc:
        assert str(exc).startswith("faults.yaml")
        assert_one_line(exc)


def assert_one_line(exc: FaultSpecError) -> None:
    """What the CLI prints is one line: no line break of the input may survive in it."""
    message = str(exc)
    assert message and not any(c in message for c in "\r\n\x85\u2028"), message


# --- selectors ----------------------------------------------------------------------------


def test_selector_matches_method_and_route_alternatives():
    select = parse_spec("throttle:method=put|patch,route=create|update").select
    assert select.matches("PUT", Operation.CREATE)
    assert select.matches("patch", Operation.UPDATE)
    assert not select.matches("GET", Operation.GET)
    assert Selector().matches("DELETE", None)


@pytest.mark.parametrize(
    ("spec", "window"),
    [
        ("reset", [1, 2, 3, 4, 5, 6]),
        ("reset:times=2", [1, 2]),
        ("reset:nth=3", [3]),
        ("reset:nth=3,times=2", [3, 4]),
    ],
)
def test_nth_and_times_pick_a_window_of_matching_requests(spec, window):
    select = parse_spec(spec).select
    assert [n for n in range(1, 7) if select.in_window(n)] == window


def test_rate_draws_repeat_with_the_same_seed_and_differ_between_rules():
    rule = parse_spec("reset:rate=0.5")

    def draws(index: int, seed: int = 7) -> list[bool]:
        rng = seeded_random(seed)(index, rule)
        return [rule.select.draw(rng) for _ in range(64)]

    assert draws(0) == draws(0)
    assert 10 < sum(draws(0)) < 54
    assert draws(1) != draws(0)
    assert draws(0, seed=8) != draws(0)


def test_latency_range_draws_within_bounds_and_repeat_with_the_seed():
    rule = parse_spec("latency:ms=100-300")

    def draws() -> list[float]:
        rng = seeded_random(3)(0, rule)
        return [rule.effect.seconds(rng) for _ in range(50)]

    assert draws() == draws()
    assert all(0.1 <= seconds <= 0.3 for seconds in draws())
    assert len(set(draws())) > 1


# --- broken bodies ------------------------------------------------------------------------

REAL = Reply(
    201,
    (("Content-Type", "application/json"), ("ETag", 'W/"1"')),
    json.dumps({"id": "x", "externalAppointmentId": "abc"}).encode(),
)


def test_malformed_cuts_the_real_json_body_and_keeps_its_status():
    reply = BrokenBody(truncate=True).reply(REAL, REQUEST_HEADERS)
    assert reply.status == 201
    assert REAL.body.startswith(reply.body) and len(reply.body) < len(REAL.body)
    with pytest.raises(json.JSONDecodeError):
        json.loads(reply.body)
    assert reply.header("ETag") == 'W/"1"'


def test_malformed_without_a_real_body_sends_a_cut_stand_in_with_200():
    reply = BrokenBody(truncate=True).reply(Reply(204), REQUEST_HEADERS)
    assert reply.status == 200 and reply.body
    with pytest.raises(json.JSONDecodeError):
        json.loads(reply.body)


def test_empty_sends_a_json_2xx_with_no_body():
    assert BrokenBody(truncate=False).reply(REAL, REQUEST_HEADERS).status == 201
    for real in (Reply(204), Reply(501, body=b"{}"), None):
        reply = BrokenBody(truncate=False).reply(real, REQUEST_HEADERS)
        assert (reply.status, reply.body) == (200, b"")
        assert reply.header("Content-Type") == "application/json"


# --- --faults files -----------------------------------------------------------------------


def test_faults_file_takes_spec_strings_and_mappings(tmp_path):
    path = tmp_path / "faults.yaml"
    path.write_text(
        "- etag-mismatch:when=stale\n"
        "- kind: throttle\n"
        "  times: 1\n"
        "  retry-after: 1.5\n"
        "  enforce: true\n"
        "- {kind: reset, route: [create, sms]}\n"
    )
    rules = load_rules_file(path)
    assert [r.kind for r in rules] == [Kind.ETAG_MISMATCH, Kind.THROTTLE, Kind.RESET]
    assert rules[1].enforce and rules[1].effect.retry_after == 1.5
    assert rules[2].select.operations == {Operation.CREATE, Operation.SMS, Operation.REMINDER_SMS}


def test_faults_file_numbers_are_read_as_written_not_as_python_spells_them():
    """YAML reads 0.00001 as a float whose repr is 1e-05: a small rate or a fraction of a
    millisecond is taken, not refused as a value the user never wrote."""
    (rule,) = parse_rules_text("- {kind: throttle, rate: 0.00001}\n", "f.yaml")
    assert rule.select.rate == 0.00001


def test_faults_file_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "faults.yaml"
    path.write_text("- reset\n- throttle\n- kind: throttle\n  tims: 1\n")
    with pytest.raises(FaultSpecError, match=r"faults\.yaml:3: unknown key 'tims' for throttle"):
        load_rules_file(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- reset\n- [unclosed\n", r"^f\.yaml:3: not valid YAML"),
        ("kind: reset\n", r"^f\.yaml:1: expected a YAML list"),
        ("- 42\n", r"^f\.yaml:1: expected a spec string or a mapping"),
        ("- times: 1\n", r"^f\.yaml:1: missing 'kind'"),
    ],
)
def test_faults_file_shape_errors_are_one_line_with_a_place(text, message):
    with pytest.raises(FaultSpecError, match=message):
        parse_rules_text(text, "f.yaml")


def test_missing_or_empty_faults_file(tmp_path):
    with pytest.raises(FaultSpecError, match="cannot read faults file"):
        load_rules_file(tmp_path / "absent.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert load_rules_file(tmp_path / "empty.yaml") == []
