"""Which URLs are ours, and how each form is parsed into (operation, owner, meeting id)."""

from __future__ import annotations

import functools
import time
from urllib.parse import quote

import pytest
from helpers import graph_flow, kiota_url
from hypothesis import given
from hypothesis import strategies as st

from proxy_addons.addons import flows
from proxy_addons.cassette import examples
from proxy_addons.graph.routes import (
    ALLOWED_METHODS,
    GRAPH_HOSTS,
    LIVE,
    VERSIONS,
    Operation,
    OwnerKind,
    Resource,
    graph_host,
    is_batch_path,
    odata_string,
    parse,
    parse_parts,
)

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
        "https://graph.microsoft.com/beta/me/onlineMeetings(ids='u')/getVirtualAppointmentJoinWebUrl",
        "https://graph.microsoft.com/beta/me/onlineMeetings('')/getVirtualAppointmentJoinWebUrl",
        "https://graph.microsoft.com/beta/me/onlineMeetings(u)/getVirtualAppointmentJoinWebUrl",
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


# --- every spelling Graph accepts is the plain spelling's route (issue 16) -----------------
#
# Each row: a spelling, the operation it is, and the plain spelling whose key it must share.
# "{v}" is the version as the row is run (v1.0 and beta), "{V}" the same version spelled
# oddly (case, percent-encodings), "{h}" the host as the row is run on each of the clouds.

ODD_VERSION = {"v1.0": "V1%2e0", "beta": "%62ETA"}
M = "MSo%2Bab%2Fcd%3D%3D"  # a meeting id with an encoded slash: one id, MSo+ab/cd==
J = quote(TEAMS_JOIN_URL, safe="")
BY_JOIN_URL = f"onlineMeetings(joinWebUrl='{J}')"
ME_VA = f"/{{v}}/me/onlineMeetings/{M}/virtualAppointment"
GUID_VA = f"/{{v}}/users/{GUID}/onlineMeetings/{M}/virtualAppointment"
UPN_VA = f"/{{v}}/users/grady.archie%40contoso.com/onlineMeetings/{M}/virtualAppointment"
SMS = f"/{{v}}/me/onlineMeetings/{M}/sendVirtualAppointmentSms"
REMINDER = f"/{{v}}/users/{GUID}/onlineMeetings/{M}/sendVirtualAppointmentReminderSms"
COMM_JOIN = f"/{{v}}/communications/onlineMeetings/{M}/getVirtualAppointmentJoinWebUrl"
APP_SMS = f"/{{v}}/app/onlineMeetings/{M}/sendVirtualAppointmentSms"
PLAIN_M = "/{v}/me/onlineMeetings/M/virtualAppointment"
KEY_SMS = f"/{{v}}/me/{BY_JOIN_URL}/sendVirtualAppointmentSms"
KEY_JOIN = f"/{{v}}/app/{BY_JOIN_URL}/getVirtualAppointmentJoinWebUrl"
C, G, U, D = Operation.CREATE, Operation.GET, Operation.UPDATE, Operation.DELETE
METHODS = {
    C: "PUT",
    G: "GET",
    U: "PATCH",
    D: "DELETE",
    Operation.JOIN_URL: "GET",
    Operation.SMS: "POST",
    Operation.REMINDER_SMS: "POST",
}

SPELLED = [
    # OData key parentheses, quotes inside doubled, on the meeting and on the user
    ("/{v}/me/onlineMeetings('MSo+ab%2Fcd==')/virtualAppointment", C, ME_VA),
    ("/{v}/me/onlineMeetings('MSo+ab/cd==')/virtualAppointment", G, ME_VA),
    ("/{v}/me/onlineMeetings%28%27MSo%2Bab%2Fcd%3D%3D%27%29/virtualAppointment", U, ME_VA),
    ("/{v}/me/onlineMeetings(id='MSo+ab%2Fcd==')/virtualAppointment", D, ME_VA),
    ("/{v}/me/onlineMeetings( ID = 'MSo+ab%2Fcd==' )/virtualAppointment", G, ME_VA),
    (
        "/{v}/me/onlineMeetings('it''s')/virtualAppointment",
        G,
        "/{v}/me/onlineMeetings/it's/virtualAppointment",
    ),
    (
        "/{v}/me/onlineMeetings(%27it%27%27s%27)/virtualAppointment",
        G,
        "/{v}/me/onlineMeetings/it%27s/virtualAppointment",
    ),
    (f"/{{v}}/users('{GUID}')/onlineMeetings/{M}/virtualAppointment", C, GUID_VA),
    (
        f"/{{v}}/users(id='{GUID.upper()}')/onlineMeetings('MSo+ab%2Fcd==')/virtualAppointment",
        G,
        GUID_VA,
    ),
    (
        f"/{{v}}/users(%27Grady.Archie@contoso.com%27)/onlineMeetings/{M}/virtualAppointment",
        U,
        UPN_VA,
    ),
    (
        "/{v}/communications/onlineMeetings('MSo+ab%2Fcd==')/getVirtualAppointmentJoinWebUrl()",
        Operation.JOIN_URL,
        COMM_JOIN,
    ),
    ("/{v}/app/onlineMeetings('MSo+ab%2Fcd==')/sendVirtualAppointmentSms", Operation.SMS, APP_SMS),
    (
        f"/{{v}}/users('{GUID}')/onlineMeetings('MSo+ab%2Fcd==')/sendVirtualAppointmentReminderSms",
        Operation.REMINDER_SMS,
        REMINDER,
    ),
    # the live calls qualified by namespace (any case) or by the schema's alias "graph"
    (f"/{{v}}/me/onlineMeetings/{M}/microsoft.graph.sendVirtualAppointmentSms", Operation.SMS, SMS),
    (f"/{{v}}/me/onlineMeetings/{M}/Microsoft.Graph.SendVirtualAppointmentSms", Operation.SMS, SMS),
    (f"/{{v}}/me/onlineMeetings/{M}/graph.sendVirtualAppointmentSms", Operation.SMS, SMS),
    (
        f"/{{v}}/users/{GUID}/onlineMeetings/{M}/microsoft.graph.sendVirtualAppointmentReminderSms",
        Operation.REMINDER_SMS,
        REMINDER,
    ),
    (
        f"/{{v}}/communications/onlineMeetings/{M}/microsoft.graph.getVirtualAppointmentJoinWebUrl()",
        Operation.JOIN_URL,
        COMM_JOIN,
    ),
    (
        f"/{{v}}/communications/onlineMeetings/{M}/MICROSOFT.GRAPH.getVirtualAppointmentJoinWebUrl",
        Operation.JOIN_URL,
        COMM_JOIN,
    ),
    (
        f"/{{v}}/communications/onlineMeetings/{M}/microsoft%2Egraph%2EgetVirtualAppointmentJoinWebUrl%28%29",
        Operation.JOIN_URL,
        COMM_JOIN,
    ),
    (f"/{{v}}/app/onlineMeetings/{M}/graph.sendVirtualAppointmentSms", Operation.SMS, APP_SMS),
    (f"/{{v}}/me/{BY_JOIN_URL}/microsoft.graph.sendVirtualAppointmentSms", Operation.SMS, KEY_SMS),
    (
        f"/{{v}}/app/{BY_JOIN_URL}/graph.getVirtualAppointmentJoinWebUrl( )",
        Operation.JOIN_URL,
        KEY_JOIN,
    ),
    # dot segments, removed as RFC 3986 5.2.4 says, %2e being a dot; empty segments
    (f"/{{v}}/me/onlineMeetings/{M}/./virtualAppointment", C, ME_VA),
    (f"/{{v}}/me/onlineMeetings/{M}/x/../virtualAppointment", G, ME_VA),
    (f"/{{v}}/me/onlineMeetings/{M}/%2e/virtualAppointment", U, ME_VA),
    (f"/{{v}}/me/onlineMeetings/{M}/x/%2E%2e/virtualAppointment", D, ME_VA),
    (f"/{{v}}/me/onlineMeetings/{M}/virtualAppointment/.", G, ME_VA),
    (f"/./../{{v}}/me/../me/onlineMeetings/{M}/virtualAppointment", G, ME_VA),
    (f"/{{v}}/users/x/../{GUID}/onlineMeetings/{M}/virtualAppointment", G, GUID_VA),
    (
        f"/{{v}}/users/{GUID}/onlineMeetings/{M}/a/b/../../sendVirtualAppointmentReminderSms",
        Operation.REMINDER_SMS,
        REMINDER,
    ),
    (f"//{{v}}//me//onlineMeetings//{M}//virtualAppointment//", C, ME_VA),
    (f"/{{v}}/me/./{BY_JOIN_URL}//x/../sendVirtualAppointmentSms", Operation.SMS, KEY_SMS),
    # percent-encodings and case of fixed segments; an id's encodings in either hex case
    (f"/{{V}}/%6De/%6FnlineMeetings/{M}/%76irtual%41ppointment", C, ME_VA),
    (f"/{{V}}/ME/ONLINEMEETINGS/{M}/VIRTUALAPPOINTMENT", G, ME_VA),
    (f"/{{v}}/Users/{GUID.upper()}/OnlineMeetings/{M}/virtualappointment", G, GUID_VA),
    (f"/{{v}}/%55SERS/Grady.Archie@Contoso.com/onlineMeetings/{M}/virtualAppointment", G, UPN_VA),
    ("/{v}/me/onlineMeetings/MSo%2bab%2fcd%3d%3d/virtualAppointment", G, ME_VA),
    (
        f"/{{V}}/%43ommunications/onlineMeetings/{M}/getVirtualAppointmentJoinWebUrl",
        Operation.JOIN_URL,
        COMM_JOIN,
    ),
    (f"/{{V}}/APP/onlineMeetings/{M}/sendVirtualAppointmentSms", Operation.SMS, APP_SMS),
    # casts to the type a segment already has
    (f"/{{v}}/me/onlineMeetings/{M}/microsoft.graph.onlineMeeting/virtualAppointment", G, ME_VA),
    (f"/{{v}}/me/onlineMeetings/graph.onlineMeeting/{M}/virtualAppointment", G, ME_VA),
    (f"/{{v}}/users/{GUID}/microsoft.graph.user/onlineMeetings/{M}/virtualAppointment", G, GUID_VA),
    (
        "/{v}/me/onlineMeetings('MSo+ab%2Fcd==')/microsoft.graph.onlineMeeting/virtualAppointment",
        G,
        ME_VA,
    ),
    # what a server might read more loosely than Graph documents: ours, as the plain call
    (f"/{{v}}/me/onlineMeetings/{M}/virtualAppointment;x=1", G, ME_VA),
    (f"/{{v}}/me;a=1/onlineMeetings;b/{M}/virtualAppointment", G, ME_VA),
    (f"/{{v}}/me/onlineMeetings/{M}/virtualAppointment%00.json", G, ME_VA),
    (f"/{{v}}/me/onlineMeetings/{M}/%20virtualAppointment%09", G, ME_VA),
    (f"/{{v}}/me/onlineMeetings/{M}/virtualAppointment%3F$select=id", G, ME_VA),
    (f"/{{v}}/me/onlineMeetings/{M}/%u0076irtualAppointment", G, ME_VA),
    (f"/{{v}}/me/onlineMeetings/{M}/virtualAppointment.", G, ME_VA),
    (f"/{{v}}/me/onlineMeetings%2E%20/{M}/virtualAppointment%20.%20", G, ME_VA),
    (f"/{{v}}/me/onlineMeetings/{M}/v%C4%B1rtualAppointment", G, ME_VA),  # dotless i
    (f"/{{v}}/me/onlineMeetings/{M}/%EF%BD%96irtualAppointment", G, ME_VA),  # fullwidth v
    # an encoded slash or backslash taken for a separator, where no other reading is ours
    ("/{v}/me%2FonlineMeetings%2FM%2FvirtualAppointment", G, PLAIN_M),
    ("/{v}/me/onlineMeetings/M%5CvirtualAppointment", G, PLAIN_M),
    ("/{v}/me%5c..%5cme/onlineMeetings/M/virtualAppointment", G, PLAIN_M),
]


def _spelled_url(path: str, host: str, version: str) -> str:
    return f"https://{host}" + path.format(v=version, V=ODD_VERSION[version])


@pytest.mark.parametrize(("spelling", "operation", "plain"), SPELLED)
@pytest.mark.parametrize("host", sorted(GRAPH_HOSTS))
@pytest.mark.parametrize("version", ["v1.0", "beta"])
def test_every_spelling_graph_accepts_is_the_plain_spellings_route(
    spelling, operation, plain, host, version
):
    method = METHODS[operation]
    route = parse(method, _spelled_url(spelling, host, version))
    expected = parse(method, _spelled_url(plain, host, version))
    assert expected is not None and expected.operation is operation
    assert route is not None and route.key == expected.key


@pytest.mark.parametrize(("spelling", "operation", "plain"), SPELLED)
def test_the_proxy_reads_every_spelling_from_the_requests_parts_as_from_its_url(
    spelling, operation, plain
):
    url = _spelled_url(spelling, "graph.microsoft.us", "beta")
    flow = graph_flow(METHODS[operation], url)
    flow.request.headers["Host"] = "GRAPH.Microsoft.US.:443"  # any case, the FQDN's dot, a port
    route = flows.route_of(flow)
    assert route is not None and route == parse(METHODS[operation], url)


@pytest.mark.parametrize(
    "host",
    [
        "graph.microsoft.com.",
        "GRAPH.MICROSOFT.COM.",
        "Graph.Microsoft.Com:443",
        "graph.microsoft.com.:8443",
    ],
)
def test_the_fully_qualified_host_in_any_case_is_the_graph_host(host):
    route = parse("PUT", examples.ME_URL.replace("graph.microsoft.com", host))
    assert route is not None and route.key == parse("PUT", examples.ME_URL).key


NEAR_MISSES = [
    "/{v}/me/onlineMeetings/M/virtualAppointments",
    "/{v}/me/onlineMeetings/M/virtualAppointment/extra",
    "/{v}/me/onlineMeetings/M/virtualAppointment/$value",
    "/{v}/me/onlineMeetings/M/x/virtualAppointment",
    "/{v}/me/onlineMeetings/M/.../virtualAppointment",
    "/{v}/me/onlineMeetings/M/../virtualAppointment",  # the dot segment takes the id away
    "/{v}/me/onlineMeetings/M/%2e%2e/virtualAppointment",
    "/{v}/me/onlineMeetings/M/virtualAppointment/..",
    "/{v}/me/onlineMeetings/M/virtualAppointment%2F..",
    "/{v}/me/onlineMeetings/M/microsoft.graph.virtualAppointment",  # a type cast, not ours
    "/{v}/me/onlineMeetings/M/graph.virtualAppointment",
    "/{v}/me/onlineMeetings/M/microsoft.graph.sendVirtualAppointmentSms()",
    "/{v}/me/onlineMeetings/M/contoso.sendVirtualAppointmentSms",
    "/{v}/me/onlineMeetings/M/microsoft.graphs.sendVirtualAppointmentSms",
    "/{v}/me/onlineMeetings/M/microsoft.sendVirtualAppointmentSms",
    "/{v}/me/onlineMeetings/M/microsoft.graph.onlineMeeting",
    "/{v}/me/onlineMeetings/M/microsoft.graph.event/virtualAppointment",
    "/{v}/me/onlineMeetings('a')/b('c')/sendVirtualAppointmentSms",
    "/{v}/me/onlineMeetings('a'b')/virtualAppointment",  # a quote inside not doubled
    "/{v}/me/onlineMeetings('M')('N')/virtualAppointment",
    "/{v}/me/onlineMeetings(name='M')/virtualAppointment",
    "/{v}/me/onlineMeetings('M')/N/virtualAppointment",
    "/{v}/me/onlineMeetings/virtualAppointment",
    "/{v}/me/onlineMeeting/M/virtualAppointment",
    "/{v}/me/onlineMeetings%20x/M/virtualAppointment",
    "/{v}/me/events/M/virtualAppointment",
    "/{v}/me/virtualAppointment",
    "/{v}/me/onlineMeetings/M",
    "/{v}/me/onlineMeetings/M/attendanceReports",
    "/{v}/users/onlineMeetings/M/virtualAppointment",
    "/{v}/users('')/onlineMeetings/M/virtualAppointment",
    "/{v}/users('a')/b/onlineMeetings/M/virtualAppointment",
    "/{v}/groups/g/onlineMeetings/M/virtualAppointment",
    "/{v}/communications/onlineMeetings/M/virtualAppointment",
    "/{v}/app/onlineMeetings('M')/virtualAppointment",
    "/{v}/me/microsoft.graph.group/onlineMeetings/M/virtualAppointment",
    "/{v}/$batch",
    "/v2.0/me/onlineMeetings/M/virtualAppointment",
    "/{v}x/me/onlineMeetings/M/virtualAppointment",
    "/me/onlineMeetings/M/virtualAppointment",
    "/{v}/../me/onlineMeetings/M/virtualAppointment",
]


@pytest.mark.parametrize("near_miss", NEAR_MISSES)
@pytest.mark.parametrize("method", ["GET", "POST", "PUT"])
def test_a_near_miss_is_not_ours_in_any_method(near_miss, method):
    assert parse(method, _spelled_url(near_miss, "graph.microsoft.com", "v1.0")) is None


@pytest.mark.parametrize(
    "host",
    [
        "graph.microsoft.com.evil.test",
        "evil.test",
        "graph.microsoft.co",
        "graph-microsoft.com",
        "xgraph.microsoft.com",
        "graph.microsoft.com.evil.test.",
    ],
)
def test_another_host_is_not_ours_whatever_the_path(host):
    assert parse("PUT", examples.ME_URL.replace("graph.microsoft.com", host)) is None


def test_an_encoded_query_separator_in_an_id_is_part_of_the_id_not_a_query():
    route = parse("GET", f"{BETA_ME}/onlineMeetings/M%3F%24select%3Did/virtualAppointment")
    assert route is not None
    assert (route.meeting_id, route.query) == ("M?$select=id", ())


@pytest.mark.parametrize(
    ("host", "canonical"),
    [
        ("graph.microsoft.com", "graph.microsoft.com"),
        ("GRAPH.Microsoft.com.", "graph.microsoft.com"),
        ("graph.microsoft.us:443", "graph.microsoft.us"),
        ("dod-graph.microsoft.us.:443", "dod-graph.microsoft.us"),
        ("MICROSOFTGRAPH.CHINACLOUDAPI.CN", "microsoftgraph.chinacloudapi.cn"),
        (" graph.microsoft.com ", "graph.microsoft.com"),
        ("graph%2Emicrosoft.com", "graph.microsoft.com"),
        ("\uff47raph\u3002microsoft\uff0ecom", "graph.microsoft.com"),  # as IDNA maps it
        ("graph.microsoft.com.evil.test", None),
        ("microsoft.com", None),
        ("graph.microsoft.com:x", None),
        ("[::1]:443", None),
        ("", None),
    ],
)
def test_graph_host_names_the_graph_host_any_spelling_would_reach(host, canonical):
    assert graph_host(host) == canonical


@pytest.mark.parametrize(
    ("path", "version"),
    [
        ("/v1.0/$batch", "v1.0"),
        ("/beta/$batch", "beta"),
        ("/V1.0/$BATCH", "v1.0"),
        ("/v1.0/%24batch", "v1.0"),
        ("/beta/%24BATCH/", "beta"),
        ("//beta//$batch", "beta"),
        ("/beta/./x/../$batch", "beta"),
        ("/v1%2E0/%2e/$batch", "v1.0"),
        ("/v1.0/$batch?$x=1", "v1.0"),
        ("/v1.0/$batch;a", "v1.0"),
        ("/v1.0%2F$batch", "v1.0"),
        ("/v1.0/$batch/x", None),
        ("/v1.0/batch", None),
        ("/v2.0/$batch", None),
        ("/$batch", None),
        ("/v1.0/me/$batch", None),
        ("/v1.0/$batch/..", None),
    ],
)
def test_a_batch_path_is_known_in_any_spelling(path, version):
    assert is_batch_path(path) == version


# --- any route, re-spelled at random, is the same route ------------------------------------

UPN_ID = "grady.archie@contoso.com"
OWNERS = ("me", "users-guid", "users-upn", "communications", "app")
RESOURCE_NAMES = {
    Resource.VIRTUAL_APPOINTMENT: "virtualAppointment",
    Resource.JOIN_URL: "getVirtualAppointmentJoinWebUrl",
    Resource.SMS: "sendVirtualAppointmentSms",
    Resource.REMINDER_SMS: "sendVirtualAppointmentReminderSms",
}
METHOD_OF = {resource: methods[0] for resource, methods in ALLOWED_METHODS.items()}


def _respelled_fixed(draw: st.DrawFn, text: str) -> str:
    """``text`` with each character in a random case, percent-encoded or not (either hex case)."""
    out = []
    for char in text:
        char = draw(st.sampled_from([char.lower(), char.upper()]))
        if draw(st.booleans()):
            code = f"{ord(char):02X}"
            char = "%" + draw(st.sampled_from([code, code.lower()]))
        out.append(char)
    return "".join(out)


@st.composite
def respelled_routes(draw: st.DrawFn) -> tuple[str, str, str]:
    """(method, plain URL, the same route re-spelled at random) for a random route."""
    host = draw(st.sampled_from(sorted(GRAPH_HOSTS)))
    version = draw(st.sampled_from(VERSIONS))
    owner = draw(st.sampled_from(OWNERS))
    tenant_wide = owner in ("communications", "app")
    resource = draw(st.sampled_from(sorted(LIVE) if tenant_wide else list(Resource)))
    by_join_url = resource in LIVE and draw(st.booleans())
    meeting = draw(
        st.text(min_size=1, max_size=12).filter(lambda s: s not in (".", ".."))
        if not by_join_url
        else st.sampled_from([TEAMS_JOIN_URL, "it's", "a/b?c=d#e"])
    )
    fixed = functools.partial(_respelled_fixed, draw)

    # the plain spelling, and the re-spelled one as tokens, each one segment
    user = {"users-guid": GUID, "users-upn": UPN_ID}.get(owner)
    plain = [version, "users" if user else owner] + ([quote(user, safe="@")] if user else [])
    spelled = [fixed(version)]
    if user and draw(st.booleans()):
        paren = draw(st.sampled_from(["(", "(id=", "( Id = "]))
        spelled.append(fixed("users" + paren) + odata_string(quote(user.upper())) + fixed(")"))
    elif user:
        spelled += [fixed("users"), draw(st.sampled_from([user, user.upper(), quote(user)]))]
    else:
        spelled.append(fixed(owner))
    encoded = quote(meeting.replace("'", "''") if by_join_url else meeting, safe="")
    if by_join_url:
        plain.append(f"onlineMeetings(joinWebUrl='{encoded}')")
        spelled.append(fixed("onlineMeetings(joinWebUrl=") + f"'{encoded}'" + fixed(")"))
    else:
        plain += ["onlineMeetings", quote(meeting, safe="")]
        if draw(st.booleans()):
            inside = quote(meeting.replace("'", "''"), safe="")
            spelled.append(fixed("onlineMeetings(") + fixed("'") + inside + fixed("')"))
        else:
            spelled += [fixed("onlineMeetings"), quote(meeting, safe="")]
    name = RESOURCE_NAMES[resource]
    plain.append(name)
    qualifier = (
        draw(st.sampled_from(["", "microsoft.graph.", "graph."])) if resource in LIVE else ""
    )
    call = draw(st.sampled_from(["", "()", "( )"])) if resource is Resource.JOIN_URL else ""
    spelled.append(fixed(qualifier + name + call))

    # between any two segments: nothing more, an empty segment, or dot segments
    path = ""
    for token in spelled:
        path += draw(st.sampled_from(["/", "//", "/./", "/x/../", "/%2e/", "/abc/%2E%2e/"])) + token
    path += draw(st.sampled_from(["", "/", "/.", "/x/.."]))
    spelled_host = fixed(host) + draw(st.sampled_from(["", ".", ":443", ".:443"]))
    method = METHOD_OF[resource]
    return (
        method,
        f"https://{host}/" + "/".join(plain),
        f"https://{spelled_host}{path}",
    )


@given(respelled_routes())
def test_any_route_respelled_at_random_is_the_same_route(case):
    method, plain, spelled = case
    expected = parse(method, plain)
    assert expected is not None
    route = parse(method.lower(), spelled)
    assert route is not None and route.key == expected.key


HOSTILE = 50_000  # a long request line; a pattern that backtracks takes minutes on it


@pytest.mark.parametrize(
    "path",
    [
        "/beta/me/onlineMeetings(" + " " * HOSTILE + ")/sendVirtualAppointmentSms",
        "/beta/me/onlineMeetings(" + " " * HOSTILE + "x" + " " * HOSTILE + "/x",
        "/beta/me/onlineMeetings('" + "a')" * HOSTILE + "/sendVirtualAppointmentSms",
        "/beta/me/onlineMeetings/M/x" + " " * HOSTILE + "y",
        "/beta/users(" + " " * HOSTILE + "x/onlineMeetings/M/sendVirtualAppointmentSms",
        "/beta" + "/x/.." * HOSTILE + "/me/onlineMeetings/M/virtualAppointment",
        "/beta/me" + "%2F" * HOSTILE + "/onlineMeetings/M/virtualAppointment",
        "/beta/me/onlineMeetings/M/" + "%u0041" * HOSTILE,
    ],
)
def test_a_hostile_path_is_read_in_linear_time(path):
    started = time.perf_counter()
    parse_parts.__wrapped__("POST", "graph.microsoft.com", path, "")
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("blank", ["\t", "\r", "\n"])
def test_a_tab_or_newline_in_the_path_is_dropped_from_its_parts_as_from_its_url(blank):
    path = f"/beta/me/online{blank}Meetings/M/virtual{blank}Appointment"
    from_parts = parse_parts("GET", "graph.microsoft.com", path, f"$select{blank}=id")
    assert from_parts is not None
    assert from_parts == parse("GET", f"https://graph.microsoft.com{path}?$select{blank}=id")
