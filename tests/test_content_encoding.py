"""The one rule for what a body's bytes are, given the Content-Encoding declared beside them."""

from __future__ import annotations

import gzip
import json
import os
import time
import tracemalloc
import zlib

import brotli
import pytest
import zstandard
from bombs import MB, bomb
from hypothesis import given
from hypothesis import strategies as st

from proxy_addons.common import content_encoding
from proxy_addons.common.content_encoding import (
    Form,
    TooLarge,
    codings,
    consistent_headers,
    decode,
    encode,
    examine,
    readable,
)

DOCUMENT = json.dumps({"id": "x", "externalAppointmentId": "y" * 200}).encode()
WIRE = {
    "gzip": gzip.compress(DOCUMENT),
    "x-gzip": gzip.compress(DOCUMENT),
    "deflate": zlib.compress(DOCUMENT),
    "br": brotli.compress(DOCUMENT),
    "zstd": zstandard.ZstdCompressor().compress(DOCUMENT),
}
KNOWN = ("gzip", "deflate", "br", "zstd")
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@pytest.mark.parametrize("coding", WIRE)
def test_bytes_that_decode_with_the_declared_coding_are_encoded(coding):
    assert examine(WIRE[coding], coding) == (Form.ENCODED, DOCUMENT)


@pytest.mark.parametrize("coding", KNOWN)
def test_a_body_stored_decoded_under_a_known_coding_is_the_content_already(coding):
    assert examine(DOCUMENT, coding) == (Form.DECODED, DOCUMENT)


def test_no_coding_identity_and_an_empty_body_leave_the_bytes_as_they_are():
    assert examine(DOCUMENT, None) == (Form.IDENTITY, DOCUMENT)
    assert examine(DOCUMENT, "identity") == (Form.IDENTITY, DOCUMENT)
    assert examine(b"", "gzip") == (Form.IDENTITY, b"")


def test_a_coding_nobody_can_decode_passes_the_bytes_on_untouched():
    assert examine(b"\x1f\x9d...", "compress") == (Form.UNKNOWN, b"\x1f\x9d...")
    headers = (("Content-Encoding", "compress"), ("Content-Type", "text/plain"))
    assert consistent_headers(headers, b"\x1f\x9d...") == headers


def test_stacked_codings_are_undone_last_applied_first():
    stacked = brotli.compress(gzip.compress(DOCUMENT))
    assert codings("gzip, br") == ("gzip", "br")
    assert examine(stacked, "GZIP , identity, br") == (Form.ENCODED, DOCUMENT)
    assert encode(DOCUMENT, ("gzip", "br")) == brotli.compress(gzip.compress(DOCUMENT, mtime=0))


def test_raw_deflate_from_old_servers_is_read_too():
    squeeze = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw = squeeze.compress(DOCUMENT) + squeeze.flush()
    assert examine(raw, "deflate") == (Form.ENCODED, DOCUMENT)


def test_only_a_content_encoding_the_body_does_not_carry_is_dropped():
    declared = (("Content-Type", "application/json"), ("content-encoding", "gzip"))
    assert consistent_headers(declared, WIRE["gzip"]) == declared
    assert consistent_headers(declared, DOCUMENT) == (("Content-Type", "application/json"),)


def test_readable_decodes_bytes_and_leaves_other_bodies_alone():
    assert readable(WIRE["br"], "br") == DOCUMENT
    assert readable("text", "gzip") == "text"
    assert readable(None, "gzip") is None
    assert readable(WIRE["br"], None) == WIRE["br"]


def test_decoding_what_is_not_in_that_coding_says_why():
    with pytest.raises(ValueError, match="not gzip"):
        decode(DOCUMENT, ("gzip",))
    with pytest.raises(ValueError, match="unknown content coding 'compress'"):
        encode(DOCUMENT, ("compress",))


@given(
    value=st.lists(JSON_VALUES) | st.dictionaries(st.text(), JSON_VALUES),
    coding=st.sampled_from(KNOWN),
)
def test_no_json_object_or_array_is_ever_taken_for_an_encoded_body(value, coding):
    """Graph's bodies are objects (and arrays). A bare scalar can be valid brotli: the one
    byte ``9`` is an empty brotli stream, the one case where trying decides wrong."""
    text = json.dumps(value).encode()
    assert examine(text, coding) == (Form.DECODED, text)


@given(data=st.binary(max_size=2000), coding=st.sampled_from(KNOWN))
def test_every_body_encoded_with_a_known_coding_decodes_back(data, coding):
    wire = encode(data, (coding,))
    assert examine(wire, coding) == (Form.ENCODED, data)


# --- bounded decoding: a bomb stops at the limit ------------------------------------------

LIMIT = 4 * MB


@pytest.mark.parametrize("coding", KNOWN)
def test_a_bomb_is_refused_at_the_limit_without_decoding_the_rest(coding):
    body = bomb(64, coding)
    assert len(body) < MB // 4
    tracemalloc.start()
    try:
        with pytest.raises(TooLarge, match=f"more than {LIMIT} bytes"):
            decode(body, (coding,), limit=LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * LIMIT  # not the 64 MB it decodes to


def test_the_bombs_are_what_they_claim():
    for coding in KNOWN:
        assert decode(bomb(5, coding), (coding,)) == bytes(5 * MB)


def test_a_bomb_inside_stacked_codings_is_refused_at_the_limit():
    stacked = brotli.compress(bomb(64, "gzip"))  # gzip applied first, then br
    with pytest.raises(TooLarge):
        decode(stacked, ("gzip", "br"), limit=LIMIT)


@pytest.mark.parametrize("coding", KNOWN)
def test_a_body_of_exactly_the_limit_decodes_and_one_byte_more_does_not(coding):
    content = bytes(range(256)) * 4
    assert decode(encode(content, (coding,)), (coding,), limit=len(content)) == content
    with pytest.raises(TooLarge):
        decode(encode(content + b"!", (coding,)), (coding,), limit=len(content))


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br"])  # zstd's reader stops silently
def test_a_truncated_stream_is_not_that_coding_under_a_limit_too(coding):
    wire = encode(DOCUMENT * 50, (coding,))
    with pytest.raises(ValueError, match=f"not {coding}"):
        decode(wire[: len(wire) // 2], (coding,), limit=LIMIT)


def test_without_a_bounded_brotli_a_br_bomb_is_still_refused_at_the_limit(monkeypatch):
    """Brotli 1.1 alone (mitmproxy 11 pins it; brotlicffi comes with the test extras): the
    stream is fed a byte at a time, each byte's output checked."""
    monkeypatch.setattr(content_encoding, "_bounded_brotli", lambda: None)
    with pytest.raises(TooLarge):
        decode(bomb(64, "br"), ("br",), limit=LIMIT)
    assert decode(WIRE["br"], ("br",), limit=LIMIT) == DOCUMENT
    with pytest.raises(ValueError, match="not br"):
        decode(WIRE["br"][:-3], ("br",), limit=LIMIT)


def test_an_incompressible_brotli_body_near_the_limit_decodes_quickly():
    """A body whose brotli stream is as long as its content: read in chunks, not a byte at
    a time, where the decompressor can bound its output (a hostile client's cheap stall)."""
    content = os.urandom(LIMIT - 1)
    wire = brotli.compress(content, quality=0)
    started = time.thread_time()
    assert decode(wire, ("br",), limit=LIMIT) == content
    assert time.thread_time() - started < 0.5
