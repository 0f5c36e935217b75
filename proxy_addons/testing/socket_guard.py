"""Blocking the test process's own network access, as pytest-recording's ``--block-network``.

The plugin's proxy only sees the clients that read the proxy environment. A client that
ignores it (``trust_env=False``, a hand-built transport, a raw socket) would reach the real
network from the test process itself; ``--graph-block-network`` stops that: while a test
runs, ``socket.socket.connect`` and ``connect_ex`` (which asyncio's ``sock_connect`` and every
client library end in) and ``socket.getaddrinfo`` (a name lookup is traffic too, and the only
place that still knows the host's name) refuse every host but loopback, this machine's own
name and the allowed hosts. A refused attempt raises :class:`NetworkBlocked`, a
``RuntimeError`` (not an ``OSError``, which client libraries catch and retry), naming the host
and the option; the guard also remembers it, so that a test whose code swallowed the error
fails all the same.

Standard library only: the pytest process never imports more.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

OPTION = "--graph-block-network"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class NetworkBlocked(RuntimeError):
    """A connection or name lookup the test may not make; ``str()`` names host and option."""


def normal_host(host: str | bytes) -> str:
    """A host as compared: text, lower case, no trailing dot, no IPv6 brackets or zone."""
    text = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
    return text.strip("[]").split("%", 1)[0].rstrip(".").lower()


def blocked_message(blocked: Sequence[str]) -> str:
    """One line naming the first refused ``host:port`` (and how many more), and the way out."""
    more = f" (and {len(blocked) - 1} more)" if len(blocked) > 1 else ""
    return (
        f"graph-vcr-proxy: {OPTION} blocked a connection to {blocked[0]}{more} from the test "
        "process; allow the host with --graph-allowed-hosts or graph_vcr(allowed_hosts=[...])"
    )


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SocketGuard:
    """What one test may reach: loopback, this machine's name, and ``allowed`` hosts."""

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.allowed: set[str] = {normal_host(h) for h in allowed}
        self.allowed.add(normal_host(socket.gethostname()))
        self.resolved: dict[str, str] = {}  # address -> the allowed name it was looked up for
        self.blocked: list[str] = []  # every refused host:port, in order

    def allow(self, hosts: Iterable[str]) -> None:
        self.allowed |= {normal_host(h) for h in hosts}

    def permits(self, host: str) -> bool:
        return is_loopback(host) or host in self.allowed or host in self.resolved

    def refuse(self, host: str, port: Any) -> NetworkBlocked:
        where = f"{host}:{port}" if port is not None else host
        self.blocked.append(where)
        return NetworkBlocked(blocked_message([where]))

    def check_address(self, family: int, address: Any) -> None:
        """Raise :class:`NetworkBlocked` unless ``address`` may be connected to."""
        if family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
            return  # Unix sockets and the like stay on this machine
        host = normal_host(address[0])
        if not self.permits(host):
            raise self.refuse(host, address[1] if len(address) > 1 else None)

    def check_lookup(self, host: Any, port: Any) -> None:
        if host is None:
            return  # the wildcard or loopback address, for a server
        name = normal_host(host)
        if not name or self.permits(name):
            return
        try:
            ipaddress.ip_address(name)
        except ValueError:
            raise self.refuse(name, port) from None
        # A numeric address is not looked up; connect decides on it.

    def remember(self, host: Any, results: list[Any]) -> list[Any]:
        """Addresses an allowed name resolved to may be connected to as that name."""
        name = normal_host(host) if host is not None else ""
        if name and not is_loopback(name) and name in self.allowed:
            for *_, sockaddr in results:
                self.resolved[normal_host(sockaddr[0])] = name
        return results


def _guarded_connect(guard: SocketGuard, original: Callable[..., Any]) -> Callable[..., Any]:
    def connect(sock: socket.socket, address: Any, *args: Any, **kwargs: Any) -> Any:
        guard.check_address(sock.family, address)
        return original(sock, address, *args, **kwargs)

    return connect


@contextlib.contextmanager
def blocking(allowed: Iterable[str] = ()) -> Iterator[SocketGuard]:
    """Refuse every host but loopback and ``allowed`` in this process until the block ends."""
    guard = SocketGuard(allowed)
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        guard.check_lookup(host, port)
        return guard.remember(host, original_getaddrinfo(host, port, *args, **kwargs))

    socket.socket.connect = _guarded_connect(guard, original_connect)  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect(guard, original_connect_ex)  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo
    try:
        yield guard
    finally:
        socket.socket.connect = original_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = original_connect_ex  # type: ignore[method-assign]
        socket.getaddrinfo = original_getaddrinfo
