"""Writing a whole file so that readers, and a crash, only ever see the old or the new one.

The emulator's state file, a rewritten cassette and the summary JSON are all replaced the
same way: the new bytes go to a temporary file in the same folder (so the rename cannot cross
file systems), are fsynced, and the temporary file is renamed over the target; then the
folder is fsynced so the rename itself survives a power cut.
"""

from __future__ import annotations

import os
import tempfile
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


def replace_atomically(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Replace ``path`` with ``data``: readers see the old file or the new one, never half."""
    tmp = temp_file_beside(path, data, fsync=fsync)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if fsync:
        sync_folder(path.parent)
