"""Which URLs are ours: the virtualAppointment paths and its live replacement actions.

A URL is parsed into a small frozen :class:`Route` (operation, owner, meeting id) or ``None``.
``None`` means the proxy must leave the flow alone entirely. Graph treats path segments
case-insensitively and accepts percent-encoded ids, so the parser does too; the route's
``key`` is the normalised form that cassette matching uses. Nothing here knows mitmproxy.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class Route:
    host: str
    version: str
    user: str | None  # None for /me; a GUID or UPN, lowercased, for /users/{id}
    meeting_id: str  # decoded; meeting ids are case-sensitive
    resource: Resource
    method: str
    operation: Operation | None
    query: tuple[tuple[str, str], ...]  # sorted, names lowercased

    @property
    def owner(self) -> str:
        """Who the appointment belongs to: ``me`` and each user are separate owners."""
        return "me" if self.user is None else f"users/{self.user}"

    @property
    def path(self) -> str:
        """The normalised path: fixed segments lowercased, ids decoded."""
        return f"/{self.version}/{self.owner}/onlinemeetings/{self.meeting_id}/{self.resource}"

    @property
    def key(self) -> tuple[str, str, str, tuple[tuple[str, str], ...]]:
        """What two requests must share to be the same request, bodies aside."""
        return (self.method, self.host, self.path, self.query)


def normalise_query(query: str) -> tuple[tuple[str, str], ...]:
    """Query parameters in any order are the same query; OData names are case-insensitive."""
    pairs = parse_qsl(query, keep_blank_values=True)
    return tuple(sorted((name.lower(), value) for name, value in pairs))


def parse(method: str, url: str) -> Route | None:
    """The route of ``method url``, or None when the URL is not one of ours."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:  # e.g. an unclosed "[" (IPv6) in the host: no Graph host looks so
        return None
    if host not in GRAPH_HOSTS:
        return None
    segments = [unquote(s) for s in parts.path.split("/") if s]
    lowered = [s.lower() for s in segments]
    if len(segments) == 5 and lowered[1] == "me":
        user = None
    elif len(segments) == 6 and lowered[1] == "users" and segments[2]:
        user = segments[2].lower()
    else:
        return None
    version, meetings, meeting_id, last = lowered[0], lowered[-3], segments[-2], lowered[-1]
    if version not in VERSIONS or meetings != "onlinemeetings" or not meeting_id:
        return None
    try:
        resource = Resource(last)
    except ValueError:
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
        query=normalise_query(parts.query),
    )
