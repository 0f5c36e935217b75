"""Record mode ``all``: which old interactions a re-recorded request replaces, and when.

The interactions a cassette held at start stay at the front of the file, in file order, until
their request is recorded again; the first time it is, the rewrite that appends the new answer
drops every old answer to the same request (the same request as replay matches it: one
:class:`~proxy_addons.matching.CassetteIndex` decides both). What this keeps of the file's
front changes only once such a rewrite is in place, under the writer's lock: a rewrite that
fails leaves the file and this account of it as they were, so the next one drops exactly
the blocks it means to.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from proxy_addons.cassette import Interaction
from proxy_addons.cassette_writer import Committed, Keep
from proxy_addons.matching import CassetteIndex, Group, Shape


class Replacement(NamedTuple):
    """What to hand ``CassetteWriter.append``: which blocks to keep, and what to do once the
    rewrite is in place."""

    keep: Keep
    committed: Committed


class Rerecording:
    """The old interactions still in the file, by request, and those not yet re-recorded."""

    def __init__(self, interactions: Iterable[Interaction] = ()) -> None:
        self._index = CassetteIndex(interactions)
        self._front: list[Group] = self._index.groups()  # the old blocks' groups, file order
        self._stale = set(self._front)

    def replacement(self, sent: Shape) -> Replacement | None:
        """How to replace the old answers to a request of this shape, if any are still in
        the file."""
        if not self._stale:
            return None
        group = self._index.group(sent)
        if group is None or group not in self._stale:
            return None

        def keep(blocks: list[str]) -> list[str]:
            front = self._front
            if len(blocks) < len(front):
                return blocks  # someone else rewrote the file: replace nothing rather than guess
            kept = [b for b, g in zip(blocks, front, strict=False) if g != group]
            return kept + blocks[len(front) :]

        def committed() -> None:
            self._front = [g for g in self._front if g != group]
            self._stale.discard(group)

        return Replacement(keep, committed)
