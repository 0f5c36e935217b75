"""The documentation site's pages against what they describe: the option reference holds the
help of every command the CLI has, and the README's links reach pages that exist.

``mkdocs build --strict`` (in CI) checks the site's own links and anchors; these tests hold
what a build can't know.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
OPTIONS_PAGE = ROOT / "docs" / "options.md"
HOOK = ROOT / "docs" / "hooks" / "command_help.py"
HELP_LINE = re.compile(r"^\$ graph-vcr-proxy((?: [\w-]+)*) --help$", re.M)
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*")


def cli_help(*args: str) -> str:
    """What the installed ``graph-vcr-proxy ARGS --help`` prints, from this checkout."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [str(Path(sys.executable).with_name("graph-vcr-proxy")), *args, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "COLUMNS": "100", "PYTHONPATH": path},
    )
    return done.stdout


def subcommands(*args: str) -> list[str]:
    """The commands ``graph-vcr-proxy ARGS --help`` lists (``{a,b,c}``), none for a leaf."""
    choices = re.search(r"^\s+\{([\w,-]+)\}", cli_help(*args), re.M)
    return choices.group(1).split(",") if choices else []


def every_command() -> set[str]:
    """Every command line that runs something, as the words after ``graph-vcr-proxy``."""
    found = {""}
    for command in subcommands():
        below = subcommands(command)
        found |= {f"{command} {sub}" for sub in below} if below else {command}
    return found


def hook() -> ModuleType:
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install '.[docs]')")
    spec = importlib.util.spec_from_file_location("command_help", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_options_page_shows_the_help_of_every_command_the_cli_has():
    shown = {words.strip() for words in HELP_LINE.findall(OPTIONS_PAGE.read_text())}
    assert shown == every_command()


def test_the_built_options_page_holds_every_flag_each_command_prints():
    built = hook().with_help(OPTIONS_PAGE.read_text())
    sections = dict(
        (match.group(1).strip(), built[match.end() :].split("```", 1)[0])
        for match in HELP_LINE.finditer(built)
    )
    missing = {
        command: sorted(set(FLAG.findall(cli_help(*command.split()))) - set(FLAG.findall(text)))
        for command, text in sections.items()
    }
    assert {command: flags for command, flags in missing.items() if flags} == {}
    assert "--record-mode" in sections["record"] and "--block-network" in sections["replay"]


def test_the_readmes_links_reach_files_that_exist():
    readme = (ROOT / "README.md").read_text()
    targets = [t for t in re.findall(r"\]\(([^)#]+)[^)]*\)", readme) if "://" not in t]
    assert len(targets) >= 10
    assert [t for t in targets if not (ROOT / t).exists()] == []
