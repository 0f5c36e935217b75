"""A value as an error message shows it: one short line whatever the value.

A hostile or broken file names its bad value in the message, and ``repr`` of a YAML alias
bomb (ten lists of ten aliases of ten lists... a few hundred bytes of file) is gigabytes
built before any of it is cut: the process runs out of memory instead of saying one line.
reprlib stops after a few items and levels, so a value costs its first few items to show.
"""

from __future__ import annotations

import reprlib
from typing import Any

WIDTH = 60

_SHOWN = reprlib.Repr()
_SHOWN.maxlevel = 3
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = _SHOWN.maxset = _SHOWN.maxfrozenset = 6
# Text and numbers are shown as repr() shows them, up to the cut below.
_SHOWN.maxstring = _SHOWN.maxother = _SHOWN.maxlong = 1000


def brief(value: Any, width: int = WIDTH) -> str:
    """``repr(value)``, cut to ``width`` characters (the last three ``...``), built from
    only as much of the value as that can show."""
    shown = _SHOWN.repr(value)
    return shown if len(shown) <= width else shown[: width - 3] + "..."
