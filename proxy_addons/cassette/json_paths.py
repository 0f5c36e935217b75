"""The JSON paths a match rule ignores in request bodies: a small subset of JSONPath.

A recording of a call that can no longer be recorded (the retired virtualAppointment
create) holds values a test cannot reproduce: the ``externalAppointmentId`` a scheduling
system made up, a timestamp. Naming such a value's place lets the recording answer a request
that differs from it there, and nowhere else.

The subset, which is all a request body's fixed shape needs (WireMock's ``matchesJsonPath``
and vcrpy users' custom body matchers mostly use these):

- ``$`` the body itself, then any number of steps:
- ``.name`` a member of an object (letters, digits, ``_``, ``-``, ``@``, ``$``; no dots);
- ``['name']`` or ``["name"]`` a member whose name holds anything else (``$['@odata.type']``);
- ``[N]`` the element at index N (0-based) of an array;
- ``[*]`` every element of an array (``$.appointmentClients[*].smsCapablePhoneNumber``).

No filters, slices, recursive descent (``..``) or ``.*``: a path that does not parse in this
subset is refused with one line naming it, never read as something else.

What ignoring means: the member a path ends in is left out of the comparison, present or not,
whatever its value; an array element a path ends in compares as equal to any other value (the
array's length still counts). A step that meets a value of another kind (``.name`` on an
array, ``[0]`` past the end) finds nothing, and nothing is ignored there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

ANY_ELEMENT = "*"
# What an ignored array element compares as: both sides of a comparison have it in the same
# place (both are stripped by the same paths), so any fixed value does.
IGNORED = None
_NAME = r"[A-Za-z0-9_@$-]+"
_STEP = re.compile(
    rf"\.(?P<name>{_NAME})"
    r"|\[(?:'(?P<single>[^']*)'|\"(?P<double>[^\"]*)\")\]"
    r"|\[(?P<index>0|[1-9][0-9]*)\]"
    r"|\[(?P<any>\*)\]"
)

Step = str | int  # a member name, an index, or ANY_ELEMENT (held apart: see JsonPath.steps)


class JsonPathError(ValueError):
    """A path outside the subset; ``str()`` is one line naming it."""


@dataclass(frozen=True)
class JsonPath:
    """One parsed path: ``text`` as written, ``steps`` as (kind, value) pairs, kind being
    ``"name"``, ``"index"`` or ``"any"``."""

    text: str
    steps: tuple[tuple[str, Step], ...]

    @classmethod
    def parse(cls, text: str) -> JsonPath:
        if not isinstance(text, str) or not text.startswith("$"):
            raise JsonPathError(_refusal(text, "it must start with $"))
        steps: list[tuple[str, Step]] = []
        at = 1
        while at < len(text):
            found = _STEP.match(text, at)
            if found is None:
                raise JsonPathError(_refusal(text, f"cannot read it from {text[at:]!r}"))
            if found["name"] is not None:
                steps.append(("name", found["name"]))
            elif found["single"] is not None or found["double"] is not None:
                steps.append(("name", found["single"] or found["double"] or ""))
            elif found["index"] is not None:
                steps.append(("index", int(found["index"])))
            else:
                steps.append(("any", ANY_ELEMENT))
            at = found.end()
        if not steps:
            raise JsonPathError(
                _refusal(text, "it names the whole body (use match_on without body)")
            )
        return cls(text, tuple(steps))

    def __str__(self) -> str:
        return self.text

    def covers(self, location: tuple[Step, ...]) -> bool:
        """Whether ``location`` (member names and indexes from the root) is at or under
        a place this path names."""
        if len(location) < len(self.steps):
            return False
        for (kind, want), have in zip(self.steps, location, strict=False):
            if kind == "name" and (not isinstance(have, str) or have != want):
                return False
            if kind == "index" and (not isinstance(have, int) or have != want):
                return False
            if kind == "any" and not isinstance(have, int):
                return False
        return True


def _refusal(text: object, why: str) -> str:
    return (
        f"ignore_json_paths: {text!r} is not a JSON path this proxy reads ({why}); it reads "
        "$.name, $['any name'], $.list[0] and $.list[*].name"
    )


def parse_all(texts: tuple[str, ...] | list[str]) -> tuple[JsonPath, ...]:
    """Each path parsed, each once, in order given."""
    return tuple(JsonPath.parse(text) for text in dict.fromkeys(texts))


def without(value: Any, paths: tuple[JsonPath, ...]) -> Any:
    """``value`` with every place ``paths`` name left out, as a new value (``value`` is
    never changed: a recording's parsed body is shared)."""
    for path in paths:
        value = _without(value, path.steps)
    return value


def _without(value: Any, steps: tuple[tuple[str, Step], ...]) -> Any:
    (kind, step), rest = steps[0], steps[1:]
    if kind == "name":
        if not isinstance(value, dict) or step not in value:
            return value
        copy = dict(value)
        if rest:
            copy[step] = _without(value[step], rest)
        else:
            del copy[step]
        return copy
    if not isinstance(value, list):
        return value
    if kind == "any":
        indexes: range | list[int] = range(len(value))
    else:
        indexes = [step] if isinstance(step, int) and step < len(value) else []
    copy = list(value)
    for i in indexes:
        copy[i] = _without(value[i], rest) if rest else IGNORED
    return copy
