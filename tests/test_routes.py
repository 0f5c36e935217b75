"""Which URLs are ours, and how each form is parsed into (operation, owner, meeting id)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from helpers import graph_flow, kiota_url
from hypothesis import given
from hypothesis import strategies as st

from proxy_addons import examples, flows
from proxy_addons.routes import GRAPH_HOSTS, Operation, OwnerKind, Resource, odata_string, parse

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
    url = (
        f"https://{host}/beta/users/{quote(upn, safe='')}/onlineMeetings/"
        f"{quote(meeting, safe='')}/virtualAppointment"
    )
    route = parse("GET", url)
    assert route is not None
    assert route.meeting_id == meeting
    assert route.user == upn.lower()


# --- the URL forms Microsoft's generated SDKs send -----------------------------------------
#
# The request builders' url_template strings for the three live calls, as generated in
# msgraph-sdk 1.65.0 (v1.0) and msgraph-beta-sdk 1.66.0 (beta), under
# users/item/online_meetings/..., communications/online_meetings/..., app/online_meetings/...
# and the online_meetings_with_join_web_url builders. The SDKs build /me calls from the users
# templates with the id "me-token-to-replace", which msgraph's UrlReplaceHandler turns into
# /me before sending: the /me rows are what goes on the wire. The templates are expanded
# below by Kiota's own RequestInformation (kiota-abstractions, std-uritemplate), exactly as the
# SDKs expand them.

SDK_TEMPLATES = [
    f"{{+baseurl}}/{owner}/{meeting}/{action}"
    for owner in ("me", "users/{user%2Did}", "communications", "app")
    for meeting in (
        "onlineMeetings/{onlineMeeting%2Did}",
        "onlineMeetings(joinWebUrl='{joinWebUrl}')",
    )
    for action in (
        "getVirtualAppointmentJoinWebUrl()",
        "sendVirtualAppointmentSms",
        "sendVirtualAppointmentReminderSms",
    )
]
ACTIONS = {
    "getVirtualAppointmentJoinWebUrl()": ("GET", Operation.JOIN_URL),
    "sendVirtualAppointmentSms": ("POST", Operation.SMS),
    "sendVirtualAppointmentReminderSms": ("POST", Operation.REMINDER_SMS),
}
# A real Teams join URL has percent-escapes of its own, slashes, a query and quotes in JSON.
TEAMS_JOIN_URL = (
    "https://teams.microsoft.com/l/meetup-join/19%3ameeting_NzQ1@thread.v2/0"
    "?context=%7b%22Tid%22%3a%22a796be92%22%2c%22Oid%22%3a%22b1%22%7d"
)
UPN = "Grady.Archie@contoso.com"
ODD_MEETING = "MSo+ab/cd=="


def sdk_url(template: str, host: str, version: str, join_web_url: str = TEAMS_JOIN_URL) -> str:
    base = f"https://{host}/{version}"
    return kiota_url(template, base=base, user=UPN, meeting=ODD_MEETING, join_web_url=join_web_url)


@pytest.mark.parametrize("template", SDK_TEMPLATES)
@pytest.mark.parametrize("host", sorted(GRAPH_HOSTS))
@pytest.mark.parametrize("version", ["beta", "v1.0"])
def test_every_sdk_template_is_ours_with_the_plain_forms_fields(template, host, version):
    method, operation = ACTIONS[template.rsplit("/", 1)[1]]
    route = parse(method, sdk_url(template, host, version))
    assert route is not None
    assert (route.host, route.version, route.method, route.operation) == (
        host,
        version,
        method,
        operation,
    )
    owner = template.split("/")[1]
    assert route.owner == {"users": f"users/{UPN.lower()}"}.get(owner, owner)
    if "joinWebUrl" in template:
        assert (route.meeting_id, route.join_web_url) == (None, TEAMS_JOIN_URL)
    else:
        assert (route.meeting_id, route.join_web_url) == (ODD_MEETING, None)
    plain = template.replace("{+baseurl}", f"https://{host}/{version}").replace("()", "")
    plain = plain.replace("{user%2Did}", UPN).replace("{onlineMeeting%2Did}", "MSo%2Bab%2Fcd%3D%3D")
    plain = plain.replace("{joinWebUrl}", quote(TEAMS_JOIN_URL, safe=""))
    assert parse(method, plain) == route  # the documented spelling is the same route


JOIN = "https://graph.microsoft.com/v1.0/me/onlineMeetings/M/getVirtualAppointmentJoinWebUrl"


@pytest.mark.parametrize("call", ["()", "( )", "(\t)", "(%20)", "%28%29", "(%20%09)"])
def test_the_function_call_forms_are_the_plain_function(call):
    route = parse("GET", JOIN + call)
    assert route == parse("GET", JOIN)
    assert route is not None and route.path.endswith("/getvirtualappointmentjoinweburl")


BETA_ME = "https://graph.microsoft.com/beta/me"
SMS_BY_KEY = "/sendvirtualappointmentsms"


@pytest.mark.parametrize(
    "key",
    [
        "joinWebUrl=" + quote(odata_string(TEAMS_JOIN_URL), safe="'"),  # Kiota's encoding
        "joinWebUrl=" + quote(odata_string(TEAMS_JOIN_URL), safe=""),  # quotes encoded too
        "joinWebUrl=" + odata_string(quote(TEAMS_JOIN_URL, safe="/:@")),  # / and : as they are
        "JoinWebUrl = " + quote(odata_string(TEAMS_JOIN_URL), safe="'") + " ",  # case, blanks
    ],
)
def test_each_spelling_of_a_join_url_key_is_the_same_route(key):
    route = parse("POST", f"{BETA_ME}/onlineMeetings({key})/sendVirtualAppointmentSms")
    assert route is not None
    assert route.join_web_url == TEAMS_JOIN_URL
    assert route.path == (
        f"/beta/me/onlinemeetings(joinweburl={odata_string(TEAMS_JOIN_URL)}){SMS_BY_KEY}"
    )


BY_KEY = "{+baseurl}/communications/onlineMeetings(joinWebUrl='{joinWebUrl}')"


def test_quotes_inside_the_key_doubled_as_odata_escapes_them_or_alone_as_kiota_sends_them():
    base = "https://graph.microsoft.com/beta/communications/onlineMeetings"
    doubled = parse("GET", f"{base}(joinWebUrl='it''s%20here')/getVirtualAppointmentJoinWebUrl")
    template = BY_KEY + "/getVirtualAppointmentJoinWebUrl()"
    kiota = parse("GET", sdk_url(template, "graph.microsoft.com", "beta", "it's here"))
    assert doubled is not None and doubled.join_web_url == "it's here"
    assert doubled == kiota
    assert "(joinweburl='it''s here')" in doubled.path


def test_an_unencoded_join_url_is_decoded_once_as_graph_does():
    unencoded = TEAMS_JOIN_URL.split("?")[0]  # a raw "?" would start the query
    route = parse(
        "GET",
        f"{BETA_ME}/onlineMeetings(joinWebUrl='{unencoded}')/getVirtualAppointmentJoinWebUrl()",
    )
    assert route is not None
    assert route.join_web_url == unencoded.replace("%3a", ":")


def test_the_tenant_wide_owners_are_owners_of_their_own():
    meeting = "onlineMeetings/M/getVirtualAppointmentJoinWebUrl()"
    communications = parse("GET", f"https://graph.microsoft.com/beta/communications/{meeting}")
    app = parse("GET", f"https://graph.microsoft.com/beta/app/{meeting}")
    me = parse("GET", f"https://graph.microsoft.com/beta/me/{meeting}")
    assert communications is not None and app is not None and me is not None
    assert (communications.owner, communications.owner_kind) == (
        "communications",
        OwnerKind.COMMUNICATIONS,
    )
    assert (app.owner, app.user) == ("app", None)
    assert len({communications.key, app.key, me.key}) == 3


@pytest.mark.parametrize(
    "url",
    [
        # actions and navigation properties take no parameter list
        "https://graph.microsoft.com/beta/me/onlineMeetings/M/sendVirtualAppointmentSms()",
        "https://graph.microsoft.com/beta/me/onlineMeetings/M/virtualAppointment()",
        # the function takes no parameters
        "https://graph.microsoft.com/beta/me/onlineMeetings/M/getVirtualAppointmentJoinWebUrl(x=1)",
        "https://graph.microsoft.com/beta/me/onlineMeetings/M/getVirtualAppointmentJoinWebUrl(",
        # the retired resource only ever lived under /me and /users/{id}, by id
        "https://graph.microsoft.com/beta/communications/onlineMeetings/M/virtualAppointment",
        "https://graph.microsoft.com/beta/app/onlineMeetings/M/virtualAppointment",
        "https://graph.microsoft.com/beta/me/onlineMeetings(joinWebUrl='u')/virtualAppointment",
        # no other key, no empty key, no key and id together
        "https://graph.microsoft.com/beta/me/onlineMeetings(id='u')/getVirtualAppointmentJoinWebUrl",
        "https://graph.microsoft.com/beta/me/onlineMeetings(joinWebUrl='')/sendVirtualAppointmentSms",
        "https://graph.microsoft.com/beta/me/onlineMeetings(joinWebUrl=u)/sendVirtualAppointmentSms",
        "https://graph.microsoft.com/beta/me/onlineMeetings(joinWebUrl='u')/M/sendVirtualAppointmentSms",
        "https://graph.microsoft.com/beta/communications/users/u/onlineMeetings/M/sendVirtualAppointmentSms",
        "https://graph.microsoft.com/beta/app/x/onlineMeetings/M/sendVirtualAppointmentSms",
    ],
)
def test_other_parenthesised_and_owner_forms_are_not_ours(url):
    assert parse("POST", url) is None
    assert parse("GET", url) is None


@given(join_web_url=st.text(min_size=1, max_size=60))
def test_any_join_url_round_trips_through_kiotas_expansion_and_odata_escaping(join_web_url):
    template = BY_KEY + "/sendVirtualAppointmentSms"
    kiota = parse("POST", sdk_url(template, "graph.microsoft.com", "v1.0", join_web_url))
    escaped = quote(odata_string(join_web_url), safe="'")
    odata = parse(
        "POST",
        f"https://graph.microsoft.com/v1.0/communications/onlineMeetings(joinWebUrl={escaped})"
        "/sendVirtualAppointmentSms",
    )
    assert odata is not None and odata.join_web_url == join_web_url
    if "''" not in join_web_url:  # Kiota does not double quotes: two in a row read as one
        assert kiota == odata


# --- the same forms as the proxy parses them: from the request's parts, not its URL --------

SPELLINGS = [
    *(
        (ACTIONS[t.rsplit("/", 1)[1]][0], sdk_url(t, "graph.microsoft.com", "beta"))
        for t in SDK_TEMPLATES
    ),
    *(("GET", JOIN + call) for call in ["()", "( )", "(%20)", "%28%29", "(%20%09)"]),
    ("POST", f"{BETA_ME}/onlineMeetings(joinWebUrl='it''s%20here')/sendVirtualAppointmentSms"),
    (
        "GET",
        f"{BETA_ME}/onlineMeetings(joinWebUrl='{TEAMS_JOIN_URL.split('?')[0]}')/getVirtualAppointmentJoinWebUrl()",
    ),
    (
        "GET",
        f"https://graph.microsoft.us/v1.0/users/{quote(UPN)}/onlineMeetings/M/virtualAppointment?$select=id",
    ),
]


@pytest.mark.parametrize(("method", "url"), SPELLINGS)
@pytest.mark.parametrize("host_header", [False, True])
def test_the_proxy_parses_every_form_from_the_requests_parts_as_from_its_url(
    method, url, host_header
):
    flow = graph_flow(method, url)
    if host_header:  # as a client sends it through a proxy: any case, maybe a port
        flow.request.headers["Host"] = f"{flow.request.host.upper()}:443"
    route = flows.route_of(flow)
    assert route is not None
    assert route == parse(method, url) == parse(method, flow.request.pretty_url)


def test_a_fragment_in_the_request_target_hides_what_follows_it_as_in_the_url():
    flow = graph_flow("GET", examples.ME_URL)
    flow.request.path += "#frag?$select=id"  # a raw request line; clients never send one
    assert (
        flows.route_of(flow)
        == parse("GET", flow.request.pretty_url)
        == parse("GET", examples.ME_URL)
    )
