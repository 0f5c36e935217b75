"""Which URLs are ours: the virtualAppointment paths and its live replacement actions.

A URL is parsed into a small frozen :class:`Route` (operation, owner, meeting) or ``None``.
``None`` means the proxy must leave the flow alone entirely. The route's ``key`` is the
normalised form that cassette matching uses. Nothing here knows mitmproxy.

A request is ours in every spelling Graph accepts for one of our calls, and each spelling is
the same route as the plain one the docs show, so a request recorded in one spelling replays
in another and none of them slips past the proxy to the real service:

- the spellings Microsoft's generated SDKs (Kiota: msgraph-sdk, msgraph-beta-sdk) send: the
  function called OData-style, ``getVirtualAppointmentJoinWebUrl()``; the live actions under
  the tenant-wide owners ``/communications`` and ``/app`` besides ``/me`` and ``/users/{id}``;
  the meeting by alternate key, ``onlineMeetings(joinWebUrl='{url}')``;
- the rest of OData as Graph implements it: keys in parentheses, ``onlineMeetings('{id}')``,
  ``onlineMeetings(id='{id}')`` and ``users('{id}')`` (quotes inside doubled); the live
  function and actions qualified by Graph's namespace or its alias, ``microsoft.graph.X`` and
  ``graph.X``; a cast to the type a segment already has, ``.../microsoft.graph.onlineMeeting``;
- the URL as a server reads it: each segment percent-decoded once (an encoded slash stays
  inside its segment: a meeting id may hold one), dot segments removed as RFC 3986 section
  5.2.4 says, ``%2e`` being a dot, empty segments ignored, fixed segments in any case, the
  host in any case and as a fully qualified name with its trailing dot.

Where a server might read a spelling more loosely than Graph documents (a path parameter after
``;``, a NUL, blanks or an encoded ``?`` in a fixed segment, an encoded slash or a backslash as
a separator), the loose reading is ours too, but only where the plain reading finds no route:
staying offline is the safe side, and no spelling that is ours changes its meaning.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator
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
BATCH = "$batch"


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


_OWNER_KINDS = {str(kind): kind for kind in OwnerKind}
_RESOURCES = {str(resource): resource for resource in Resource}
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
# Graph's schema is Namespace="microsoft.graph" Alias="graph": OData accepts a qualified name
# in either spelling.
_QUALIFIED = r"(?:microsoft\.)?graph\."
# The last segment: an optional qualifier, the name, then an empty parameter list in which
# OData allows blanks. A navigation property is never qualified (a qualified name there is a
# type cast, which Graph refuses for virtualAppointment), so only the live calls may be.
_CALL = re.compile(rf"(?P<qualifier>{_QUALIFIED})?(?P<name>[^()\s]*)\s*(?P<call>\(\s*\))?")
# A cast to the type the path already names: OData allows it, and it changes nothing.
_MEETING_CAST = re.compile(rf"{_QUALIFIED}onlinemeeting")
_USER_CAST = re.compile(rf"{_QUALIFIED}user")
# The meeting by key in parentheses, decoded, from the meetings segment to the resource: the
# literal may hold anything, slashes and parentheses included, so it runs to the last quote.
_KEYED_MEETING = re.compile(
    r"\s*onlinemeetings\s*\(\s*(?:(?P<name>[a-z]\w*)\s*=\s*)?'(?P<literal>.+)'\s*\)"
    rf"(?:/+{_QUALIFIED}onlinemeeting)?/*",
    re.IGNORECASE | re.DOTALL,
)
_USER_KEY = re.compile(
    r"\s*users\s*\(\s*(?:id\s*=\s*)?'(?P<literal>.+)'\s*\)\s*", re.IGNORECASE | re.DOTALL
)
# An OData string literal's inside: any quote doubled.
_ESCAPED = re.compile(r"(?:[^']|'')+", re.DOTALL)
# Cut a fixed segment at a path parameter, a NUL, or a decoded "?" or "#" (where some server
# might end it).
_CUT = re.compile(r"[;\x00?#]")
_BLANKS = "".join(chr(c) for c in range(0x21)) + "\x7f"
_PERCENT_U = re.compile(r"%u([0-9a-fA-F]{4})")
# What a loose reading takes for a separator: an encoded slash, a backslash, encoded or not.
_SEPARATOR_LIKE = re.compile(r"%2[fF]|%5[cC]|\\")
# What a URL parser drops anywhere in a URL (WHATWG, and urllib.parse.urlsplit).
_DROPPED = str.maketrans("", "", "\t\r\n")
_FIXED = frozenset(
    {*VERSIONS, *OwnerKind, MEETINGS, *Resource, BATCH, "microsoft.graph.onlinemeeting"}
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


def graph_host(host: str) -> str | None:
    """The Graph host that ``host`` names, in its canonical spelling, or None for any other.

    For whatever names a connection's target: a URL's host, a CONNECT authority, a TLS SNI, a
    Host header. Any case, a port, the fully qualified name's trailing dot, percent-encodings
    and the Unicode forms a resolver maps to ASCII (IDNA: fullwidth letters, ideographic full
    stops) all name the host they would reach, so none of them takes our calls past the proxy.
    """
    if host in GRAPH_HOSTS:
        return host
    return _graph_host(host)


@functools.lru_cache(maxsize=256)
def _graph_host(host: str) -> str | None:
    name = host.strip().rpartition("@")[2]
    if name.startswith("["):  # an IPv6 literal
        return None
    head, colon, port = name.rpartition(":")
    if colon and (port.isdigit() or not port):
        name = head
    if "%" in name:
        name = unquote(name)
    if not name.isascii():
        try:  # as the resolver will encode it (socket.getaddrinfo uses this codec)
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            name = unicodedata.normalize("NFKC", name)
    name = name.strip().lower().rstrip(".")
    return name if name in GRAPH_HOSTS else None


def _fixed(segment: str) -> str:
    """A decoded segment where the grammar expects a fixed name, in its canonical spelling:
    lowercase; read loosely (see the module docstring) unless it is a name we know as is."""
    name = segment.lower()
    if name in _FIXED:
        return name
    if "%" in name:
        name = _PERCENT_U.sub(lambda m: chr(int(m[1], 16)), name)
    cut = _CUT.search(name)
    if cut is not None:
        name = name[: cut.start()]
    if not name.isascii():  # what a case-insensitive compare in .NET (upper-casing) equates
        name = unicodedata.normalize("NFKC", name).upper().lower()
    # Blanks around, and trailing dots (which Windows drops from a path's names), as nothing.
    return name.strip().strip(_BLANKS).rstrip(".").strip().strip(_BLANKS)


def _segments(path: str) -> list[str]:
    """The path's segments as a server reads them: each percent-decoded once on its own (so
    an encoded slash stays inside its segment), then dot segments removed (RFC 3986 5.2.4).
    Empty segments stay: a join URL in a key holds ``//``."""
    raw = path.split("/")
    if "%" in path:
        raw = [unquote(s) if "%" in s else s for s in raw]
    if "/." not in path and "%" not in path:  # no dot segment: the common case
        return raw
    segments: list[str] = []
    for segment in raw:
        if segment == "..":
            if segments:
                segments.pop()
        elif segment != ".":
            segments.append(segment)
    return segments


def _readings(path: str) -> Iterator[list[str]]:
    """The segments of the path as Graph reads it, then (only when it differs, and only when
    asked for) as a server that takes an encoded slash or a backslash for a separator would."""
    yield _segments(path)
    if "%" in path or "\\" in path:
        loose = _SEPARATOR_LIKE.sub("/", path)
        if loose != path:
            yield _segments(loose)


def _resource(segment: str) -> Resource | None:
    """The resource a last segment names; only the function may be called with ``()``, only
    the live calls may be qualified."""
    name = _fixed(segment)
    if name in _RESOURCES:  # the plain spelling
        return _RESOURCES[name]
    match = _CALL.fullmatch(name)
    if match is None:
        return None
    try:
        resource = Resource(match["name"])
    except ValueError:
        return None
    if match["call"] and resource is not Resource.JOIN_URL:
        return None  # actions and navigation properties take no parameter list
    if match["qualifier"] and resource not in LIVE:
        return None
    return resource


def _literal(inside: str) -> str | None:
    """An OData string literal's value, its inside strictly escaped (every quote doubled)."""
    if _ESCAPED.fullmatch(inside) is None:
        return None
    return inside.replace("''", "'")


def _owner(filled: list[str]) -> tuple[OwnerKind, str | None, int] | None:
    """The owner at the start of the decoded segments between the version and the meeting,
    and how many segments it takes (a cast to ``user`` after it included)."""
    first = _fixed(filled[0])
    if first == OwnerKind.USERS:
        if len(filled) < 2:
            return None
        kind, user, length = OwnerKind.USERS, filled[1].lower(), 2
    elif first in _OWNER_KINDS:
        kind, user, length = _OWNER_KINDS[first], None, 1
    else:
        keyed = _USER_KEY.fullmatch(filled[0])
        user = keyed and _literal(keyed["literal"])
        if not user:
            return None
        kind, user, length = OwnerKind.USERS, user.lower(), 1
    user_typed = kind in (OwnerKind.ME, OwnerKind.USERS)
    if user_typed and len(filled) > length + 1 and _USER_CAST.fullmatch(_fixed(filled[length])):
        length += 1
    return kind, user, length


def _meeting(raw: list[str]) -> tuple[str | None, str | None] | None:
    """(meeting id, join URL) from the decoded segments between the owner and the resource,
    empty ones included."""
    filled = [s for s in raw if s]
    if not filled:
        return None
    if _fixed(filled[0]) == MEETINGS:
        ids = filled[1:]
        if len(ids) > 1:  # a cast on the collection or on the meeting, as OData allows
            ids = [s for s in ids if not _MEETING_CAST.fullmatch(_fixed(s))]
        return (ids[0], None) if len(ids) == 1 else None
    # A key in parentheses: its literal may hold slashes (a join URL's https://), so the
    # segments are joined back, empty ones included.
    keyed = _KEYED_MEETING.fullmatch("/".join(raw[raw.index(filled[0]) :]))
    if keyed is None:
        return None
    name = (keyed["name"] or "id").strip().lower()
    if name == "joinweburl":  # Kiota sends quotes inside as they are, OData doubles them
        return None, keyed["literal"].replace("''", "'")
    meeting_id = _literal(keyed["literal"]) if name == "id" else None
    return (meeting_id, None) if meeting_id else None


def _read(
    segments: list[str],
) -> tuple[str, OwnerKind, str | None, str | None, str | None, Resource] | None:
    """(version, owner kind, user, meeting id, join URL, resource) of decoded segments."""
    filled_at = [i for i, segment in enumerate(segments) if segment]
    if len(filled_at) < 4:
        return None
    version = _fixed(segments[filled_at[0]])
    resource = _resource(segments[filled_at[-1]])
    if version not in VERSIONS or resource is None:
        return None
    owner = _owner([segments[i] for i in filled_at[1:-1]])
    if owner is None:
        return None
    owner_kind, user, length = owner
    if 1 + length >= len(filled_at) - 1:
        return None
    meeting = _meeting(segments[filled_at[1 + length] : filled_at[-1]])
    if meeting is None:
        return None
    meeting_id, join_web_url = meeting
    if (owner_kind in _TENANT_WIDE or join_web_url is not None) and resource not in LIVE:
        return None
    return version, owner_kind, user, meeting_id, join_web_url, resource


def is_batch_path(path: str) -> str | None:
    """The version when ``path`` (a query or fragment after it is ignored) is a JSON batch,
    ``/{v1.0|beta}/$batch``, in any spelling Graph reads as one; else None."""
    target = path.partition("#")[0].partition("?")[0].translate(_DROPPED)
    for segments in _readings(target):
        filled = [_fixed(s) for s in segments if s]
        if len(filled) == 2 and filled[0] in VERSIONS and filled[1] == BATCH:
            return filled[0]
    return None


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
    """The route of a request already split: host, path and query (no ``?``).

    A proxy has these apart already; joining them into a URL only to split it again would
    be wasted work on every request. A pure function of four strings with a frozen answer,
    remembered for the URLs seen last (as ``urllib.parse.urlsplit`` remembers its own): a
    test suite calls the same few URLs again and again.
    """
    canonical = graph_host(host)
    if canonical is None:
        return None
    if "\t" in path or "\r" in path or "\n" in path:  # dropped, as a URL parser drops them
        path = path.translate(_DROPPED)
    for segments in _readings(path):
        parts = _read(segments)
        if parts is not None:
            break
    else:
        return None
    version, owner_kind, user, meeting_id, join_web_url, resource = parts
    method = method.upper()
    return Route(
        host=canonical,
        version=version,
        user=user,
        meeting_id=meeting_id,
        resource=resource,
        method=method,
        operation=_OPERATIONS.get((resource, method)),
        query=normalise_query(query.translate(_DROPPED) if query else query),
        owner_kind=owner_kind,
        join_web_url=join_web_url,
    )
