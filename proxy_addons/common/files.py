"""Writing a whole file so that readers, and a crash, only ever see the old or the new one.

The emulator's state file, a rewritten cassette and the summary JSON are all replaced the
same way: the new bytes go to a temporary file in the same folder (so the rename cannot cross
file systems), are fsynced, and the temporary file is renamed over the target; then the
folder is fsynced so the rename itself survives a power cut. A file that must not replace
anything (a new cassette, an import's output) is linked into place instead of renamed:
``link`` refuses to clobber a file that appeared meanwhile.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

MAX_FILE_NAME = 255  # bytes in one file name on ext4, XFS, btrfs, APFS...
# What ``temp_file_beside`` adds to a name: ".NAME.XXXXXXXX.tmp" (mkstemp's 8 random letters).
TEMP_PREFIX, TEMP_SUFFIX, TEMP_RANDOM = ".", ".tmp", 8
TEMP_DECORATION = len(TEMP_PREFIX) + len(".") + TEMP_RANDOM + len(TEMP_SUFFIX)
# The longest name of a file that gets a temporary twin beside it, and still fits.
MAX_REPLACED_NAME = MAX_FILE_NAME - TEMP_DECORATION


def name_size(name: str) -> int:
    """Bytes ``name`` takes on disk: file systems count bytes, not characters."""
    return len(os.fsencode(name))


def cut_to_size(name: str, limit: int) -> str:
    """The longest start of ``name`` that fits ``limit`` bytes, cut between characters
    (cutting the bytes would leave half a character, which no longer decodes)."""
    size = 0
    for index, char in enumerate(name):
        size += name_size(char)
        if size > limit:
            return name[:index]
    return name


def impossible_name(name: str) -> str | None:
    """Why no file system could hold a file called ``name``, or None if one can."""
    if not name or name in (".", ".."):
        return "is empty or a dot name"
    if "\0" in name:
        return "holds a NUL character"
    if "/" in name:
        return "holds a '/'"
    try:
        os.fsencode(name)
    except UnicodeEncodeError as exc:
        return f"holds {name[exc.start]!r}, which no file name can hold"
    return None


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data``: one ``os.write`` may take only part of it."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def temp_file_beside(path: Path, data: bytes, *, fsync: bool = True) -> str:
    """A temporary file next to ``path`` holding ``data`` (mode 0644), closed; its name."""
    # A long ``path.name`` is cut so that the temporary name fits too: the file itself may
    # have a name of up to 255 bytes, its twin adds 14.
    prefix = f"{TEMP_PREFIX}{cut_to_size(path.name, MAX_REPLACED_NAME)}."
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=TEMP_SUFFIX)
    try:
        write_all(fd, data)
        if fsync:
            os.fsync(fd)
        os.fchmod(fd, 0o644)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def sync_folder(folder: Path) -> None:
    """Make a rename or link in ``folder`` durable (raises OSError if the disk refuses)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_atomically(
    path: Path, data: bytes, *, fsync: bool = True, replaced: Callable[[], None] | None = None
) -> None:
    """Replace ``path`` with ``data``: readers see the old file or the new one, never half.

    ``replaced`` runs the moment the new file is in place, before the folder is synced: what
    must follow the file's content exactly (the recorder's idea of what the file holds) has
    to change then, even if the sync fails afterwards, and never if the file was not replaced.
    """
    tmp = temp_file_beside(path, data, fsync=fsync)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if replaced is not None:
        replaced()
    if fsync:
        sync_folder(path.parent)


def create_new(path: Path, data: bytes, *, fsync: bool = True) -> bool:
    """Bring ``path`` into existence holding ``data``, whole; False if it already exists.

    Readers never see it half written, and a file someone else created meanwhile is never
    overwritten: ``os.link`` of a complete temporary file refuses an existing name.
    """
    tmp = temp_file_beside(path, data, fsync=fsync)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    if fsync:
        sync_folder(path.parent)
    return True
