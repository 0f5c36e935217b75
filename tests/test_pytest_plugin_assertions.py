"""The test author's tools in the pytest plugin, used as users use them (fresh pytest processes
with pytester, real HTTPS clients through the real session proxy): assertions on what was
called, assert_all_played, and minted tokens judged by simulate."""

from __future__ import annotations

import copy

import pytest
import yaml
from test_pytest_plugin import BUNDLED_ME, HEADER, run

from proxy_addons.cassette import examples

pytestmark = pytest.mark.e2e

SECRET = "eyJzZWNyZXQiOiJ0b2tlbiJ9.x.y"  # what an Authorization value must never show as


def put_two_interactions(pytester: pytest.Pytester, relative: str) -> None:
    """The bundled create, then a GET of the same appointment recorded after it."""
    cassette = yaml.safe_load(BUNDLED_ME.read_text())
    get = copy.deepcopy(cassette["interactions"][0])
    get["request"].update(method="GET", body=None)
    get["response"]["status"] = {"code": 200, "message": "OK"}
    cassette["interactions"].append(get)
    path = pytester.path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cassette))


ALL_PLAYED = """
@pytest.mark.graph_vcr(cassette="two.yaml", assert_all_played=True)
def test_marker_leaves_the_get(graph_vcr_env):
    assert create().status_code == 201


@pytest.mark.graph_vcr(cassette="two.yaml", assert_all_played=True)
def test_marker_plays_both(graph_vcr_env):
    assert create().status_code == 201
    assert requests.get(URL, timeout=30).status_code == 200


@pytest.mark.graph_vcr(cassette="two.yaml")
def test_option_leaves_the_get(graph_vcr_env):
    assert create().status_code == 201


@pytest.mark.graph_vcr(cassette="two.yaml", assert_all_played=True)
def test_own_failure_comes_first(graph_vcr_env):
    assert create().status_code == 418


@pytest.mark.graph_vcr(mode="simulate", allow_anonymous=True)
def test_simulate_has_no_cassette_to_use_up(graph_vcr_env):
    assert create().status_code == 201


@pytest.mark.graph_vcr(mode="simulate", assert_all_played=True)
def test_simulate_cannot_assert_all_played(graph_vcr_proxy):
    pass


@pytest.mark.graph_vcr(cassette="two.yaml")
def test_method_reads_what_is_left(graph_vcr_env, graph_vcr_proxy):
    assert create().status_code == 201
    assert [(r.method, r.position) for r in graph_vcr_proxy.unplayed] == [("GET", 1)]
    graph_vcr_proxy.assert_all_played()
"""


def test_assert_all_played_fails_a_test_listing_the_recordings_it_never_used(pytester):
    pytester.makepyfile(test_played=HEADER + ALL_PLAYED)
    put_two_interactions(pytester, "cassettes/test_played/two.yaml")
    url = examples.ME_URL
    result = run(pytester, "-rfE", "-k", "not option")
    result.assert_outcomes(passed=2, failed=3, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_marker_leaves_the_get _*",
            "graph-vcr-proxy: 1 recorded interaction never played (assert_all_played):",
            f"  GET {url} (two.yaml #1)",
            "the calls:",
            f"  1. PUT {url} create 201 replay",
        ]
    )
    result.stdout.fnmatch_lines(["*_ test_own_failure_comes_first _*", "*assert 201 == 418*"])
    assert "never played" not in result.stdout.str().split("test_own_failure_comes_first")[1]
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_simulate_cannot_assert_all_played*",
            "graph_vcr: assert_all_played needs a cassette (mode replay or record)",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ test_method_reads_what_is_left _*",
            "E       AssertionError: graph-vcr-proxy: 1 recorded interaction never played*",
        ]
    )
    # The command-line option asks it of every test that has a cassette, and only of those.
    option = run(pytester, "-rf", "--graph-assert-all-played", "-k", "option or simulate_has")
    option.assert_outcomes(passed=1, failed=1)
    option.stdout.fnmatch_lines(
        [
            "*_ test_option_leaves_the_get _*",
            "graph-vcr-proxy: 1 recorded interaction never played (assert_all_played):",
        ]
    )


ASSERTIONS = """
from proxy_addons.testing.call_assertions import ANY, Selector

SIGNED = {**HEADERS, "Authorization": "Bearer SECRET"}


@pytest.mark.graph_vcr(cassette="two.yaml")
def test_what_was_called_passes(graph_vcr_env, graph_vcr_proxy):
    requests.put(URL, data=BODY, headers=SIGNED, timeout=30)
    requests.get(URL, timeout=30)
    graph_vcr_proxy.assert_called("create", times=1, method="PUT", headers={"authorization": ANY})
    graph_vcr_proxy.assert_called("/beta/me/onlineMeetings/*", times=2)
    graph_vcr_proxy.assert_called(
        "create", json={"appointmentClients": [{"displayName": "Grady Archie"}]}
    )
    graph_vcr_proxy.assert_not_called("delete")
    graph_vcr_proxy.assert_not_called("get", headers={"If-Match": ANY})
    graph_vcr_proxy.assert_called_in_order(["create", "get"])
    graph_vcr_proxy.assert_called_in_order(["create", Selector("get", method="GET")], exact=True)
    assert graph_vcr_proxy.calls[0].headers["Authorization"] == "<redacted>"


@pytest.mark.graph_vcr(cassette="two.yaml")
def test_called_twice(graph_vcr_env, graph_vcr_proxy):
    requests.put(URL, data=BODY, headers=SIGNED, timeout=30)
    graph_vcr_proxy.assert_called("create", times=2)


@pytest.mark.graph_vcr(cassette="two.yaml")
def test_not_called(graph_vcr_env, graph_vcr_proxy):
    requests.put(URL, data=BODY, headers=SIGNED, timeout=30)
    graph_vcr_proxy.assert_not_called("create", json={"externalAppointmentId": "AAMkADKnAAA="})


@pytest.mark.graph_vcr(cassette="two.yaml")
def test_in_order(graph_vcr_env, graph_vcr_proxy):
    requests.put(URL, data=BODY, headers=SIGNED, timeout=30)
    requests.get(URL, timeout=30)
    graph_vcr_proxy.assert_called_in_order(["get", "create"])


@pytest.mark.graph_vcr(mode="simulate", allow_anonymous=True)
def test_writes_conditional(graph_vcr_env, graph_vcr_proxy):
    requests.put(URL, data=BODY, headers=HEADERS, timeout=30)
    etag = requests.get(URL, timeout=30).headers["ETag"]
    requests.patch(URL, json={"externalAppointmentId": "B"}, headers={"If-Match": etag}, timeout=30)
    requests.delete(URL, timeout=30)
    graph_vcr_proxy.assert_writes_conditional()


@pytest.mark.graph_vcr(cassette="two.yaml")
def test_misspelt_operation(graph_vcr_env, graph_vcr_proxy):
    graph_vcr_proxy.assert_not_called("craete")
""".replace("SECRET", SECRET)


def test_each_assertion_fails_with_the_calls_listed_one_per_line(pytester):
    pytester.makepyfile(test_asserts=HEADER + ASSERTIONS)
    put_two_interactions(pytester, "cassettes/test_asserts/two.yaml")
    url = examples.ME_URL
    result = run(pytester, "-rf")
    result.assert_outcomes(passed=1, failed=5)
    result.stdout.fnmatch_lines(
        [
            "*_ test_called_twice _*",
            "E       AssertionError: expected create to be called 2 times, it was called once; "
            "the calls (> selected):",
            f"E       > 1. PUT {url} create 201 replay",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ test_not_called _*",
            "E       AssertionError: expected create "
            "json={'externalAppointmentId': 'AAMkADKnAAA='} not to be called, it was called once; "
            "the calls (> selected):",
            f"E       > 1. PUT {url} create 201 replay",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ test_in_order _*",
            "E       AssertionError: expected calls in this order: get, create; found the first 1, "
            "then no create after them; the calls (> matched in order):",
            f"E         1. PUT {url} create 201 replay",
            f"E       > 2. GET {url} get 200 replay",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ test_writes_conditional _*",
            "E       AssertionError: expected every PUT, PATCH and DELETE to carry If-Match; "
            "2 did not (> without it):",
            f"E       > 1. PUT {url} create 201 emulator",
            f"E         2. GET {url} get 200 emulator",
            f"E         3. PATCH {url} update 204 emulator",
            f"E       > 4. DELETE {url} delete 204 emulator",
        ]
    )
    result.stdout.fnmatch_lines(["*SelectorError: graph-vcr-proxy: unknown operation 'craete'*"])
    assert SECRET not in result.stdout.str()  # the credential reached no report


TOKENS = """
import httpx


def put_with(token):
    headers = {**HEADERS, "Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=30) as client:  # HTTPS_PROXY and SSL_CERT_FILE: graph_vcr_env
        return client.put(URL, content=BODY, headers=headers)


@pytest.mark.graph_vcr(mode="simulate")
def test_minted_tokens(graph_vcr_env, graph_vcr_proxy, graph_vcr_token):
    under = put_with(graph_vcr_token(scopes=["OnlineMeetings.Read"]))
    assert (under.status_code, under.json()["error"]["code"]) == (403, "Forbidden")
    app = put_with(graph_vcr_token(app=True, roles=["OnlineMeetings.ReadWrite.All"]))
    assert app.status_code == 403
    personal = put_with(graph_vcr_token(personal=True, scopes="OnlineMeetings.ReadWrite"))
    assert personal.status_code == 403
    right = put_with(graph_vcr_token(scopes=["User.Read", "OnlineMeetings.ReadWrite"]))
    assert right.status_code == 201
    assert [c.status for c in graph_vcr_proxy.calls] == [403, 403, 403, 201]


@pytest.mark.graph_vcr(cassette="two.yaml", faults=["permissions"])
def test_minted_tokens_and_the_permissions_fault(graph_vcr_env, graph_vcr_token):
    assert put_with(graph_vcr_token(scopes=["VirtualAppointment.Read"])).status_code == 403
    assert put_with(graph_vcr_token(scopes=["VirtualAppointment.ReadWrite"])).status_code == 201


def test_a_token_microsoft_would_not_issue(graph_vcr_token):
    graph_vcr_token(app=True, scopes=["OnlineMeetings.ReadWrite"])
"""


def test_minted_tokens_are_judged_through_the_plugin_as_microsofts(pytester):
    pytester.makepyfile(test_tokens=HEADER + TOKENS)
    put_two_interactions(pytester, "cassettes/test_tokens/two.yaml")
    result = run(pytester, "-rf")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*TokenError: an app-only token carries roles, not scopes*"])
