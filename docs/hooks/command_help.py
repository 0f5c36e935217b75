"""MkDocs hook: a ``console`` block that shows only ``$ graph-vcr-proxy ... --help`` gets the
help that command prints, at build time.

So the option reference (``options.md``) is the CLI's own text, never a copy that drifts:
a flag added to a command is on the page at the next build, and a command whose ``--help``
fails stops the build. ``tests/test_docs_commands.py`` holds the page to the commands.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

HELP_BLOCK = re.compile(r"^```console\n\$ (graph-vcr-proxy(?: [\w-]+)* --help)\n```$", re.M)
# argparse wraps to the terminal's width: one width, so a build prints the same page anywhere
COLUMNS = "100"


def executable() -> str:
    """The ``graph-vcr-proxy`` beside this Python (mkdocs' venv), else the one on PATH."""
    beside = Path(sys.executable).with_name("graph-vcr-proxy")
    found = str(beside) if beside.exists() else shutil.which("graph-vcr-proxy")
    if found is None:
        raise PluginError("graph-vcr-proxy is not installed where mkdocs runs")
    return found


def command_help(command: str) -> str:
    """What ``command`` (``graph-vcr-proxy ... --help``) prints."""
    args = [executable(), *command.split()[1:]]
    done = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": COLUMNS},
        check=False,
    )
    if done.returncode != 0:
        raise PluginError(f"`{command}` failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.rstrip()


def with_help(markdown: str) -> str:
    """``markdown`` with each help block followed by the help it names."""

    def filled(match: re.Match[str]) -> str:
        command = match.group(1)
        return f"```console\n$ {command}\n{command_help(command)}\n```"

    return HELP_BLOCK.sub(filled, markdown)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return with_help(markdown)
