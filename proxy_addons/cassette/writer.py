"""Durable, locked, append-only writing of one vcrpy cassette file.

The layout is :data:`cassette.HEADER` (``version`` first, ``interactions`` last) followed by
one YAML list item per interaction, so recording one more interaction is appending one more
complete block at the end of the file, never rewriting it. The rules that keep the file a
cassette plain vcrpy loads at every moment, whoever is killed when:

- The file comes into existence with its first interaction: header and block are written to
  a temporary file in the same folder, fsynced, and ``os.link``-ed into place, which refuses
  to clobber a file someone else created meanwhile (that file is then appended to). An empty
  ``interactions:`` would load as None and break vcrpy, so there is never such a file.
- Every later interaction is one ``os.write`` of one complete block to an ``O_APPEND``
  descriptor under an exclusive ``flock``, then ``fsync`` (after the lock is released, so
  concurrent appends share one disk flush), all before :meth:`append` returns, so before
  the recorder releases the response to the client.
- Under the lock, before writing, the writer re-checks the file: that its descriptor still
  names the file at the path (another process may have replaced it atomically, then it
  reopens); that the file is in our layout (a cassette vcrpy wrote has ``interactions``
  first and ``version`` last: it is rewritten into ours once, atomically); and that the last
  block is complete (see :meth:`heal`).
- Every rewrite is a temporary file, fsync, ``os.replace`` and an fsync of the folder, done
  while holding the lock on the file being replaced.

Linux checks for a pending SIGKILL between the pages of one ``write()``, so a kill landing
inside the write of a block that spans a page boundary can leave the first part of that
block. Its response was never released (the recorder answers only once ``append`` has
returned), so nothing answered is lost; but until the next writer of ours opens the file,
it ends in a torn block that plain vcrpy refuses. Every append (and every start of a
recorder) first drops such a torn tail under the lock, and our readers leave it out
(``cassette.torn_tail``). The file holds nothing but vcrpy's YAML: no padding, no line of
blanks, no trailing whitespace, so a cassette passes pre-commit's whitespace hooks as written.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

from proxy_addons.cassette import cassette
from proxy_addons.common.files import create_new, replace_atomically, write_all

BLOCK_START = cassette.BLOCK_START
_BLOCK_SPLIT = re.compile(r"(?m)^(?=- request:)")

Keep = Callable[[list[str]], list[str]]
Committed = Callable[[], None]


class CassetteWriteError(Exception):
    """The interaction could not be made durable; ``str()`` says why."""


class CassetteWriter:
    """Appends interaction blocks to one cassette; safe across threads and processes."""

    def __init__(self, path: Path | str, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._mutex = threading.Lock()
        self._fd: int | None = None

    # --- public ---------------------------------------------------------------------------

    def append(
        self, block: str, *, keep: Keep | None = None, committed: Committed | None = None
    ) -> None:
        """Make ``block`` (one ``cassette.interaction_yaml``) durable at the end of the file.

        With ``keep``, the blocks already in the file are passed through it first and the
        file is rewritten atomically with those it returns plus ``block`` (record mode
        ``all`` uses this to replace what it re-records). ``committed`` runs, still under the
        lock, once that rewrite is in place, and not at all if it fails: the caller's account
        of what the file holds changes with the file, before any other rewrite reads it.
        """
        data = block.encode("utf-8")
        sync_fd = None
        with self._mutex:
            try:
                sync_fd = self._append(data, keep, committed)
            except OSError as exc:
                raise CassetteWriteError(f"{self.path}: {exc.strerror or exc}") from exc
            except cassette.CassetteError as exc:
                raise CassetteWriteError(str(exc)) from exc
        if sync_fd is None:
            return
        # Outside the lock and the mutex: appends that arrive while one thread waits for the
        # disk are written meanwhile, and the next fsync makes them durable together.
        try:
            os.fsync(sync_fd)
        except OSError as exc:
            raise CassetteWriteError(f"{self.path}: {exc.strerror or exc}") from exc
        finally:
            os.close(sync_fd)

    def _append(self, data: bytes, keep: Keep | None, committed: Committed | None) -> int | None:
        """Write ``data``; a descriptor to fsync when it was appended (creation and rewrites
        are fsynced before they are linked into place)."""
        for _ in range(100):  # each retry means another process replaced the file
            fd = self._current_fd()
            if fd is None:
                if self._create(cassette.HEADER.encode() + data):
                    return None
                continue
            with _locked(fd):
                outcome = self._append_locked(fd, data, keep, committed)
            if outcome == "appended":
                return os.dup(fd) if self.fsync else None
            self._close()  # after unlocking: closing would drop the lock
            if outcome == "replaced":
                return None
        raise CassetteWriteError(f"{self.path}: the file keeps being replaced")

    def _append_locked(
        self, fd: int, data: bytes, keep: Keep | None, committed: Committed | None
    ) -> str:
        if not self._is_current(fd):
            return "stale"
        if keep is not None or not self._in_our_layout(fd):
            self._rewrite(fd, keep or (lambda blocks: blocks), data, committed)
            return "replaced"
        self._drop_torn_tail(fd)
        self._write_all(fd, data)
        return "appended"

    def heal(self) -> str | None:
        """Drop a torn last block (an append cut short by a kill); say so if one was."""
        with self._mutex:
            fd = self._current_fd()
            if fd is None:
                return None
            with _locked(fd):
                current = self._is_current(fd)
                message = self._drop_torn_tail(fd) if current and self._in_our_layout(fd) else None
            if not current:
                self._close()
            return message

    def close(self) -> None:
        with self._mutex:
            self._close()

    # --- the file at the path --------------------------------------------------------------

    def _current_fd(self) -> int | None:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
            except FileNotFoundError:
                return None
        return self._fd

    def _is_current(self, fd: int) -> bool:
        """Whether ``fd`` is still the file at the path (not replaced or deleted meanwhile)."""
        mine = os.fstat(fd)
        try:
            there = os.stat(self.path)
        except FileNotFoundError:
            return False
        return (mine.st_ino, mine.st_dev) == (there.st_ino, there.st_dev)

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _in_our_layout(self, fd: int) -> bool:
        header = cassette.HEADER.encode()
        return os.pread(fd, len(header), 0) == header

    # --- writing ---------------------------------------------------------------------------

    def _write_all(self, fd: int, data: bytes) -> None:
        size = os.fstat(fd).st_size
        try:
            write_all(fd, data)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)  # a full disk must not leave half a block behind
            raise

    def _create(self, data: bytes) -> bool:
        """Bring the file into existence holding ``data``; False if it appeared meanwhile."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return create_new(self.path, data, fsync=self.fsync)

    def _rewrite(self, fd: int, keep: Keep, data: bytes, committed: Committed | None) -> None:
        """Replace the file (locked through ``fd``) by our layout: kept blocks, then ``data``."""
        blocks = self._blocks(fd)
        text = cassette.HEADER + "".join(keep(blocks))
        replace_atomically(
            self.path, text.encode("utf-8") + data, fsync=self.fsync, replaced=committed
        )

    def _blocks(self, fd: int) -> list[str]:
        """The interactions in the file, each as the block our layout holds it as."""
        if self._in_our_layout(fd):
            self._drop_torn_tail(fd)
            return blocks_of(_read_all(fd).decode("utf-8"))
        if os.fstat(fd).st_size == 0:
            return []
        return [
            cassette.interaction_yaml(i.request, i.response) for i in cassette.load_file(self.path)
        ]

    # --- torn tails ------------------------------------------------------------------------

    def _drop_torn_tail(self, fd: int) -> str | None:
        """Truncate a torn last block (``cassette.torn_tail``: the same rule our readers
        apply); a message saying so, or None if the file ended whole. Only the end of the
        file is read: the last block, found by scanning backwards."""
        size = os.fstat(fd).st_size
        torn = cassette.torn_length(fd, size)
        if not torn:
            return None
        os.ftruncate(fd, size - torn)
        if self.fsync:
            os.fsync(fd)
        return (
            f"{self.path}: dropped an incomplete last interaction ({torn} bytes, "
            "an append cut short by a kill); its response had not been sent"
        )


def blocks_of(text: str) -> list[str]:
    """The interaction blocks of a cassette's text in our layout, each as we write it: the
    blank padding line that older versions put before a block at a page boundary goes."""
    blocks = _BLOCK_SPLIT.split(text[len(cassette.HEADER) :])
    return [_PADDING.sub("\n", b) for b in blocks if b]


_PADDING = re.compile(r"\n[ \t\n]*\Z")


@contextlib.contextmanager
def _locked(fd: int):  # type: ignore[no-untyped-def]
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)
