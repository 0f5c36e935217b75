"""Which URLs are ours: the virtualAppointment paths and its live replacement actions.

A URL is parsed into a small frozen :class:`Route` (operation, owner, meeting) or ``None``.
``None`` means the proxy must leave the flow alone entirely. Graph treats path segments
case-insensitively and accepts percent-encoded ids, so the parser does too; the route's
``key`` is the normalised form that cassette matching uses. Nothing here knows mitmproxy.

Every spelling Microsoft's generated SDKs (Kiota: msgraph-sdk, msgraph-beta-sdk) send is the
same route as the plain one the docs show, so a request recorded in one spelling replays in
another:

- the function called OData-style, ``getVirtualAppointmentJoinWebUrl()`` (also ``( )``);
- the live actions under the tenant-wide owners ``/communications/onlineMeetings/{id}`` and
  ``/app/onlineMeetings/{id}``, besides ``/me`` and ``/users/{id}``;
- the meeting addressed by alternate key, ``onlineMeetings(joinWebUrl='{url}')``, with the
  URL percent-encoded (as Kiota sends it) or not, and quotes inside doubled (OData's escape).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qsl, unquote, urlsplit

GRAPH_HOSTS = frozenset(
    {
        "graph.microsoft.com",
        "graph.microsoft.us",
        "dod-graph.microsoft.us",
        "microsoftgraph.chinacloudapi.cn",
    }
)
VERSIONS = ("beta", "v1.0")


class Operation(StrEnum):
    """What a request does. The values are the names users write in ``route=`` selectors."""

    CREATE = "create"
    GET = "get"
    UPDATE = "update"
    DELETE = "delete"
    JOIN_URL = "join-url"
    SMS = "sms"
    REMINDER_SMS = "reminder-sms"


class Resource(StrEnum):
    """The path's last segment, lowercased: what the URL names regardless of method."""

    VIRTUAL_APPOINTMENT = "virtualappointment"
    JOIN_URL = "getvirtualappointmentjoinweburl"
    SMS = "sendvirtualappointmentsms"
    REMINDER_SMS = "sendvirtualappointmentremindersms"


class OwnerKind(StrEnum):
    """The collection the onlineMeeting is reached through, as the path's owner segment."""

    ME = "me"
    USERS = "users"
    COMMUNICATIONS = "communications"
    APP = "app"


# The live function and actions: the SDKs generate them under every owner and by alternate
# key. The retired virtualAppointment navigation was only ever under /me and /users/{id}.
LIVE = frozenset({Resource.JOIN_URL, Resource.SMS, Resource.REMINDER_SMS})
# Tenant-wide collections: no user segment.
_TENANT_WIDE = frozenset({OwnerKind.COMMUNICATIONS, OwnerKind.APP})

# (resource, method) -> operation. A pair missing here is one of our URLs with a method
# Graph would refuse: the route is still ours (so it never leaks upstream in replay), with
# ``operation`` None.
_OPERATIONS: dict[tuple[Resource, str], Operation] = {
    (Resource.VIRTUAL_APPOINTMENT, "PUT"): Operation.CREATE,
    (Resource.VIRTUAL_APPOINTMENT, "GET"): Operation.GET,
    (Resource.VIRTUAL_APPOINTMENT, "PATCH"): Operation.UPDATE,
    (Resource.VIRTUAL_APPOINTMENT, "DELETE"): Operation.DELETE,
    (Resource.JOIN_URL, "GET"): Operation.JOIN_URL,
    (Resource.SMS, "POST"): Operation.SMS,
    (Resource.REMINDER_SMS, "POST"): Operation.REMINDER_SMS,
}

ALLOWED_METHODS: dict[Resource, tuple[str, ...]] = {
    resource: tuple(m for (r, m) in _OPERATIONS if r == resource) for resource in Resource
}

MEETINGS = "onlinemeetings"
# A function segment: the name, then an empty parameter list in which OData allows blanks.
_CALL = re.compile(r"(?P<name>[^()]*)(?P<call>\([ \t]*\))?", re.DOTALL)
# The alternate key segment, decoded: onlineMeetings(joinWebUrl='...'); the literal may hold
# anything, slashes and parentheses included, so it runs to the last quote.
_ALTERNATE_KEY = re.compile(
    r"onlinemeetings\([ \t]*joinweburl[ \t]*=[ \t]*'(?P<literal>.+)'[ \t]*\)",
    re.IGNORECASE | re.DOTALL,
)


def odata_string(value: str) -> str:
    """``value`` as an OData string literal: in single quotes, quotes inside doubled."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Route:
    host: str
    version: str
    user: str | None  # a GUID or UPN, lowercased, for /users/{id}; else None
    meeting_id: str | None  # decoded; case-sensitive; None when addressed by join URL
    resource: Resource
    method: str
    operation: Operation | None
    query: tuple[tuple[str, str], ...]  # sorted, names lowercased
    owner_kind: OwnerKind = OwnerKind.ME
    join_web_url: str | None = None  # the alternate key, decoded and unescaped

    @property
    def owner(self) -> str:
        """Who the meeting is reached through: ``me``, each ``users/{id}``, ``communications``
        and ``app`` are separate owners (the proxy has no directory to tell who ``me`` is)."""
        return f"users/{self.user}" if self.owner_kind is OwnerKind.USERS else str(self.owner_kind)

    @property
    def meeting(self) -> str:
        """The meeting's normalised segment: ``onlinemeetings/{id}``, or for the alternate key
        ``onlinemeetings(joinweburl='{url}')`` with the URL as one canonical literal."""
        if self.join_web_url is not None:
            return f"{MEETINGS}(joinweburl={odata_string(self.join_web_url)})"
        return f"{MEETINGS}/{self.meeting_id}"

    @property
    def path(self) -> str:
        """The normalised path: fixed segments lowercased, ids decoded, no ``()``."""
        return f"/{self.version}/{self.owner}/{self.meeting}/{self.resource}"

    @property
    def key(self) -> tuple[str, str, str, tuple[tuple[str, str], ...]]:
        """What two requests must share to be the same request, bodies aside."""
        return (self.method, self.host, self.path, self.query)


def normalise_query(query: str) -> tuple[tuple[str, str], ...]:
    """Query parameters in any order are the same query; OData names are case-insensitive."""
    if not query:
        return ()
    pairs = parse_qsl(query, keep_blank_values=True)
    return tuple(sorted((name.lower(), value) for name, value in pairs))


def _owner(segments: list[str]) -> tuple[OwnerKind, str | None] | None:
    """The owner of decoded segments between the version and ``onlineMeetings``."""
    lowered = [s.lower() for s in segments]
    if lowered == ["me"]:
        return OwnerKind.ME, None
    if len(segments) == 2 and lowered[0] == "users" and segments[1]:
        return OwnerKind.USERS, lowered[1]
    if len(segments) == 1 and lowered[0] in _TENANT_WIDE:
        return OwnerKind(lowered[0]), None
    return None


def _resource(segment: str) -> Resource | None:
    """The resource a last segment names; only the function may be called with ``()``."""
    match = _CALL.fullmatch(segment)
    if match is None:
        return None
    try:
        resource = Resource(match["name"].lower())
    except ValueError:
        return None
    if match["call"] and resource is not Resource.JOIN_URL:
        return None  # actions and navigation properties take no parameter list
    return resource


def _meeting(raw: list[str]) -> tuple[str | None, str | None] | None:
    """(meeting id, join URL) from the raw segments between the owner and the resource."""
    if not raw:
        return None
    first = unquote(raw[0])
    if first.lower() == MEETINGS:
        ids = [s for s in raw[1:] if s]
        if len(ids) != 1:
            return None
        return unquote(ids[0]), None
    # The alternate key: its literal may hold slashes (https://...), so the segments are
    # joined back, empty ones included, before the one percent-decoding Graph applies.
    match = _ALTERNATE_KEY.fullmatch(unquote("/".join(raw)))
    if match is None:
        return None
    return None, match["literal"].replace("''", "'")


def parse(method: str, url: str) -> Route | None:
    """The route of ``method url``, or None when the URL is not one of ours."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:  # e.g. an unclosed "[" (IPv6) in the host: no Graph host looks so
        return None
    return parse_parts(method, host, parts.path, parts.query)


@functools.lru_cache(maxsize=4096)
def parse_parts(method: str, host: str, path: str, query: str) -> Route | None:
    """The route of a request already split: lowercase host, path and query (no ``?``).

    A proxy has these apart already; joining them into a URL only to split it again would
    be wasted work on every request. A pure function of four strings with a frozen answer,
    remembered for the URLs seen last (as ``urllib.parse.urlsplit`` remembers its own): a
    test suite calls the same few URLs again and again.
    """
    if host not in GRAPH_HOSTS:
        return None
    raw = path.split("/")
    filled = [i for i, segment in enumerate(raw) if segment]  # empty ones are not segments
    if len(filled) < 4:
        return None
    owner_length = 2 if unquote(raw[filled[1]]).lower() == OwnerKind.USERS else 1
    meetings_at = filled[1 + owner_length] if len(filled) > 2 + owner_length else None
    if meetings_at is None:
        return None
    version = unquote(raw[filled[0]]).lower()
    owner = _owner([unquote(raw[i]) for i in filled[1 : 1 + owner_length]])
    meeting = _meeting(raw[meetings_at : filled[-1]])
    resource = _resource(unquote(raw[filled[-1]]))
    if version not in VERSIONS or owner is None or meeting is None or resource is None:
        return None
    owner_kind, user = owner
    meeting_id, join_web_url = meeting
    if (owner_kind in _TENANT_WIDE or join_web_url is not None) and resource not in LIVE:
        return None
    method = method.upper()
    return Route(
        host=host,
        version=version,
        user=user,
        meeting_id=meeting_id,
        resource=resource,
        method=method,
        operation=_OPERATIONS.get((resource, method)),
        query=normalise_query(query),
        owner_kind=owner_kind,
        join_web_url=join_web_url,
    )


def graph_host(host: str) -> str | None:
    """The Graph host ``host`` names, in its canonical spelling, or None when it names none.

    DNS names ignore case, and ``graph.microsoft.com.`` (the absolute name, trailing dot) is
    the same host as ``graph.microsoft.com``: both reach Graph, so both are Graph's.
    """
    name = host.lower()
    if name.endswith("."):
        name = name[:-1]
    return name if name in GRAPH_HOSTS else None


def is_batch_path(path: str) -> str | None:
    """The version of a JSON batch path (``/v1.0/$batch``, ``/beta/$batch``), else None.

    Segments as ``parse_parts`` reads them: empty ones skipped, percent-decoded, any case.
    """
    segments = [unquote(s).lower() for s in path.partition("?")[0].split("/") if s]
    if len(segments) == 2 and segments[0] in VERSIONS and segments[1] == "$batch":
        return segments[0]
    return None
