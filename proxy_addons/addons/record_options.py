"""The recorder's options, declared in one place: the addon and the CLI read the same names,
defaults and choices."""

from __future__ import annotations

from collections.abc import Sequence

from mitmproxy.addonmanager import Loader

from proxy_addons.addons.options import declare_cassette, declare_playback_repeats
from proxy_addons.cassette.record_mode import RecordMode
from proxy_addons.graph.validation import ValidateMode

RECORD_MODES = tuple(RecordMode)
VALIDATE_MODES = tuple(ValidateMode)


def declare(loader: Loader) -> None:
    declare_cassette(loader)
    declare_playback_repeats(loader)
    loader.add_option(
        "graph_record_mode",
        str,
        str(RecordMode.ONCE),
        "once: record into a new cassette only (an existing file is refused); "
        "new_episodes: replay what the cassette answers, record the rest; all: record "
        "everything, replacing what is re-recorded; none: replay only.",
        choices=RECORD_MODES,
    )
    loader.add_option(
        "graph_upstream",
        str,
        "",
        "Base URL to send intercepted Graph calls to instead of the real host (the "
        "cassette keeps the real Graph URL). Empty: the real host.",
    )
    loader.add_option(
        "graph_redact_headers",
        Sequence[str],
        [],
        "Header names to redact besides Authorization, Proxy-Authorization, Cookie and Set-Cookie.",
    )
    loader.add_option(
        "graph_redact_fields",
        Sequence[str],
        [],
        "JSON field names (any depth; also query and form parameters) to redact besides "
        "the OAuth credentials, e.g. emailAddress, smsCapablePhoneNumber.",
    )
    loader.add_option(
        "graph_record_fsync",
        bool,
        True,
        "fsync each interaction before its response is released (survives power loss, "
        "not only a killed proxy).",
    )
    loader.add_option(
        "graph_record_decode_compressed",
        bool,
        False,
        "Store compressed (gzip, deflate, br, zstd) response bodies decoded, without their "
        "Content-Encoding, like vcrpy's decode_compressed_response. Off: stored as received, "
        "as vcrpy does by default.",
    )


def declare_validate(loader: Loader) -> None:
    """Validation's option (``validation_report.Validation``), the recorder's default: record
    validates unless told not to; replay and simulate carry the addon only when asked."""
    loader.add_option(
        "graph_validate",
        str,
        str(ValidateMode.WARN),
        "Check requests and responses against the models: warn logs each problem, "
        "enforce also answers an invalid request with Graph's 400 without sending it.",
        choices=VALIDATE_MODES,
    )
