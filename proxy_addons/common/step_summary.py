"""Where a Markdown summary goes: a file, or with ``-`` the CI job's summary.

GitHub Actions gives each step a file, named by ``$GITHUB_STEP_SUMMARY``, whose Markdown the
job's summary page shows; every step (and every tool in a step) appends to it, so it is
appended to, never replaced. Without that variable (a terminal, another CI), ``-`` prints
the Markdown on standard output, as ``-`` means for files everywhere. A file named outright
is replaced whole (``files.replace_atomically``), as the summary JSON is.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from proxy_addons.common.files import replace_atomically

STEP_SUMMARY = "GITHUB_STEP_SUMMARY"
TO_STEP_SUMMARY = "-"


def destination(value: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """The file ``value`` (an option's) writes to; None for standard output."""
    environ = os.environ if environ is None else environ
    if value == TO_STEP_SUMMARY:
        named = environ.get(STEP_SUMMARY, "").strip()
        return Path(named) if named else None
    return Path(value).expanduser()


def write(
    value: str,
    markdown: str,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
) -> Path | None:
    """Write ``markdown`` where ``value`` says; the file written, None for standard output."""
    path = destination(value, environ)
    if path is None:
        out = sys.stdout if stdout is None else stdout
        out.write(markdown)
        out.flush()
        return None
    if value == TO_STEP_SUMMARY:
        # Another step's (or tool's) summary may be there already: add to it, after a blank
        # line, so that two sections never run into one paragraph.
        with path.open("a", encoding="utf-8") as summary:
            summary.write(("\n" if summary.tell() else "") + markdown)
        return path
    replace_atomically(path, markdown.encode("utf-8"))
    return path
