"""Addon: tag each Graph flow with who answered it, in the flow's comment and marker.

In mitmweb (``graph-vcr-proxy ... --web``) or the mitmproxy console, a developer then sees at
a glance which calls were played back, emulated, faulted or really sent. It runs after the
addons whose work it reports, whatever the order of the scripts (``chain_order.py``), e.g.::

    mitmweb -s proxy_addons/replay.py -s proxy_addons/web_tags.py --set connection_strategy=lazy

It only reads what the other addons wrote into ``flow.metadata`` (see ``flows.py``), at the
end of the flow (``response``/``error``), when the recorder and the fault injector are done
with it; choosing the words and the marker is the pure function ``tag_for``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import NamedTuple

from mitmproxy import ctx, hooks, http

from proxy_addons.addons import flows
from proxy_addons.addons.summary import fault_kinds, source_of
from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.graph.models import errors_only

# One marker per source: short codes from mitmproxy's own marker set
# (mitmproxy.utils.emoji.emoji), the only values its ``flow.mark`` command accepts and that
# mitmweb shows as themselves rather than as its default red circle.
MARKERS: Mapping[AnsweredBy, str] = {
    AnsweredBy.REPLAY: ":vhs:",
    AnsweredBy.MISS: ":question:",
    AnsweredBy.EMULATOR: ":robot:",
    AnsweredBy.UPSTREAM: ":globe_with_meridians:",
    AnsweredBy.FAULT: ":boom:",
    AnsweredBy.CHECK: ":no_entry:",
    AnsweredBy.UNREACHABLE: ":satellite:",
    AnsweredBy.NO_RESPONSE: ":electric_plug:",
    AnsweredBy.INTERNAL_ERROR: ":bug:",
    AnsweredBy.RECORDING_FAILED: ":warning:",
    AnsweredBy.NETWORK_POLICY: ":no_entry_sign:",
}
RECORDED_MARKER = ":floppy_disk:"  # upstream answered and the interaction is in the cassette
RECORDED = "recorded"

TAG = "graph_vcr_proxy.web_tag"  # flow.metadata: the (marker, comment) this addon last wrote


class FlowFacts(NamedTuple):
    """What the other addons say about one finished flow. (A NamedTuple: a dataclass can't be
    defined in a module that mitmproxy loads as a script.)"""

    answered_by: AnsweredBy
    replayed: tuple[str, int] | None = None  # (cassette path, interaction index)
    faults: tuple[str, ...] = ()  # fault kinds injected, in order
    recorded: bool = False
    upstream: str = ""  # host:port the proxy forwarded to
    error: str = ""  # mitmproxy's error message, when the flow has one
    problems: int = 0  # validation errors (notes not counted)
    batch_id: str = ""  # the request's id inside the JSON $batch it came in, if it did
    guidance: tuple[str, ...] = ()  # with --guidance: what Graph recommends it did not do


class Tag(NamedTuple):
    marker: str  # a mitmproxy marker short code, e.g. ":vhs:"
    comment: str


def tag_for(facts: FlowFacts) -> Tag:
    """The marker and the one-line comment for a finished flow: the source first, then its
    details (``replay: me.yaml #0``, ``fault: throttle``), then what else happened to it."""
    by = facts.answered_by
    extra_faults = list(facts.faults)
    if by is AnsweredBy.REPLAY and facts.replayed:
        path, index = facts.replayed
        head = f"replay: {PurePath(path).name} #{index}"
    elif by is AnsweredBy.MISS:
        head = "miss: no recorded interaction matches (501 CassetteMiss)"
    elif by is AnsweredBy.FAULT:
        # The fault that answered is the last one injected; earlier ones (a latency) follow.
        kind = extra_faults.pop() if extra_faults else "unknown"
        head = f"fault: {kind}"
    elif by is AnsweredBy.CHECK:
        head = "check: refused as Graph refuses it"
    elif by is AnsweredBy.UPSTREAM and facts.recorded:
        head = f"{RECORDED}: answered by {facts.upstream}" if facts.upstream else RECORDED
    elif by is AnsweredBy.UPSTREAM and facts.upstream:
        head = f"upstream: {facts.upstream}"
    elif by is AnsweredBy.UNREACHABLE and facts.upstream:
        head = f"unreachable: {facts.upstream} (502 UpstreamUnreachable)"
    elif by is AnsweredBy.NETWORK_POLICY:
        head = "network-policy: not sent, the network policy or mode keeps it offline"
    elif by is AnsweredBy.NO_RESPONSE and facts.error:
        head = f"no-response: {facts.error}"
    else:
        head = str(by)
    parts = [head]
    parts += [f"fault: {kind}" for kind in extra_faults]
    if facts.problems:
        parts.append(f"{facts.problems} validation problem{'s' if facts.problems > 1 else ''}")
    if facts.batch_id:
        parts.append(f"via $batch, id '{facts.batch_id}'")
    if facts.guidance:
        parts.append(f"guidance: {', '.join(facts.guidance)}")
    recorded = by is AnsweredBy.UPSTREAM and facts.recorded
    return Tag(RECORDED_MARKER if recorded else MARKERS[by], "; ".join(parts))


def facts_of(flow: http.HTTPFlow) -> FlowFacts:
    metadata = flow.metadata
    replayed = metadata.get(flows.REPLAYED)
    return FlowFacts(
        answered_by=AnsweredBy(source_of(metadata, flow.response is not None)),
        replayed=(str(replayed[0]), int(replayed[1])) if replayed else None,
        faults=tuple(fault_kinds(metadata)),
        recorded=bool(metadata.get(flows.RECORDED)),
        upstream=f"{flow.request.host}:{flow.request.port}",
        error=flow.error.msg if flow.error else "",
        problems=len(errors_only(flows.problems(metadata))),
        batch_id=str((metadata.get(flows.BATCH) or {}).get("id") or ""),
        guidance=tuple(str(kind) for kind in metadata.get(flows.GUIDANCE) or ()),
    )


class WebTags:
    def response(self, flow: http.HTTPFlow) -> None:
        self._tag(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._tag(flow)

    def _tag(self, flow: http.HTTPFlow) -> None:
        if flows.route_of(flow) is None:
            return
        tag = tag_for(facts_of(flow))
        # A list once the flow went through a flow file: unpack, don't read attributes.
        earlier_marker, earlier_comment = flow.metadata.get(TAG) or ("", "")
        # A comment or marker someone else set (a user in mitmweb, another addon) is kept.
        if flow.marked in ("", earlier_marker):
            flow.marked = tag.marker
        if flow.comment in ("", earlier_comment):
            flow.comment = tag.comment
        flow.metadata[TAG] = tag
        # mitmweb's view has already sent this flow to the browser; tell it to send it again.
        ctx.master.addons.trigger(hooks.UpdateHook([flow]))
