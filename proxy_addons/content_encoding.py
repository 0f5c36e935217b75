"""Content-Encoding: what the bytes of a body are, given the codings its headers declare.

A header alone does not say. vcrpy stores what the client library handed it: under httpx a
gzip reply keeps its compressed bytes and ``Content-Encoding: gzip``; under requests (urllib3
2) and aiohttp the bytes are already decoded and the header stays; with
``decode_compressed_response`` the bytes are decoded and the header goes. :func:`examine`
decides once per body, by trying: bytes that decode with every declared coding are encoded;
bytes that don't, under codings we know, are the content already. Everything that reads a
stored body (matching, validation, replay, redaction) asks here, so the one rule
can't be applied two ways. Nothing here knows mitmproxy.
"""

from __future__ import annotations

import functools
import gzip
import io
import zlib
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any, NamedTuple

import brotli
import zstandard

HEADER = "content-encoding"


class Form(StrEnum):
    """What a body's bytes are, relative to the Content-Encoding declared beside them."""

    IDENTITY = "identity"  # no coding declared (or only identity), or no bytes to decode
    ENCODED = "encoded"  # the bytes decode with the declared codings: sent as they are
    DECODED = "decoded"  # known codings declared, but the bytes are the content already
    UNKNOWN = "unknown"  # a coding we can't decode: the bytes are passed on untouched


class Examined(NamedTuple):
    form: Form
    content: bytes  # the body as the application reads it: decoded when ENCODED


def _decode_deflate(data: bytes) -> bytes:
    """HTTP's deflate is zlib-wrapped; some servers (old IIS) send it raw, so both are read,
    the raw form only when it is one complete stream with nothing after it."""
    try:
        return zlib.decompress(data)
    except zlib.error:
        raw = zlib.decompressobj(-zlib.MAX_WBITS)
        out = raw.decompress(data) + raw.flush()
        if not raw.eof or raw.unused_data:
            raise zlib.error("not a complete deflate stream") from None
        return out


def _decode_zstd(data: bytes) -> bytes:
    # A streaming reader: servers send frames without a content size, which the one-shot
    # ``decompress`` refuses.
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True) as r:
        return r.read()


def _encode_gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)  # no timestamp: the same content, the same bytes


_DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.decompress,
    "x-gzip": gzip.decompress,
    "deflate": _decode_deflate,
    "br": brotli.decompress,
    "zstd": _decode_zstd,
}
_ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": _encode_gzip,
    "x-gzip": _encode_gzip,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": zstandard.ZstdCompressor().compress,
}
_FAILURES = (zlib.error, EOFError, OSError, brotli.error, zstandard.ZstdError)


def codings(header: str | None) -> tuple[str, ...]:
    """The codings a Content-Encoding value lists, in the order they were applied, lowercase;
    ``identity`` (which changes nothing) left out."""
    if not header:
        return ()
    listed = (c.strip().lower() for c in header.split(","))
    return tuple(c for c in listed if c and c != "identity")


def known(names: Iterable[str]) -> bool:
    return all(name in _DECODERS for name in names)


def decode(data: bytes, names: tuple[str, ...]) -> bytes:
    """``data`` with ``names`` undone, last applied first; ValueError if it doesn't decode."""
    try:
        for name in reversed(names):
            data = _DECODERS[name](data)
    except KeyError:
        raise ValueError(f"unknown content coding {name!r}") from None
    except _FAILURES as exc:
        raise ValueError(f"not {name}: {exc}") from None
    return data


def encode(data: bytes, names: tuple[str, ...]) -> bytes:
    """``data`` with ``names`` applied in order; ValueError for a coding we can't apply."""
    for name in names:
        try:
            data = _ENCODERS[name](data)
        except KeyError:
            raise ValueError(f"unknown content coding {name!r}") from None
    return data


def examine(body: bytes, header: str | None) -> Examined:
    """The one decision: what ``body`` is, given the Content-Encoding ``header`` beside it.

    Bytes that decode with every declared coding are encoded (the codings are framed, and
    gzip, zlib and zstd checksummed or magic-numbered: a JSON object or array never decodes
    as any of them); bytes that don't, under codings we know, were stored decoded. Under a
    coding we don't know nothing can be said, and the bytes are taken as they are.
    """
    names = codings(header)
    if not names or not body:
        return Examined(Form.IDENTITY, body)
    if not known(names):
        return Examined(Form.UNKNOWN, body)
    return _examine_known(body, names)


@functools.lru_cache(maxsize=256)  # a replayed body is examined on every replay
def _examine_known(body: bytes, names: tuple[str, ...]) -> Examined:
    try:
        return Examined(Form.ENCODED, decode(body, names))
    except ValueError:
        return Examined(Form.DECODED, body)


def header_of(headers: Iterable[tuple[str, str]]) -> str | None:
    """The Content-Encoding of a list of header pairs, repeated headers joined in order."""
    values = [v for k, v in headers if k.lower() == HEADER]
    return ", ".join(values) if values else None


def readable(body: Any, header: str | None) -> Any:
    """``body`` as the application reads it: decoded if it is encoded as ``header`` says.
    Anything but bytes (text, none, an old cassette's file body) is returned as it is."""
    if not header or not isinstance(body, bytes):
        return body
    return examine(body, header).content


def consistent_headers(
    headers: tuple[tuple[str, str], ...], body: bytes
) -> tuple[tuple[str, str], ...]:
    """Headers to send ``body`` with, byte for byte: a Content-Encoding the bytes don't
    carry (a body stored decoded) is dropped, so no client decodes plain bytes; every other
    header, a true Content-Encoding included, is kept."""
    if examine(body, header_of(headers)).form is not Form.DECODED:
        return headers
    return tuple((k, v) for k, v in headers if k.lower() != HEADER)
