"""``record``'s options (the Record addon's), in the command line's order."""

from __future__ import annotations

from collections.abc import Sequence

from proxy_addons.cassette.record_mode import RECORDER_MODES, RecordMode
from proxy_addons.common.option_table import Option
from proxy_addons.options.cassette import CASSETTE, ECHO, MATCH_RULE, PLAYBACK_REPEATS

RECORD_MODE = Option(
    "graph_record_mode",
    str,
    str(RecordMode.ONCE),
    "once: record into a new cassette only (an existing file is refused); "
    "new_episodes: replay what the cassette answers, record the rest; all: record "
    "everything, replacing what is re-recorded; none: replay only.",
    flag="--record-mode",
    flag_help="vcrpy's record modes (default: %(default)s, which refuses an existing cassette)",
    choices=RECORDER_MODES,
)
UPSTREAM = Option(
    "graph_upstream",
    str,
    "",
    "Base URL to send intercepted Graph calls to instead of the real host (the "
    "cassette keeps the real Graph URL). Empty: the real host.",
    flag="--upstream",
    flag_help="send Graph calls to this base URL instead of the real host; the cassette keeps "
    "the real Graph URL",
    metavar="URL",
)
REDACT_HEADERS = Option(
    "graph_redact_headers",
    Sequence[str],
    [],
    "Header names to redact besides Authorization, Proxy-Authorization, Cookie and Set-Cookie.",
    flag="--redact-header",
    flag_help="also redact this header (repeatable; Authorization, Cookie, Set-Cookie always)",
    metavar="NAME",
)
REDACT_FIELDS = Option(
    "graph_redact_fields",
    Sequence[str],
    [],
    "JSON field names (any depth; also query and form parameters) to redact besides "
    "the OAuth credentials, e.g. emailAddress, smsCapablePhoneNumber.",
    flag="--redact-field",
    flag_help="also redact this JSON field at any depth, e.g. emailAddress (repeatable)",
    metavar="NAME",
)
DECODE_COMPRESSED = Option(
    "graph_record_decode_compressed",
    bool,
    False,
    "Store compressed (gzip, deflate, br, zstd) response bodies decoded, without their "
    "Content-Encoding, like vcrpy's decode_compressed_response. Off: stored as received, "
    "as vcrpy does by default.",
    flag="--decode-compressed-response",
    flag_help="store compressed response bodies decoded, without their Content-Encoding "
    "(vcrpy's decode_compressed_response; default: as received, as vcrpy does)",
)
FSYNC = Option(
    "graph_record_fsync",
    bool,
    True,
    "fsync each interaction before its response is released (survives power loss, "
    "not only a killed proxy).",
    flag="--no-fsync",
    flag_help="write each interaction without fsync (still safe from a killed proxy, not from "
    "a power cut)",
    inverted=True,
)

# What is redacted besides the credentials: the recorder's, and the importers' too.
REDACTION = (REDACT_HEADERS, REDACT_FIELDS)

RECORD = (
    CASSETTE.for_command(flag_help="cassette file to record into", required=True),
    RECORD_MODE,
    UPSTREAM,
    *REDACTION,
    PLAYBACK_REPEATS,
    ECHO,
    *MATCH_RULE,
    DECODE_COMPRESSED,
    FSYNC,
)
