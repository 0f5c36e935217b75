"""The README's and the site's command blocks, run as a reader runs them.

The convention, for every Markdown file the project ships as documentation (``README.md`` and
``docs/*.md``):

- a **command block** is a fenced block marked ``console``, ``sh``, ``bash`` or ``shell``, or
  any fenced block with a line that starts with ``$ ``;
- in a ``console`` block (or an unmarked one) the commands are the ``$ `` lines and what follows
  each is what it prints; in a shell block every line is a command, ``# `` comments aside; a
  line ending in a backslash goes on on the next;
- a command block that can't run here, offline and in seconds (it starts a proxy that runs
  until Ctrl-C, needs a client in another terminal, installs, or runs for minutes), carries
  ``<!-- not-run: REASON -->`` on the line before it (blank lines between allowed); every
  other command block is run, each command with ``bash`` in a scratch folder that holds the
  checkout's ``cassettes``, and must exit 0 within a minute; a ``console`` block's shown
  output must be in what the command printed (``...`` stands for lines left out).

So every command block is either run or named as not run, with its reason.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = frozenset({"sh", "bash", "shell"})
# a fenced block, indented too (inside a list item): its indent, its language, its body
FENCE = re.compile(r"^( *)```(\S*)[^\n]*\n(.*?)^\1```[ \t]*$", re.M | re.S)
NOT_RUN = re.compile(r"<!-- not-run: (\S[^>]*?) -->\s*\Z")


@dataclass(frozen=True)
class CommandBlock:
    """One command block: where it is, its commands with what each shows, and why it is not
    run (``None`` when it is)."""

    where: str
    language: str
    commands: tuple[tuple[str, tuple[str, ...]], ...]
    not_run: str | None


def joined(lines: list[str]) -> list[str]:
    """Lines with backslash continuations joined, as the shell reads them."""
    out: list[str] = []
    carry = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            carry += line.rstrip()[:-1] + " "
            continue
        out.append(carry + line)
        carry = ""
    if carry:
        out.append(carry)
    return out


def commands_of(language: str, body: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    lines = body.splitlines()
    if language in SHELLS:
        return tuple(
            (line.strip(), ())
            for line in joined(lines)
            if line.strip() and not line.lstrip().startswith("#")
        )
    found: list[tuple[str, list[str]]] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("$ "):
            command = [line[2:]]
            while command[-1].rstrip().endswith("\\") and index + 1 < len(lines):
                index += 1
                command.append(lines[index])
            found.append((" ".join(joined(command)).strip(), []))
        elif found:
            found[-1][1].append(line)
        index += 1
    return tuple((command, tuple(shown)) for command, shown in found)


def command_blocks(path: Path) -> list[CommandBlock]:
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        language, body = match.group(2), textwrap.dedent(match.group(3))
        is_commands = language in SHELLS or language == "console" or re.search(r"^\$ ", body, re.M)
        if not is_commands:
            continue
        line = text.count("\n", 0, match.start()) + 1
        marker = NOT_RUN.search(text[: match.start()])
        blocks.append(
            CommandBlock(
                where=f"{path.relative_to(ROOT)}:{line}",
                language=language,
                commands=commands_of(language, body),
                not_run=marker.group(1) if marker else None,
            )
        )
    return blocks


BLOCKS = [block for path in DOCUMENTS for block in command_blocks(path)]
RUN = [block for block in BLOCKS if block.not_run is None]


def test_the_documentation_has_command_blocks_run_and_not_run():
    assert len(RUN) >= 10 and len(BLOCKS) - len(RUN) >= 10


def test_every_command_block_has_commands():
    assert [block.where for block in BLOCKS if not block.commands] == []


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("docs-commands")
    (folder / "cassettes").symlink_to(ROOT / "cassettes")
    return folder


def run(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``command`` as a reader runs it: bash, this environment's scripts first on the PATH,
    this checkout first on the import path, a fixed terminal width."""
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "COLUMNS": "100",
        "NO_COLOR": "1",
    }
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("block", RUN, ids=[block.where for block in RUN])
def test_a_command_block_runs_and_prints_what_it_shows(block: CommandBlock, scratch: Path):
    for command, shown in block.commands:
        done = run(command, scratch)
        printed = done.stdout + done.stderr
        assert done.returncode == 0, (
            f"{block.where}: `{command}` exited {done.returncode}:\n{printed}"
        )
        missing = [line for line in shown if line.strip() not in ("", "...")]
        missing = [line for line in missing if line.rstrip() not in printed]
        assert missing == [], f"{block.where}: `{command}` did not print these lines:\n{printed}"


def test_every_fence_is_read_as_a_block():
    """A fence the pattern misses would hide its block from this test: none is missed."""
    unread = {}
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        fences = len(re.findall(r"^ *```", text, re.M))
        if fences != 2 * len(FENCE.findall(text)):
            unread[path.name] = fences
    assert unread == {}
