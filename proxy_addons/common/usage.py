"""A user mistake, as every command reports it: one line naming the cause, exit status 2."""

from __future__ import annotations

USAGE_ERROR = 2


class UsageError(Exception):
    """A user mistake: printed as one line, exit status 2."""
