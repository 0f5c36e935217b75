"""The cassette a record mode works on: refused with one line, or opened with what it holds.

Every refusal is decided here, at start, so that a cassette the recorder can't use is exit
status 2 and a message before the proxy listens, never a 500 on the first request. Opening
heals a torn last block (an append cut short by a kill) before reading the file, and hands
back the writer together with the interactions it already holds; nothing here knows mitmproxy.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import NamedTuple

from proxy_addons.cassette import cassette
from proxy_addons.cassette.cassette import Interaction
from proxy_addons.cassette.record_mode import RecordMode
from proxy_addons.cassette.redaction import Placeholders
from proxy_addons.cassette.writer import CassetteWriter, blocks_of

logger = logging.getLogger(__name__)


class CassetteRefused(Exception):
    """A cassette the record mode can't use; ``str()`` is the one line a user sees."""


class OpenCassette(NamedTuple):
    """A cassette ready for its record mode: where new interactions go (no writer in mode
    ``none``), what it held at start (and, when we write, each interaction's block as the
    writer will find it in the file), and the placeholder numbers to continue from."""

    path: Path
    writer: CassetteWriter | None
    interactions: list[Interaction]
    placeholders: Placeholders
    blocks: list[str]

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def unwritable_reason(path: Path) -> str | None:
    """Why a cassette can't be created or rewritten at ``path``, or None if it can.

    The writer creates missing folders and puts temporary files beside the cassette, so
    what counts is the nearest ancestor that exists: it must be a folder we may write into.
    """
    if path.exists() and not os.access(path, os.W_OK):
        return f"no permission to write {path}"
    for ancestor in (path.parent, *path.parent.parents):
        if not ancestor.exists():
            continue
        if not ancestor.is_dir():
            return f"{ancestor} is not a folder"
        if not os.access(ancestor, os.W_OK | os.X_OK):
            return f"no permission to write into {ancestor}"
        return None
    return None


def refusal(path: Path, mode: RecordMode) -> str | None:
    """The one line that refuses ``path`` for ``mode``, or None when the mode can use it."""
    if mode.records and path.is_dir():
        return f"{path}: is a folder; record mode {mode!r} needs a cassette file to record into"
    if mode.needs_new_cassette and path.exists():
        return (
            f"{path}: cassette exists; record mode 'once' records only into a new "
            "cassette (use --record-mode new_episodes to add to it, or all to re-record)"
        )
    if not mode.records and not path.exists():
        return f"{path}: no such cassette file or folder"
    unwritable = unwritable_reason(path) if mode.records else None
    return f"{path}: cannot record here: {unwritable}" if unwritable else None


def open_cassette(path: Path, mode: RecordMode, *, fsync: bool) -> OpenCassette | None:
    """The cassette at ``path`` opened for ``mode``; raises :class:`CassetteRefused`.

    None for the bundled cassettes in a mode that records: that is the option's default
    (shared with replay), which names nothing to record into yet. A refusal after the writer
    was made closes it: a refused cassette leaves no descriptor behind.
    """
    if mode.records and path.resolve() == cassette.bundled_cassettes().resolve():
        return None
    reason = refusal(path, mode)
    if reason is not None:
        raise CassetteRefused(reason)
    writer = CassetteWriter(path, fsync=fsync) if mode.records else None
    try:
        interactions, text = _held(path, writer)
        placeholders = Placeholders.continuing(text) if text is not None else Placeholders()
        blocks = _blocks(interactions, text) if text is not None else []
    except BaseException:
        if writer is not None:
            writer.close()
        raise
    return OpenCassette(path, writer, interactions, placeholders, blocks)


def _blocks(interactions: list[Interaction], text: str) -> list[str]:
    """Each interaction's block as the writer finds it in the file: as the file holds it in
    our layout, as the writer converts it (vcrpy's own dump) in any other."""
    if text.startswith(cassette.HEADER):
        blocks = blocks_of(text)
        if len(blocks) == len(interactions):
            return blocks
    return [cassette.interaction_yaml(i.request, i.response) for i in interactions]


def _held(path: Path, writer: CassetteWriter | None) -> tuple[list[Interaction], str | None]:
    """The interactions already in the cassette, after healing a torn tail if we write; and,
    if we write, the file's text, read once for both (its placeholders continue)."""
    if not path.exists():
        return [], None
    try:
        if writer is None:
            return cassette.load(path), None
        try:
            healed = writer.heal()
        except OSError as exc:
            raise CassetteRefused(f"{writer.path}: {exc.strerror or exc}") from None
        if healed:
            logger.warning("%s", healed)
        text = cassette.read_text(path)
        with cassette.no_cyclic_gc():
            return cassette.load_file(path, text), text
    except cassette.CassetteError as exc:
        raise CassetteRefused(str(exc)) from None
