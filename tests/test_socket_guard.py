"""--graph-block-network's guard: which hosts the test process may reach, and what it says."""

from __future__ import annotations

import re
import socket

import pytest

from proxy_addons.testing.socket_guard import NetworkBlocked, SocketGuard, blocking

V4, V6 = socket.AF_INET, socket.AF_INET6


@pytest.mark.parametrize(
    ("family", "address"),
    [
        (V4, ("127.0.0.1", 80)),
        (V4, ("127.5.6.7", 80)),
        (V6, ("::1", 80, 0, 0)),
        (V4, ("localhost", 80)),
        (V4, ("LOCALHOST.", 80)),
        (V4, ("192.0.2.7", 443)),  # allowed below
        (socket.AF_UNIX, "/tmp/some.sock"),
    ],
)
def test_loopback_unix_sockets_and_allowed_hosts_may_be_reached(family, address):
    SocketGuard(["192.0.2.7"]).check_address(family, address)


@pytest.mark.parametrize(
    ("family", "address", "named"),
    [
        (V4, ("192.0.2.8", 443), "192.0.2.8:443"),
        (V6, ("2001:db8::1", 443, 0, 0), "2001:db8::1:443"),
        (V4, ("graph.microsoft.com", 443), "graph.microsoft.com:443"),
    ],
)
def test_every_other_host_is_refused_naming_host_and_option(family, address, named):
    guard = SocketGuard(["192.0.2.7"])
    with pytest.raises(
        NetworkBlocked, match=re.escape(f"--graph-block-network blocked a connection to {named}")
    ):
        guard.check_address(family, address)
    assert guard.blocked == [named]


def test_a_name_lookup_of_another_host_is_refused_before_any_packet():
    guard = SocketGuard()
    with pytest.raises(NetworkBlocked, match=re.escape("graph.microsoft.com:443")):
        guard.check_lookup("Graph.Microsoft.com.", 443)
    guard.check_lookup("192.0.2.1", 443)  # numbers are not looked up: connect decides
    guard.check_lookup(None, 0)  # the wildcard address, for a server


def test_addresses_an_allowed_name_resolved_to_are_that_name():
    guard = SocketGuard()
    guard.allow(["api.example"])
    guard.remember("api.example", [(V4, 1, 6, "", ("192.0.2.9", 443))])
    guard.check_address(V4, ("192.0.2.9", 443))
    with pytest.raises(NetworkBlocked):
        guard.check_address(V4, ("192.0.2.10", 443))


def test_the_patches_last_only_as_long_as_the_block():
    original = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
    with blocking() as guard, socket.socket() as sock:
        with pytest.raises(NetworkBlocked):
            sock.connect(("192.0.2.1", 9))
        with pytest.raises(NetworkBlocked):
            sock.connect_ex(("192.0.2.1", 9))
        with pytest.raises(NetworkBlocked):
            socket.getaddrinfo("graph.microsoft.com", 443)
    assert len(guard.blocked) == 3
    assert (socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo) == original
