"""What a flow is to us and whether it may leave: the gate's decisions, without mitmproxy.

The gate (``gate.py``) asks these pure functions about every flow, from where mitmproxy will
really connect: the host it dials (the ``CONNECT`` authority inside a tunnel, the
absolute-form URL's host, a reverse proxy's target), not the ``Host`` header, which the client
may set to anything. A Graph call hidden behind another name would otherwise leave as "not
ours" to the real Graph.

- :func:`classify`: the control endpoint, one of our operations, other traffic to a Graph
  host, or another host (:class:`Traffic`).
- :func:`disagreeing_name`: a ``Host`` header, ``:authority`` or TLS SNI that names another
  host than the one dialled, when either is Graph's (refused with Graph's 400).
- :class:`NetworkPolicy`: which hosts other traffic may reach (``--block-network``,
  ``--allow-host``); loopback always.
- :func:`ours_in_batch`: the first sub-request of a JSON ``$batch`` that is one of our
  operations (never forwarded where our operations are not).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from proxy_addons.common import control_address
from proxy_addons.graph.routes import graph_host, parse_parts

# Graph's answer when the network policy blocks a request to a Graph host. 403, not a 5xx:
# msgraph-core's retry handler retries 429, 503 and 504, and generic retry policies (Azure
# SDKs', urllib3's usual status lists) retry 502 too; a refusal by policy is final, so it
# must not be retried into a slow failure.
BLOCKED_STATUS = 403
BLOCKED_CODE = "BlockedByNetworkPolicy"
# Every other host's answer when blocked: a gateway that will not pass the request on.
BLOCKED_OTHER_STATUS = 502
# A $batch still holding one of our operations as it is about to leave, where ours never go
# upstream: batching.py serves every batch first, so this is a bug in the chain, loudly.
BATCH_STATUS = 501
BATCH_CODE = "BatchNotServed"
LOOPBACK_NAMES = frozenset({"localhost"})


class Traffic(StrEnum):
    """What a flow is to us, decided once by the gate from where it really goes."""

    CONTROL = "control"  # the control endpoint, served by the proxy itself
    OURS = "ours"  # one of our operations on a Graph host
    GRAPH = "graph"  # any other request to a Graph host
    OTHER = "other"  # a request to any other host


def canonical_host(host: str) -> str:
    """A host as DNS compares it: lowercase, without IPv6 brackets and the trailing dot of an
    absolute name (``graph.microsoft.com.`` is ``graph.microsoft.com``)."""
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name.endswith(".") and name != ".":
        name = name[:-1]
    return name


def authority_host(authority: str) -> str:
    """The host of a ``Host`` header or ``:authority`` value (``host``, ``host:port``,
    ``[v6]:port``), as written."""
    if authority.startswith("["):
        close = authority.find("]")
        return authority[: close + 1] if close > 0 else authority
    name, colon, port = authority.rpartition(":")
    return name if colon and (port.isdigit() or not port) and ":" not in name else authority


def classify(host: str, ours: bool) -> Traffic:
    """What a request to ``host`` (the host dialled) is; ``ours``: its route is one of ours."""
    if canonical_host(host) == control_address.HOST:
        return Traffic.CONTROL
    if ours:
        return Traffic.OURS
    return Traffic.GRAPH if graph_host(host) else Traffic.OTHER


@dataclass(frozen=True)
class Target:
    """Where a request goes (``host``, what mitmproxy dials), the TLS server name it is sent
    with (the client's SNI, which mitmproxy passes on), and the names the request itself
    gives: its ``Host`` headers and HTTP/2's ``:authority`` (hosts only, no port)."""

    host: str
    sni: str | None = None
    authorities: tuple[str, ...] = ()
    reverse: bool = False  # a reverse proxy: the target is the operator's, not the client's


def disagreeing_name(target: Target) -> str | None:
    """The first name the client gave (SNI, then each authority) that is another host than
    the one dialled, when any of them or the dialled host is a Graph host: the connection then
    reaches Graph, or asks for Graph by name, so every name must say the same. None when they
    agree.

    A request that names Graph but goes to another host is refused too: the host it goes to
    may well be Graph under another name (an address of its front door), and replay or
    simulate must never find out. Where the dialled host is loopback and not Graph, the
    request never leaves the machine (a local stand-in of Graph): it is left to its target.
    A reverse proxy's target is fixed by its operator: nothing to compare there.
    """
    if target.reverse:
        return None
    dialled = canonical_host(target.host)
    names = (*((target.sni,) if target.sni else ()), *target.authorities)
    if graph_host(dialled) is None and (
        is_loopback(dialled) or not any(graph_host(n) for n in names)
    ):
        return None
    return next((n for n in names if canonical_host(n) != dialled), None)


def mismatch_message(target: Target, name: str) -> str:
    return (
        f"The request names the host '{name}' but goes to '{target.host}': a Host header, "
        ":authority or TLS server name must name the host the request is sent to."
    )


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (also IPv4-mapped) and ``localhost``: what never leaves the machine."""
    name = canonical_host(host)
    if name in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def host_key(host: str) -> str:
    """A host as the policy compares it: canonical, an IP address in its one written form."""
    name = canonical_host(host)
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _is_host_name(name: str) -> bool:
    return all(label and all(c.isalnum() or c in "-_" for c in label) for label in name.split("."))


def allowed_host(value: str) -> str:
    """A ``--allow-host`` value as the policy compares it; ValueError, with the message a user
    sees, for anything but a host name or an IP address."""
    name = host_key(value)
    if not _is_ip(name) and not _is_host_name(name):
        raise ValueError(
            "--allow-host takes a host name or an IP address (no scheme, port or path), "
            f"not {value!r}"
        )
    return name


@dataclass(frozen=True)
class NetworkPolicy:
    """Which hosts traffic that is not answered here may reach: all of them (the command's
    default), or with ``block`` only loopback and the ``allowed`` hosts."""

    block: bool = False
    allowed: tuple[str, ...] = ()  # canonical, in the order given, no repeats

    @classmethod
    def of(cls, block: bool, allowed: Iterable[str]) -> NetworkPolicy:
        """The policy of the options; ValueError for a host that is not one."""
        hosts = [allowed_host(value) for value in allowed]
        if hosts and not block:
            raise ValueError("--allow-host: only with --block-network")
        return cls(block, tuple(dict.fromkeys(hosts)))

    def allows(self, host: str) -> bool:
        if not self.block or is_loopback(host):
            return True
        return host_key(host) in self.allowed

    def describe(self) -> str:
        """The policy in the words of the start-up banner's ``network:`` line."""
        if not self.block:
            return "other traffic passes untouched"
        return ", ".join(("blocked except loopback", *self.allowed))

    def refusal(self, host: str) -> str:
        """Why a request to ``host`` was not sent: named for the user who must change it."""
        return (
            f"graph-vcr-proxy's network policy blocks {host} (--block-network; let it through "
            f"with --allow-host {canonical_host(host)})"
        )


BANNER_PREFIX = "network: "


def banner_line(policy: NetworkPolicy) -> str:
    return BANNER_PREFIX + policy.describe()


@dataclass(frozen=True)
class SubRequest:
    """A request inside a JSON batch, as its ``requests`` entry names it."""

    id: str
    method: str
    url: str

    def describe(self) -> str:
        return f"sub-request id '{self.id}' ({self.method} {self.url})"


def ours_in_batch(host: str, version: str, document: Any) -> SubRequest | None:
    """The first entry of a batch body's ``requests`` that is one of our operations, read
    leniently: entries that are not objects, or lack a text ``url``, are skipped; whatever
    else the document holds, this never raises."""
    if not isinstance(document, Mapping):
        return None
    entries = document.get("requests")
    if not isinstance(entries, list):
        return None
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("url"), str):
            continue
        method = entry.get("method")
        method = method if isinstance(method, str) and method else "GET"
        if sub_request_is_ours(host, version, method, entry["url"]):
            return SubRequest(str(entry.get("id")), method, entry["url"])
    return None


def sub_request_is_ours(host: str, version: str, method: str, url: str) -> bool:
    """Whether a batch entry's ``url`` (relative to the version, with or without its leading
    slash; an absolute URL read as one) is one of our routes."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme or parts.netloc:
        path, named = parts.path, graph_host(parts.hostname or "") or host
    else:
        path, named = f"/{version}/{parts.path.lstrip('/')}", host
    try:
        return parse_parts(method, named, path, parts.query) is not None
    except Exception:  # a parser bug must not let the batch through
        return True


def batch_message(method: str, url: str) -> str:
    return (
        f"graph-vcr-proxy did not serve the $batch {method} {url}, which holds one of its "
        "operations that this mode never sends upstream (is batching.py in the chain?)"
    )
