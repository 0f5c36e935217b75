"""Who answered a Graph request: the fixed set every addon, the summary and the journal use.

A value is written into ``flow.metadata`` by ``flows.answer`` (or left out when the answer
came from upstream) and read back by the summary, the request journal and the web view.
Nothing here knows mitmproxy, so the pytest plugin can read journal entries without it.
"""

from __future__ import annotations

from enum import StrEnum


class AnsweredBy(StrEnum):
    REPLAY = "replay"  # a recording played back
    MISS = "miss"  # replay's own 501 CassetteMiss
    EMULATOR = "emulator"
    UPSTREAM = "upstream"  # the real host or --upstream answered
    FAULT = "fault"
    CHECK = "check"  # Graph's own request refusals (405, 413, 415, 400)
    INTERNAL_ERROR = "internal-error"  # a bug in our hooks: 500 generalException, never a forward
    RECORDING_FAILED = "recording-failed"  # the recorder couldn't store it: 500 RecordingFailed
    UNREACHABLE = "unreachable"  # forwarding found nobody upstream: 502 UpstreamUnreachable
    NO_RESPONSE = "no-response"  # nobody answered (still in flight at exit, or failed)
    NETWORK_POLICY = "network-policy"  # blocked by the network policy (or the mode): never sent


# The answers that stand for Graph's own: what a ``malformed`` or ``empty`` fault may spoil.
# The rest are the proxy's (a cassette miss, an unreachable upstream, a bug, a refusal of the
# network policy): spoilt, a test would read a 200 where the proxy says what went wrong.
GRAPHS = frozenset({AnsweredBy.REPLAY, AnsweredBy.EMULATOR, AnsweredBy.UPSTREAM, AnsweredBy.CHECK})


def answered(by: AnsweredBy | str | None, has_response: bool) -> AnsweredBy:
    """Who answered, from a flow's tag: untagged means upstream, or nobody if no response."""
    if by:
        return AnsweredBy(by)
    return AnsweredBy.UPSTREAM if has_response else AnsweredBy.NO_RESPONSE
