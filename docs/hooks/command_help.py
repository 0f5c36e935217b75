"""MkDocs hook: the option reference (``options.md``) made at build time from what it
describes, never a copy that drifts.

- A ``console`` block that shows only ``$ graph-vcr-proxy ... --help`` gets the help that
  command prints; a command whose ``--help`` fails stops the build.
- A ``<!-- options: NAME -->`` line gets the option table NAME
  (``proxy_addons/options/commands.py``'s ``TABLES``) as a Markdown table: each mitmproxy
  option with its type, default and help, and the flag that sets it; an unknown NAME stops
  the build.

``tests/test_docs_site.py`` and ``tests/test_option_table.py`` hold the page to the commands
and the tables.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

from proxy_addons.common.option_table import Option, declared
from proxy_addons.options.commands import TABLES

OPTIONS_MARKER = re.compile(r"^<!-- options: ([\w-]+) -->$", re.M)
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


def type_name(option: Option) -> str:
    """An option's type as ``--set`` takes it."""
    names = {str: "text", int: "integer", bool: "true/false", Sequence[str]: "list of text"}
    return names.get(option.type, "integer or empty")  # Optional[int], the only other one


def default_text(option: Option) -> str:
    if option.shown_default is not None:
        return option.shown_default
    if option.type is bool:
        return f"`{str(option.default).lower()}`"
    if option.default in (None, "", []):
        return "empty"
    return f"`{option.default}`"


def flag_text(option: Option) -> str:
    """The flag that sets the option, and how."""
    if option.flag is None:
        return "(none)"
    if option.is_switch:
        return f"`{option.flag}` (sets it {'false' if option.inverted else 'true'})"
    value = option.metavar or (
        "{" + ",".join(option.choices) + "}" if option.choices else option.dest.upper()
    )
    repeat = " (repeatable)" if option.is_repeated else ""
    return f"`{option.flag} {value}`{repeat}"


def option_table(name: str) -> str:
    """The Markdown table of the option table ``name``."""
    if name not in TABLES:
        raise PluginError(f"<!-- options: {name} -->: no such table (one of {', '.join(TABLES)})")
    rows = ["| option | type | default | flag | what it does |", "| --- | --- | --- | --- | --- |"]
    for option in declared(TABLES[name]):
        choices = f" One of: {', '.join(option.choices)}." if option.choices else ""
        text = (option.help + choices).replace("|", "\\|")
        rows.append(
            f"| `{option.name}` | {type_name(option)} | {default_text(option)} | "
            f"{flag_text(option)} | {text} |"
        )
    return "\n".join(rows)


def with_option_tables(markdown: str) -> str:
    """``markdown`` with each ``<!-- options: NAME -->`` line replaced by its table."""
    return OPTIONS_MARKER.sub(lambda match: option_table(match.group(1)), markdown)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return with_help(with_option_tables(markdown))
