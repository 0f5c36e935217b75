"""Entity tags: how If-Match and If-None-Match are read and compared, for everyone.

The emulator (``appointments``) and the ``etag-mismatch:when=stale`` fault both decide from
:func:`precondition_fails`, so no header can pass one and fail the other; the fault compares
against what :class:`KnownETags` has learnt from the answers the proxy passed on. The rule:

- A field is ``*`` alone, or a comma-separated list of entity-tags, ``"opaque"`` or
  ``W/"opaque"`` (RFC 9110 section 8.8.3). Several header lines are one list. An empty field
  counts as absent.
- Tags compare **weakly**: ``W/"x"`` and ``"x"`` are the same tag; the opaque parts must be
  equal, case included. RFC 9110 asks If-Match for the strong comparison, under which a weak
  tag never matches; but Graph issues only weak tags for these Exchange-backed items
  (``W/"<change key>"``) and takes them back in If-Match (Graph's own create example sends
  one; MS-ODATA's If-Match example is a weak tag), so it compares weakly.
- ``*`` matches any existing item, and only as the whole field: inside a list it is not an
  entity-tag.
- An element that is not an entity-tag (unquoted ``abc``, lowercase ``w/"x"``, a ``*`` in a
  list) names nothing: it never matches. ``If-Match: abc`` therefore fails; a list passes
  If-Match when any of its tags names the current one.
- If-Match fails when the item does not exist, whatever it names (HTTP's rule); If-None-Match
  fails when it names the existing item.
- Only writes are conditional: PUT, PATCH and DELETE (:data:`CONDITIONAL_METHODS`); the
  emulator answers GET and the live actions whatever these headers say.

Nothing here knows mitmproxy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from proxy_addons.graph.routes import Route

CONDITIONAL_METHODS = frozenset({"PUT", "PATCH", "DELETE"})
ANY = "*"

# etagc: any visible character but DQUOTE, and obs-text (RFC 9110 section 8.8.3).
_TAG = re.compile(r'(W/)?"([\x21\x23-\x7e\x80-\U0010ffff]*)"')
_OWS = " \t"


@dataclass(frozen=True)
class EntityTag:
    opaque: str
    weak: bool = False

    def __str__(self) -> str:
        return f'{"W/" if self.weak else ""}"{self.opaque}"'


def parse_tag(text: str) -> EntityTag | None:
    """One entity-tag, or None when ``text`` is not one."""
    match = _TAG.fullmatch(text.strip(_OWS))
    return EntityTag(match[2], bool(match[1])) if match else None


def parse_list(field: str) -> list[EntityTag | None]:
    """The elements of a comma-separated list; None for each one that is not an entity-tag.

    Commas may sit inside an opaque tag, so the list is scanned, not split.
    """
    elements: list[EntityTag | None] = []
    pos, end = 0, len(field)
    while pos < end:
        while pos < end and field[pos] in _OWS + ",":  # OWS and empty elements
            pos += 1
        if pos == end:
            break
        match = _TAG.match(field, pos)
        after = match.end() if match else pos
        while after < end and field[after] in _OWS:
            after += 1
        if match and (after == end or field[after] == ","):
            elements.append(EntityTag(match[2], bool(match[1])))
            pos = after
        else:
            comma = field.find(",", pos)
            elements.append(None)
            pos = end if comma < 0 else comma
    return elements


def _current(etag: str) -> EntityTag:
    """The item's own tag. One that is not in entity-tag syntax (a hand-edited cassette, a
    server that sends bare tags) is taken whole as its opaque part."""
    return parse_tag(etag) or EntityTag(etag.strip(_OWS))


def names(field: str, current: str | None) -> bool:
    """Whether a precondition field names the current item (``*``: any existing item)."""
    if current is None:
        return False
    if field.strip(_OWS) == ANY:
        return True
    opaque = _current(current).opaque
    return any(tag is not None and tag.opaque == opaque for tag in parse_list(field))


def _given(field: str | None) -> str | None:
    """The field, or None when it takes no part: absent, or empty."""
    return field if field is not None and field.strip(_OWS) else None


def precondition_fails(
    if_match: str | None, if_none_match: str | None, current: str | None
) -> bool:
    """Whether a write must be refused with 412, given the item's current ETag (None: the
    item does not exist)."""
    if_match, if_none_match = _given(if_match), _given(if_none_match)
    if if_match is not None and not names(if_match, current):
        return True
    return if_none_match is not None and names(if_none_match, current)


class KnownETags:
    """The current ETag of each appointment, as learned from every answer the proxy passes on.

    Replay, the emulator and real Graph all teach it, so ``etag-mismatch:when=stale`` works
    the same in every mode. The last ETag seen is the current one (a 204 update without an
    ETag leaves it as it was); a successful DELETE forgets it. An appointment it has never
    seen an ETag for is not stale: the proxy cannot know better than the service, so it lets
    the request through.
    """

    def __init__(self) -> None:
        self._known: dict[tuple[str, str, str], str] = {}

    @staticmethod
    def _key(route: Route) -> tuple[str, str, str]:
        return (route.host, route.owner, route.meeting)

    def learn(self, route: Route, status: int, etag: str | None) -> None:
        """What an answer with ``status`` and this ``ETag`` header (None: none) teaches."""
        if not 200 <= status < 300:
            return
        if route.method == "DELETE":
            self._known.pop(self._key(route), None)
        elif etag and route.method in ("GET", "PUT", "PATCH"):
            self._known[self._key(route)] = etag

    def current(self, route: Route) -> str | None:
        return self._known.get(self._key(route)) if self._known else None
