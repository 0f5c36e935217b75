"""Decompression bombs: bodies of a few KB or MB that decode to many MB or a GB of zeros;
and YAML alias bombs (:func:`alias_bomb`), a few hundred bytes that are 10**N items.

Built without compressing the whole content (a GB at zlib level 9 takes long): the deflate
stream of 1 MB of zeros is made once and, cut after a full flush, repeated, which leaves a
valid stream; gzip's and zlib's checksums are computed over the zeros as they go.
"""

from __future__ import annotations

import struct
import zlib

import brotli
import zstandard

MB = 1 << 20
_ZEROS = bytes(MB)


def _deflate_zeros(megabytes: int) -> bytes:
    """A raw deflate stream of ``megabytes`` MB of zeros."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    first = squeeze.compress(_ZEROS) + squeeze.flush(zlib.Z_FULL_FLUSH)
    again = squeeze.compress(_ZEROS) + squeeze.flush(zlib.Z_FULL_FLUSH)
    return first + again * (megabytes - 1) + squeeze.flush()


def bomb(megabytes: int, coding: str) -> bytes:
    """``megabytes`` MB of zeros in ``coding`` (gzip, deflate, br or zstd)."""
    if coding == "gzip":
        crc = 0
        for _ in range(megabytes):
            crc = zlib.crc32(_ZEROS, crc)
        head = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
        tail = struct.pack("<II", crc, (megabytes * MB) & 0xFFFFFFFF)
        return head + _deflate_zeros(megabytes) + tail
    if coding == "deflate":  # zlib-wrapped, as HTTP's deflate is
        adler = 1
        for _ in range(megabytes):
            adler = zlib.adler32(_ZEROS, adler)
        return b"\x78\xda" + _deflate_zeros(megabytes) + struct.pack(">I", adler)
    if coding == "br":
        return brotli.compress(bytes(megabytes * MB), quality=1)
    if coding == "zstd":
        writer = zstandard.ZstdCompressor(level=3).compressobj()
        return b"".join(writer.compress(_ZEROS) for _ in range(megabytes)) + writer.flush()
    raise ValueError(f"no bomb in {coding!r}")


def alias_bomb(levels: int, indent: str = "") -> str:
    """YAML lists of ten aliases of the list before: a few hundred bytes, 10**levels items."""
    lines = [f"{indent}- &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"{indent}- &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"
