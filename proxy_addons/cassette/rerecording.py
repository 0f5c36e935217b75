"""Record mode ``all``: which old interactions a re-recorded request replaces, and when.

The interactions a cassette held at start stay in the file until their request is recorded
again; the first time it is, the rewrite that appends the new answer drops every old answer
to the same request (every recording replay would answer it from: one
:class:`~proxy_addons.cassette.matching.CassetteIndex` decides both), and nothing else.

Which blocks are old is decided by identity, not position: other recorders (any number, in
any mode) append to the same file and rewrite it meanwhile, so the file this recorder finds
under the writer's lock is its start-time blocks, less those someone dropped, followed by
every block recorded since. The old blocks are recognised by their text, in order, at the
front; the first block that is not one of them ends the old part, and it and everything after
it were answered since this recorder started and are kept whatever their request. (A block
recorded since that is byte for byte one that was dropped, request-id and Date included, is
the one case text can't tell apart; Graph stamps every answer with a new request-id.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from proxy_addons.cassette.cassette import Interaction
from proxy_addons.cassette.match_rule import DEFAULT_RULE, MatchRule
from proxy_addons.cassette.matching import CassetteIndex, Group, SentRequest, Shape
from proxy_addons.cassette.writer import Committed, Keep


class Replacement(NamedTuple):
    """What to hand ``CassetteWriter.append``: which blocks to keep, and what to do once the
    rewrite is in place."""

    keep: Keep
    committed: Committed


class Rerecording:
    """The old interactions, by request and by the text of their blocks, and the requests
    not yet re-recorded."""

    def __init__(
        self,
        interactions: Iterable[Interaction] = (),
        blocks: Sequence[str] = (),
        rule: MatchRule = DEFAULT_RULE,
    ) -> None:
        """``blocks``: each interaction's block as the file holds it (the writer's
        :func:`~proxy_addons.cassette.writer.blocks_of`), in the same order. ``rule``: when
        a new request is an old one (the rule replay matches by)."""
        self._index = CassetteIndex(interactions, rule=rule)
        digests = map(_digest, blocks)
        self._old: list[tuple[bytes, Group]] = list(zip(digests, self._index.groups(), strict=True))
        self._stale = {group for _, group in self._old}

    def replacement(self, sent: Shape, request: SentRequest | None = None) -> Replacement | None:
        """How to replace the old answers to a request of this shape, if any are still in
        the file; ``request``, the request as vcrpy's, for a rule's custom matchers."""
        if not self._stale:
            return None
        groups = self._index.matched(sent, request) & self._stale
        if not groups:
            return None

        def keep(blocks: list[str]) -> list[str]:
            return [
                b
                for b, old in zip(blocks, self._old_groups(blocks), strict=True)
                if old not in groups
            ]

        def committed() -> None:
            self._stale -= groups

        return Replacement(keep, committed)

    def _old_groups(self, blocks: list[str]) -> list[Group | None]:
        """The group of each block that is one of ours from the start, None for the others.

        The old blocks still in the file are a subsequence of ``self._old`` at its front
        (rewrites keep order, appends go at the end): each is matched to the next old block
        with its text; the first that matches none starts what was recorded since.
        """
        found: list[Group | None] = []
        at = 0
        for block in map(_digest, blocks):
            while at < len(self._old) and self._old[at][0] != block:
                at += 1
            if at == len(self._old):
                break
            found.append(self._old[at][1])
            at += 1
        return found + [None] * (len(blocks) - len(found))


def _digest(block: str) -> bytes:
    """A block's identity, in 16 bytes instead of its text: what this recorder keeps of a
    large cassette's old blocks for as long as it runs."""
    return hashlib.blake2b(block.encode("utf-8", "surrogatepass"), digest_size=16).digest()
