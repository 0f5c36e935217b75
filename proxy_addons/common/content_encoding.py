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


CHUNK = 64 * 1024  # the most any decoder step produces before the limit is checked again


class TooLarge(ValueError):
    """A body that decodes to more than ``limit`` bytes. Decoding stopped as soon as it
    passed the limit, so a 1 MB gzip bomb never becomes 1 GB."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"decodes to more than {limit} bytes")
        self.limit = limit


class _Output:
    """Decoded bytes, refused as soon as they outgrow ``limit`` (None: no limit)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.data = bytearray()

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if self.limit is not None and len(self.data) > self.limit:
            raise TooLarge(self.limit)


def _inflate(data: bytes, wbits: int, out: _Output) -> bytes:
    """One zlib, gzip or raw deflate stream from the start of ``data``, ``CHUNK`` bytes of
    output at a time; what follows the stream is returned. Raises zlib.error when the stream
    is broken or cut short. The input goes in ``CHUNK`` bytes at a time too: zlib copies what
    a call leaves unread, and a bomb leaves nearly all of it."""
    inflater = zlib.decompressobj(wbits)
    view = memoryview(data)
    fed = 0
    pending: bytes | memoryview = b""
    while not inflater.eof:
        if not pending and fed < len(data):
            pending, fed = view[fed : fed + CHUNK], fed + CHUNK
        chunk = inflater.decompress(pending, CHUNK)
        pending = inflater.unconsumed_tail
        if not chunk and not pending and fed >= len(data) and not inflater.eof:
            raise zlib.error("incomplete or truncated stream")
        out.add(chunk)
    return inflater.unused_data + view[fed:].tobytes()


def _decode_gzip(data: bytes, out: _Output) -> None:
    """Every gzip member in turn, as ``gzip.decompress`` reads them."""
    while data:
        data = _inflate(data, 16 + zlib.MAX_WBITS, out)


def _decode_deflate(data: bytes, out: _Output) -> None:
    """HTTP's deflate is zlib-wrapped; some servers (old IIS) send it raw, so both are read,
    the raw form only when it is one complete stream with nothing after it."""
    try:
        _inflate(data, zlib.MAX_WBITS, out)
        return
    except zlib.error:
        out.data.clear()
    if _inflate(data, -zlib.MAX_WBITS, out):
        raise zlib.error("not a complete deflate stream")


@functools.cache  # decided on the first body that needs it: brotlicffi loads only then
def _bounded_brotli() -> tuple[Callable[[], Any], tuple[type[Exception], ...]] | None:
    """A brotli decompressor whose ``process`` takes ``output_buffer_limit`` (Brotli 1.2 or
    brotlicffi 1.2, which aiohttp's br support brings), with its error type; None when only
    Brotli 1.1 is there (mitmproxy 11 pins it)."""
    modules: list[Any] = [brotli]
    try:
        import brotlicffi

        modules.append(brotlicffi)
    except ImportError:
        pass
    for module in modules:
        try:
            module.Decompressor().process(b"", output_buffer_limit=1)
        except TypeError:
            continue
        return module.Decompressor, (module.error,)
    return None


def _decode_brotli(data: bytes, out: _Output) -> None:
    """Without a limit, in one call. With one, ``CHUNK`` bytes of output at a time where the
    decompressor can bound a call's output; else (Brotli 1.1, which has no such bound, and
    where one byte of a stream can stand for 16 MB) a byte of input at a time."""
    if out.limit is None:
        out.add(brotli.decompress(data))
        return
    found = _bounded_brotli()
    if found is None:
        decompressor = brotli.Decompressor()
        view = memoryview(data)
        for at in range(len(data)):
            out.add(decompressor.process(view[at : at + 1].tobytes()))
        if not decompressor.is_finished():
            raise brotli.error("not a complete brotli stream")
        return
    make, errors = found
    bounded = make()
    view, fed = memoryview(data), 0
    try:
        while True:
            piece = b""
            if fed < len(data) and bounded.can_accept_more_data():
                piece, fed = view[fed : fed + CHUNK].tobytes(), fed + CHUNK
            produced = bounded.process(piece, output_buffer_limit=CHUNK)
            out.add(produced)
            # All fed: Brotli 1.2 may still hold output while saying it can take more, so it
            # is asked (with nothing) until it gives nothing.
            if not piece and not produced:
                break
        finished = bounded.is_finished()
    except errors as exc:
        raise brotli.error(str(exc)) from None
    if not finished:
        raise brotli.error("not a complete brotli stream")


def _decode_zstd(data: bytes, out: _Output) -> None:
    # A streaming reader: servers send frames without a content size, which the one-shot
    # ``decompress`` refuses.
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True) as r:
        while chunk := r.read(CHUNK):
            out.add(chunk)


def _encode_gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)  # no timestamp: the same content, the same bytes


_DECODERS: dict[str, Callable[[bytes, _Output], None]] = {
    "gzip": _decode_gzip,
    "x-gzip": _decode_gzip,
    "deflate": _decode_deflate,
    "br": _decode_brotli,
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


def decode(data: bytes, names: tuple[str, ...], *, limit: int | None = None) -> bytes:
    """``data`` with ``names`` undone, last applied first; ValueError if it doesn't decode.

    With a ``limit``, decoding is a stream that stops as soon as a step's output passes it
    and raises :class:`TooLarge`: memory and time stay bounded by the limit, whatever the
    ratio of the input (what a request body gets). A step between codings is held to the
    same limit plus what a compressed form may add (``_slack``).
    """
    try:
        for step, name in enumerate(reversed(names)):
            last = step == len(names) - 1
            out = _Output(None if limit is None else limit if last else limit + _slack(limit))
            _DECODERS[name](data, out)
            data = bytes(out.data)
    except KeyError:
        raise ValueError(f"unknown content coding {name!r}") from None
    except TooLarge:
        assert limit is not None
        raise TooLarge(limit) from None  # an inner step's too: its content is larger still
    except _FAILURES as exc:
        raise ValueError(f"not {name}: {exc}") from None
    return data


def _slack(limit: int) -> int:
    """How much larger than its content a compressed form can be: gzip, deflate, brotli and
    zstd store incompressible data with a few bytes per block of 16 KB or more."""
    return limit // 256 + 1024


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
