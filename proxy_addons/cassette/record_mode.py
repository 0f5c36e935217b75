"""vcrpy's record modes and pytest-recording's ``rewrite``, as one enum whose predicates say
what each mode does.

Every place that behaves differently per mode asks a predicate here instead of comparing
strings, the way vcrpy's own ``record_mode.py`` names its modes once (the four values are
``vcr.record_mode.RecordMode``'s documented ones). ``rewrite`` is the pytest plugin's alone:
the test's cassette is deleted, then recorded as ``new_episodes``
(:attr:`RecordMode.for_recorder`); the recorder and the command line take only
:data:`RECORDER_MODES`.
"""

from __future__ import annotations

from enum import StrEnum


class RecordMode(StrEnum):
    ONCE = "once"  # record into a new cassette only
    NEW_EPISODES = "new_episodes"  # replay what the cassette answers, record the rest
    ALL = "all"  # record everything; what is re-recorded replaces the old answers
    NONE = "none"  # replay only
    REWRITE = "rewrite"  # pytest-recording's: delete the cassette, then record it anew

    @property
    def for_recorder(self) -> RecordMode:
        """The mode the recorder runs: ``rewrite`` records as ``new_episodes`` into the
        cassette its caller deleted; every other mode is its own."""
        return RecordMode.NEW_EPISODES if self is RecordMode.REWRITE else self

    @property
    def rewrites(self) -> bool:
        """Whether the cassette is deleted before the test records it."""
        return self is RecordMode.REWRITE

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


# What the recorder (graph_record_mode, --record-mode) takes: vcrpy's four.
RECORDER_MODES = tuple(mode for mode in RecordMode if mode.for_recorder is mode)
