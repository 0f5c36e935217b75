"""Writing a whole file so that readers, and a crash, only ever see the old or the new one.

The emulator's state file, a rewritten cassette and the summary JSON are all replaced the
same way: the new bytes go to a temporary file in the same folder (so the rename cannot cross
file systems), are fsynced, and the temporary file is renamed over the target; then the
folder is fsynced so the rename itself survives a power cut.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data``: one ``os.write`` may take only part of it."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def temp_file_beside(path: Path, data: bytes, *, fsync: bool = True) -> str:
    """A temporary file next to ``path`` holding ``data`` (mode 0644), closed; its name."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
