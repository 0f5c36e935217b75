"""One ETag rule: the header forms it accepts, and the emulator and the stale-ETag fault never
disagreeing about any header (property tests over the If-Match / If-None-Match grammar)."""

from __future__ import annotations

import json

import pytest
from fault_chain import run_hook
from helpers import graph_flow
from hypothesis import example, given, settings
from hypothesis import strategies as st
from mitmproxy.test import taddons

from proxy_addons.addons.emulator import Emulator
from proxy_addons.addons.etag_tracker import ETagTracker
from proxy_addons.addons.fault_injection import FaultInjector
from proxy_addons.addons.request_checks import RequestChecks
from proxy_addons.cassette import examples
from proxy_addons.graph.appointments import Appointment, State
from proxy_addons.graph.etags import EntityTag, names, parse_list, parse_tag, precondition_fails

CURRENT = 'W/"abc"'
AUTH = {"Authorization": "Bearer token", "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("field", "named"),
    [
        ('W/"abc"', True),
        ('"abc"', True),  # weak comparison: the W/ prefix does not matter
        ('"x", W/"abc"', True),  # any tag of a list
        ('"x",,  "abc" ', True),  # empty elements and blanks are allowed
        ("*", True),
        (" * ", True),
        ("abc", False),  # not an entity-tag: unquoted
        ('w/"abc"', False),  # the weak prefix is case-sensitive
        ('"x", *', False),  # * only as the whole field
        ('"ABC"', False),  # opaque tags are case-sensitive
        ('"abc', False),  # unterminated
        ('"ab c"', False),  # no blanks inside an opaque tag
    ],
)
def test_which_fields_name_the_current_tag(field, named):
    assert names(field, CURRENT) is named


def test_a_comma_inside_a_quoted_tag_belongs_to_the_tag():
    assert parse_list('"a,b", W/"c"') == [EntityTag("a,b"), EntityTag("c", weak=True)]
    assert names('"a,b"', 'W/"a,b"')
    assert not names('"a"', 'W/"a,b"')


def test_malformed_elements_name_nothing_but_keep_their_place():
    assert parse_list('abc, "x", w/"y"') == [None, EntityTag("x"), None]
    assert parse_tag(' W/"k" ') == EntityTag("k", weak=True)
    assert parse_tag("k") is None


def test_a_current_tag_that_is_not_in_tag_syntax_is_taken_whole():
    assert names('"bare"', "bare")
    assert not names("bare", "bare")  # the request still has to send a tag


@pytest.mark.parametrize(
    ("if_match", "if_none_match", "current", "fails"),
    [
        (None, None, CURRENT, False),
        (CURRENT, None, CURRENT, False),
        ('W/"old"', None, CURRENT, True),
        ("*", None, None, True),  # If-Match needs an existing item
        (None, "*", None, False),  # If-None-Match: * creates
        (None, "*", CURRENT, True),  # ...but never overwrites
        (None, '"abc"', CURRENT, True),
        (None, '"old"', CURRENT, False),
        ("", None, CURRENT, False),  # an empty field is no field
        ("  ", "", None, False),
    ],
)
def test_precondition_rules(if_match, if_none_match, current, fails):
    assert precondition_fails(if_match, if_none_match, current) is fails


# --- the emulator and the fault agree -----------------------------------------------------

OPAQUE = st.sampled_from(["abc", "ABC", "ab,c", "x", ""]) | st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='"'),
    max_size=5,
)
BLANKS = st.sampled_from(["", " ", "\t", "  "])


@st.composite
def elements(draw: st.DrawFn) -> str:
    opaque = draw(OPAQUE)
    form = draw(st.sampled_from(['"{}"', 'W/"{}"', 'w/"{}"', "{}", "*", "W/{}", '"{}', 'W/ "{}"']))
    return draw(BLANKS) + form.format(opaque) + draw(BLANKS)


FIELDS = st.one_of(
    st.none(),
    st.lists(elements(), max_size=4).map(",".join),
    st.sampled_from(["*", " * ", "", ","]),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=12),
)
CURRENT_TAGS = st.builds(
    lambda weak, opaque: str(EntityTag(opaque, weak)),
    st.booleans(),
    st.sampled_from(["abc", "ab,c", "x", "ZfYdV7Meckeip07P//nwjAAADyI7NQ=="]),
)
URL = examples.ME_URL
JOIN_URL = URL.replace("virtualAppointment", "getVirtualAppointmentJoinWebUrl()")
BODIES = {"PUT": "{}", "PATCH": "{}"}


def verdicts(
    method: str, current: str, if_match: str | None, none: str | None
) -> tuple[bool, bool]:
    """(simulate answers 412, etag-mismatch:when=stale answers 412) for one request, each
    addon on its own, on an appointment whose ETag is ``current``. The fault learns that ETag
    the way it does in a proxy: the tracker learns it from the emulator's answer to a GET."""
    emulator, tracker, injector = Emulator(), ETagTracker(), FaultInjector()
    with taddons.context(emulator, tracker, injector) as tctx:
        tctx.configure(injector, graph_faults=["etag-mismatch:when=stale"])
        appointment = Appointment(json.dumps({"id": "a"}), current)
        key = ("me", examples.MEETING_ID)
        emulator.state = State(epoch="e").with_appointment(key, appointment)
        read = graph_flow("GET", URL, None, AUTH)
        emulator.request(read)
        tracker.response(read)
        headers = dict(AUTH)
        if if_match is not None:
            headers["If-Match"] = if_match
        if none is not None:
            headers["If-None-Match"] = none
        url, body = (JOIN_URL, None) if method == "JOIN" else (URL, BODIES.get(method))
        verb = "GET" if method == "JOIN" else method
        simulated = graph_flow(verb, url, body, headers)
        run_hook([RequestChecks(), emulator], "request", simulated)
        faulted = graph_flow(verb, url, body, headers)
        run_hook([RequestChecks(), tracker, injector], "request", faulted)
    assert simulated.response is not None
    fault_answer = faulted.response.status_code if faulted.response else None
    return simulated.response.status_code == 412, fault_answer == 412


@settings(max_examples=400, deadline=None)
@given(
    method=st.sampled_from(["PUT", "PATCH", "DELETE", "GET", "JOIN"]),
    current=CURRENT_TAGS,
    if_match=FIELDS,
    if_none_match=FIELDS,
)
@example(method="PATCH", current=CURRENT, if_match="abc", if_none_match=None)
@example(method="PATCH", current=CURRENT, if_match='"x", *', if_none_match=None)
@example(method="PUT", current=CURRENT, if_match=None, if_none_match="*")
def test_the_emulator_and_the_stale_etag_fault_never_disagree(
    method, current, if_match, if_none_match
):
    simulated, faulted = verdicts(method, current, if_match, if_none_match)
    assert faulted is simulated
    if method in ("PUT", "PATCH", "DELETE"):
        assert simulated is precondition_fails(if_match, if_none_match, current)
    else:
        assert not simulated  # reads and the live actions are never conditional


@pytest.mark.parametrize("field", ["abc", '"x", *'])
def test_the_issues_two_headers_are_refused_by_both(field):
    assert verdicts("PATCH", CURRENT, field, None) == (True, True)
