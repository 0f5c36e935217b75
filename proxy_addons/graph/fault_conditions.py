"""Conditions of a fault rule: when a selected request is one the rule may break.

A rule's selector (``faults.Selector``) says which requests it looks at; its conditions say
which of those Graph itself would have refused the way the rule answers:

- :class:`Stale` (``etag-mismatch:when=stale``): the write's If-Match / If-None-Match fail
  against the appointment's current ETag, by the emulator's own rule
  (:func:`proxy_addons.graph.etags.precondition_fails`), so the fault and ``simulate`` never
  disagree about a header;
- :class:`TokenRefused` (every ``permissions`` rule): Graph would refuse the bearer token
  (:mod:`proxy_addons.graph.permissions`).

Each is a pure judgement of :class:`Facts`, the data the flow carries (the ETag tracker puts
the known ETag there); a condition that holds says why, for the log. Nothing here knows
mitmproxy. A new condition is one more small class here with ``why(facts)``, added to
:data:`Condition` and given to the rule by ``faults.build_rule``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from proxy_addons.graph import etags, permissions
from proxy_addons.graph.routes import Operation


@dataclass(frozen=True)
class Facts:
    """What the conditions read of one request of ours."""

    method: str
    operation: Operation | None
    headers: Mapping[str, str]  # as the client sent them, names in any case
    known_etag: str | None = None  # the appointment's current ETag; None: not known


@dataclass(frozen=True)
class Stale:
    """The write names an ETag that is not the appointment's current one. An appointment
    whose ETag the proxy never saw is not stale: it cannot know better than the service."""

    def why(self, facts: Facts) -> str | None:
        known = facts.known_etag
        if known is None or facts.method.upper() not in etags.CONDITIONAL_METHODS:
            return None
        if_match, if_none_match = facts.headers.get("If-Match"), facts.headers.get("If-None-Match")
        if not etags.precondition_fails(if_match, if_none_match, known):
            return None
        return f"stale precondition (current ETag {known})"


@dataclass(frozen=True)
class TokenRefused:
    """Graph would refuse the bearer token; ``accepted`` None: each operation's documented
    scopes grant it."""

    accepted: frozenset[str] | None = None

    def why(self, facts: Facts) -> str | None:
        return permissions.refusal(
            facts.headers.get("Authorization"), facts.operation, self.accepted
        )


Condition = Stale | TokenRefused


def reasons(conditions: Iterable[Condition], facts: Facts) -> list[str] | None:
    """Why every condition holds, one reason each; None as soon as one does not."""
    found: list[str] = []
    for condition in conditions:
        why = condition.why(facts)
        if why is None:
            return None
        found.append(why)
    return found
