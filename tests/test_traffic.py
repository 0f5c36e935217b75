"""The gate's decisions as pure functions: what a flow is, which names must agree, which hosts
the network policy lets through, and which batches hold one of our calls."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy_addons.graph import routes
from proxy_addons.graph.traffic import (
    NetworkPolicy,
    Target,
    Traffic,
    allowed_host,
    authority_host,
    banner_line,
    classify,
    disagreeing_name,
    is_loopback,
    ours_in_batch,
)

OURS = "/me/onlineMeetings/m/virtualAppointment"


@pytest.mark.parametrize(
    ("host", "ours", "expected"),
    [
        ("graph-vcr-proxy.control", False, Traffic.CONTROL),
        ("GRAPH-VCR-PROXY.control.", False, Traffic.CONTROL),
        ("graph.microsoft.com", True, Traffic.OURS),
        ("graph.microsoft.com", False, Traffic.GRAPH),
        ("Graph.Microsoft.Com.", False, Traffic.GRAPH),
        ("dod-graph.microsoft.us", False, Traffic.GRAPH),
        ("microsoftgraph.chinacloudapi.cn", False, Traffic.GRAPH),
        ("example.org", False, Traffic.OTHER),
        ("graph.microsoft.com.example.org", False, Traffic.OTHER),
    ],
)
def test_a_flow_is_classified_by_the_host_it_goes_to(host, ours, expected):
    assert classify(host, ours) is expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("graph.microsoft.com", "graph.microsoft.com"),
        ("GRAPH.microsoft.COM", "graph.microsoft.com"),
        ("graph.microsoft.com.", "graph.microsoft.com"),
        ("graph.microsoft.us.", "graph.microsoft.us"),
        ("graph.microsoft.com..", "graph.microsoft.com"),  # no such DNS name: ours, offline
        ("xgraph.microsoft.com", None),
        ("", None),
    ],
)
def test_graph_host_names_every_spelling_of_a_graph_host_and_nothing_else(host, expected):
    assert routes.graph_host(host) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1.0/$batch", "v1.0"),
        ("/beta/$batch", "beta"),
        ("/BETA/%24Batch", "beta"),
        ("//v1.0//$batch/", "v1.0"),
        ("/v1.0/$batch?x=1", "v1.0"),
        ("/v2.0/$batch", None),
        ("/v1.0/me/$batch", None),
        ("/$batch", None),
    ],
)
def test_is_batch_path_finds_the_version_of_a_json_batch(path, expected):
    assert routes.is_batch_path(path) == expected


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (Target("graph.microsoft.com", "graph.microsoft.com", ("graph.microsoft.com",)), None),
        (Target("graph.microsoft.com.", None, ("GRAPH.microsoft.com",)), None),
        (Target("graph.microsoft.com"), None),
        (Target("graph.microsoft.com", None, ("example.org",)), "example.org"),
        (Target("graph.microsoft.com", None, ("graph.microsoft.com", "x.org")), "x.org"),
        (Target("graph.microsoft.com", "example.org", ("graph.microsoft.com",)), "example.org"),
        (Target("example.org", "graph.microsoft.com", ("example.org",)), "graph.microsoft.com"),
        (Target("graph.microsoft.com", None, ("graph.microsoft.us",)), "graph.microsoft.us"),
        # A name says Graph, the request goes elsewhere: that host may be Graph by another name.
        (Target("203.0.113.7", None, ("graph.microsoft.com",)), "graph.microsoft.com"),
        (Target("example.org", None, ("example.org", "graph.microsoft.us")), "graph.microsoft.us"),
        # Loopback never leaves the machine: a local stand-in of Graph may be called so.
        (Target("127.0.0.1", None, ("graph.microsoft.com",)), None),
        (Target("localhost", "graph.microsoft.com", ("graph.microsoft.com",)), None),
        # No name says Graph: it goes elsewhere, classified so.
        (Target("example.org", "example.org", ("example.net",)), None),
        (Target("graph.microsoft.com", None, ("example.org",), reverse=True), None),
    ],
)
def test_a_name_that_disagrees_with_a_graph_target_is_found(target, expected):
    assert disagreeing_name(target) == expected


@pytest.mark.parametrize(
    ("authority", "host"),
    [
        ("graph.microsoft.com", "graph.microsoft.com"),
        ("graph.microsoft.com:443", "graph.microsoft.com"),
        ("[::1]:8080", "[::1]"),
        ("[::1]", "[::1]"),
        ("example.org:", "example.org"),
        ("a:b", "a:b"),
    ],
)
def test_authority_host_drops_only_the_port(authority, host):
    assert authority_host(authority) == host


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST.", "::ffff:127.0.0.1"],
)
def test_loopback_is_loopback(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["10.0.0.1", "example.org", "localhost.example.org", "::2"])
def test_other_hosts_are_not_loopback(host):
    assert not is_loopback(host)


def test_the_default_policy_lets_everything_through_and_says_so():
    policy = NetworkPolicy.of(False, [])
    assert policy.allows("graph.microsoft.com") and policy.allows("example.org")
    assert banner_line(policy) == "network: other traffic passes untouched"


def test_a_blocking_policy_lets_through_loopback_and_the_allowed_hosts_only():
    policy = NetworkPolicy.of(True, ["Example.ORG.", "2001:DB8::1", "example.org"])
    assert policy.allowed == ("example.org", "2001:db8::1")
    assert [policy.allows(h) for h in ("example.org.", "[2001:db8:0::1]", "127.0.0.2")] == [
        True,
        True,
        True,
    ]
    assert not policy.allows("graph.microsoft.com") and not policy.allows("sub.example.org")
    assert banner_line(policy) == "network: blocked except loopback, example.org, 2001:db8::1"


@pytest.mark.parametrize("value", ["", "http://example.org", "example.org:443", "a b", "a..b", "/"])
def test_an_allowed_host_must_be_a_host(value):
    with pytest.raises(ValueError, match="--allow-host takes a host name or an IP address"):
        allowed_host(value)


def test_allowed_hosts_without_blocking_are_refused():
    with pytest.raises(ValueError, match="only with --block-network"):
        NetworkPolicy.of(False, ["example.org"])


@pytest.mark.parametrize(
    "url",
    [
        OURS,
        OURS.lstrip("/"),
        OURS + "?$select=id",
        "https://graph.microsoft.com/v1.0" + OURS,
        "/users/u-1/onlineMeetings/m/virtualAppointment",
    ],
)
def test_a_batch_entry_that_is_one_of_our_calls_is_found(url):
    document = {"requests": [{"id": "1", "url": "/me"}, {"id": 2, "method": "PATCH", "url": url}]}
    found = ours_in_batch("graph.microsoft.com", "v1.0", document)
    assert found is not None and (found.id, found.method, found.url) == ("2", "PATCH", url)


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        "x",
        {"requests": None},
        {"requests": [1, "x", None, {"url": 5}, {"id": "1"}, {"url": "/me/events"}]},
    ],
)
def test_a_batch_without_our_calls_is_none(document):
    assert ours_in_batch("graph.microsoft.com", "beta", document) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@given(
    st.dictionaries(
        st.sampled_from(["requests", "x"]),
        st.lists(st.dictionaries(st.sampled_from(["id", "method", "url"]), json_values)),
    )
    | json_values
)
def test_reading_a_batch_never_raises_on_any_json(document):
    json.dumps(document)  # a JSON document, as the body parser gives
    ours_in_batch("graph.microsoft.com", "v1.0", document)
