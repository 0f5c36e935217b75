"""Which URLs are ours, and how each form is parsed into (operation, owner, meeting id)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy_addons import examples
from proxy_addons.routes import GRAPH_HOSTS, Operation, Resource, parse

MEETING = examples.MEETING_ID
GUID = examples.EXAMPLE_USER


@pytest.mark.parametrize("host", sorted(GRAPH_HOSTS))
@pytest.mark.parametrize("version", ["beta", "v1.0"])
def test_every_host_and_version_is_ours(host, version):
    route = parse("PUT", f"https://{host}/{version}/me/onlineMeetings/{MEETING}/virtualAppointment")
    assert route is not None
    assert (route.host, route.version, route.operation) == (host, version, Operation.CREATE)


@pytest.mark.parametrize(
    ("method", "resource", "operation"),
    [
        ("PUT", "virtualAppointment", Operation.CREATE),
        ("GET", "virtualAppointment", Operation.GET),
        ("PATCH", "virtualAppointment", Operation.UPDATE),
        ("DELETE", "virtualAppointment", Operation.DELETE),
        ("GET", "getVirtualAppointmentJoinWebUrl", Operation.JOIN_URL),
        ("POST", "sendVirtualAppointmentSms", Operation.SMS),
        ("POST", "sendVirtualAppointmentReminderSms", Operation.REMINDER_SMS),
    ],
)
def test_each_method_and_resource_maps_to_its_operation(method, resource, operation):
    route = parse(
        method, f"https://graph.microsoft.com/v1.0/me/onlineMeetings/{MEETING}/{resource}"
    )
    assert route is not None
    assert route.operation is operation


def test_me_and_users_paths_are_different_owners_of_the_same_meeting():
    me = parse("PUT", examples.ME_URL)
    user = parse("PUT", examples.USERS_URL)
    assert me is not None and user is not None
    assert (me.user, me.owner) == (None, "me")
    assert (user.user, user.owner) == (GUID, f"users/{GUID}")
    assert me.meeting_id == user.meeting_id == MEETING
    assert me.key != user.key


def test_upn_with_percent_encoded_at_sign_equals_the_plain_upn():
    encoded = parse(
        "GET",
        f"https://graph.microsoft.com/beta/users/Grady.Archie%40contoso.com/onlineMeetings/{MEETING}"
        "/virtualAppointment",
    )
    plain = parse(
        "GET",
        f"https://graph.microsoft.com/beta/users/grady.archie@contoso.com/onlineMeetings/{MEETING}"
        "/virtualAppointment",
    )
    assert encoded is not None
    assert encoded.user == "grady.archie@contoso.com"
    assert encoded == plain


def test_fixed_segments_and_host_are_case_insensitive_but_the_meeting_id_is_not():
    upper = parse(
        "put",
        f"https://GRAPH.Microsoft.COM/BETA/ME/ONLINEMEETINGS/{MEETING}/VIRTUALAPPOINTMENT",
    )
    assert upper == parse("PUT", examples.ME_URL)
    assert upper is not None and upper.method == "PUT"
    other = parse("PUT", examples.ME_URL.replace(MEETING, MEETING.lower()))
    assert other is not None and other.key != upper.key


def test_percent_encoded_meeting_id_is_decoded_including_an_encoded_slash():
    route = parse(
        "GET",
        "https://graph.microsoft.com/beta/me/onlineMeetings/MSo%2Bab%2Fcd%3D%3D/virtualAppointment",
    )
    assert route is not None
    assert route.meeting_id == "MSo+ab/cd=="
    assert route.path == "/beta/me/onlinemeetings/MSo+ab/cd==/virtualappointment"


def test_trailing_slash_is_the_same_route():
    assert parse("PUT", examples.ME_URL + "/") == parse("PUT", examples.ME_URL)


def test_select_query_is_kept_sorted_with_lowercased_names_so_order_does_not_matter():
    a = parse("GET", examples.ME_URL + "?$select=id,settings&$expand=x")
    b = parse("GET", examples.ME_URL + "?%24EXPAND=x&%24select=id,settings")
    assert a is not None
    assert a.query == (("$expand", "x"), ("$select", "id,settings"))
    assert a == b
    assert a.key != parse("GET", examples.ME_URL).key  # a different query is another request


def test_explicit_default_port_is_the_same_host():
    assert parse("PUT", examples.ME_URL.replace(".com/", ".com:443/")) == parse(
        "PUT", examples.ME_URL
    )


def test_our_url_with_a_method_graph_refuses_is_ours_without_an_operation():
    route = parse("POST", examples.ME_URL)
    assert route is not None
    assert route.resource is Resource.VIRTUAL_APPOINTMENT
    assert route.operation is None


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/beta/me/onlineMeetings/x/virtualAppointment",
        "https://graph.microsoft.com.evil.test/beta/me/onlineMeetings/x/virtualAppointment",
        "https://login.microsoftonline.com/beta/me/onlineMeetings/x/virtualAppointment",
        "https://graph.microsoft.com/v2.0/me/onlineMeetings/x/virtualAppointment",
        "https://graph.microsoft.com/beta/me/onlineMeetings/x",
        "https://graph.microsoft.com/beta/me/onlineMeetings/x/attendanceReports",
        "https://graph.microsoft.com/beta/me/onlineMeetings",
        "https://graph.microsoft.com/beta/me/events/x/virtualAppointment",
        "https://graph.microsoft.com/beta/me/messages",
        "https://graph.microsoft.com/v1.0/users/a/b/onlineMeetings/x/virtualAppointment",
        "https://graph.microsoft.com/beta/groups/g/onlineMeetings/x/virtualAppointment",
        "https://graph.microsoft.com/beta/me/onlineMeetings/x/virtualAppointment/extra",
        "https://graph.microsoft.com/",
        "https://[graph.microsoft.com/beta/me/onlineMeetings/x/virtualAppointment",
        "not a url",
    ],
)
def test_everything_else_is_not_ours(url):
    assert parse("GET", url) is None


@given(
    host=st.sampled_from(sorted(GRAPH_HOSTS)),
    meeting=st.text(min_size=1, max_size=40).filter(lambda s: s.strip("/") == s and s.strip()),
    upn=st.emails(),
)
def test_any_percent_encoded_meeting_id_and_upn_round_trip(host, meeting, upn):
    from urllib.parse import quote

    url = (
        f"https://{host}/beta/users/{quote(upn, safe='')}/onlineMeetings/"
        f"{quote(meeting, safe='')}/virtualAppointment"
    )
    route = parse("GET", url)
    assert route is not None
    assert route.meeting_id == meeting
    assert route.user == upn.lower()
