"""vcrpy's record modes, as one enum whose predicates say what each mode does.

Every place that behaves differently per mode asks a predicate here instead of comparing
strings, the way vcrpy's own ``record_mode.py`` names its modes once.
"""

from __future__ import annotations

from enum import StrEnum


class RecordMode(StrEnum):
    ONCE = "once"  # record into a new cassette only
    NEW_EPISODES = "new_episodes"  # replay what the cassette answers, record the rest
    ALL = "all"  # record everything; what is re-recorded replaces the old answers
    NONE = "none"  # replay only

    @property
    def records(self) -> bool:
        """Whether the mode writes anything at all."""
        return self is not RecordMode.NONE

    @property
    def replays(self) -> bool:
        """Whether the cassette's interactions answer matching requests."""
        return self in (RecordMode.NEW_EPISODES, RecordMode.NONE)

    @property
    def needs_new_cassette(self) -> bool:
        """Whether an existing cassette is refused."""
        return self is RecordMode.ONCE

    @property
    def replaces_rerecorded(self) -> bool:
        """Whether re-recording a request drops its old answers from the file."""
        return self is RecordMode.ALL
