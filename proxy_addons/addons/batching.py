"""Addon: serve a JSON ``$batch`` holding our requests, each request as one of our own flows.

Placed right after the fault injector (which sees the batch call first, for ``route=batch``
rules) and before the mode's addons. For a ``POST /{v1.0|beta}/$batch`` to a Graph host that
holds at least one of our operations, it reads the batch as Graph does (``batch.py``: a
malformed one is refused whole with Graph's 400), then, in the order Graph answers them (as
listed, each after what it depends on), makes each of our requests a flow of its own (the
batch's URL host and version, the batch's headers under the request's own, the request's
body) and runs mitmproxy's hooks on it over the whole chain: the gate, the request checks,
the ETag tracker, the fault rules, validation, replay, the emulator or the recorder, the seal,
the summary, the journal and the web view treat it exactly as the same request sent alone.
Each such flow carries ``flows.BATCH`` in its metadata (the batch flow's id and the
request's id).

A request whose dependency failed is answered 424 and never run. What is left unanswered
goes upstream in one batch (only where our operations may, the recorder's or
``--on-miss forward``), together with the requests that are not ours where the network policy
lets them pass (else they are answered Graph's 403 here); when the answer comes back, each of
our requests gets its own answer (``response`` hook: the recorder stores it as an interaction
of its own) and the answers are merged, ids intact. A batch that needs nothing here but the
hooks goes upstream byte for byte as sent.
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from mitmproxy import ctx, http
from mitmproxy import flow as mitmproxy_flow
from mitmproxy.proxy.layers.http import (
    HttpErrorHook,
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHook,
)

from proxy_addons.addons import flows, unreachable_upstream
from proxy_addons.addons.gate_options import read_gate_options
from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.graph import batch
from proxy_addons.graph.batch import Answer, Batch, Item, Refusal
from proxy_addons.graph.replies import error_reply, json_reply
from proxy_addons.graph.routes import graph_host, is_batch_path
from proxy_addons.graph.traffic import (
    BLOCKED_CODE,
    BLOCKED_STATUS,
    NetworkPolicy,
    Traffic,
    ours_in_batch,
    sub_request_is_ours,
)

logger = logging.getLogger(__name__)

# Headers of the batch call that belong to its own body, not to the requests inside it.
BATCH_BODY_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding"})


def holds_ours(flow: http.HTTPFlow, *, as_sent: bool = True) -> str | None:
    """The version of a JSON ``$batch`` call to a Graph host that holds one of our
    operations: in its body as the client sent it, or (``as_sent=False``) as it is now."""
    request = flow.request
    if request.method.upper() != "POST":
        return None
    version = is_batch_path(request.path)
    host = graph_host(request.host)
    if version is None or host is None:
        return None
    document: Any = flows.body_of(flow).document
    if not as_sent:
        try:
            document = json.loads(request.get_content(strict=False) or b"")
        except (ValueError, RecursionError):
            return None
    return version if ours_in_batch(host, version, document) is not None else None


@dataclass
class _Pending:
    """A batch sent upstream: what was answered here, and our flows awaiting their answer."""

    parsed: Batch
    answers: dict[str, Answer]
    upstream: list[str]  # keys sent upstream
    subflows: dict[str, http.HTTPFlow] = field(default_factory=dict)


class Batching:
    def __init__(self) -> None:
        self._pending: weakref.WeakKeyDictionary[http.HTTPFlow, _Pending] = (
            weakref.WeakKeyDictionary()
        )

    # --- the batch call ---------------------------------------------------------------------

    @flows.guarded
    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or flow.error is not None:
            return
        if flows.traffic_of(flow) is not Traffic.GRAPH:
            return
        version = holds_ours(flow)
        if version is None:
            return
        headers = flows.request_headers(flow)
        parsed = batch.parse(flows.body_of(flow).document)
        if isinstance(parsed, Refusal):
            logger.warning("refused a batch: %s", parsed.message)
            flows.answer(flow, parsed.reply(headers), by=AnsweredBy.CHECK)
            return
        policy, forward_ours = read_gate_options()
        host = graph_host(flow.request.host) or flow.request.host
        ours = {i.key for i in parsed.items if sub_request_is_ours(host, version, i.method, i.url)}
        edge = batch.crossing_edge(parsed, ours)
        if edge is not None and not forward_ours:
            refusal = batch.edge_refusal(*edge)
            logger.warning("refused a batch: %s", refusal.message)
            flows.answer(flow, refusal.reply(headers), by=AnsweredBy.NETWORK_POLICY)
            return
        flow.metadata[flows.BATCH] = {"requests": len(parsed.items)}
        others_pass = policy.allows(flow.request.host)
        answers: dict[str, Answer] = {}
        upstream: list[str] = []
        subflows: dict[str, http.HTTPFlow] = {}
        ran: list[http.HTTPFlow] = []
        for item in batch.run_order(parsed):
            failed = next(
                (d for d in item.depends_on if (a := answers.get(d.lower())) and a.failed), None
            )
            if failed is not None:
                answers[item.key] = batch.failed_dependency(item, failed, headers)
            elif item.key not in ours:
                if others_pass:
                    upstream.append(item.key)
                else:
                    answers[item.key] = await self._blocked(flow, item, version, policy)
            else:
                sub = self._subflow(flow, item, version)
                if sub is None:
                    reply = error_reply(
                        400, "BadRequest", f"Invalid URL in {item.describe()}.", headers
                    )
                    answers[item.key] = batch.answer_of(item.id, reply)
                    continue
                ran.append(sub)
                await self._run(sub, HttpRequestHeadersHook(sub), HttpRequestHook(sub))
                if sub.response is None and sub.error is not None:
                    # A reset: the connection the batch came on is dropped, as it would be alone.
                    flows.answer(flow, None, by=flows.answered_by(sub) or AnsweredBy.FAULT)
                    return
                if sub.response is None:
                    upstream.append(item.key)
                    subflows[item.key] = sub
                    continue
                await self._run(sub, HttpResponseHook(sub))
                sub.live = False
                answers[item.key] = self._answer_of(item, sub)
        if not upstream:
            self._answer_here(flow, parsed, answers, ran)
            return
        await self._send_upstream(flow, _Pending(parsed, answers, upstream, subflows))

    async def _blocked(
        self, flow: http.HTTPFlow, item: Item, version: str, policy: NetworkPolicy
    ) -> Answer:
        """The policy's answer to a request that is not ours, given by the gate to a flow of
        its own (so the journal lists it as blocked, as it lists one sent alone)."""
        host = flow.request.host
        message = f"{policy.refusal(host)}: {item.method} {item.url}"
        reply = error_reply(BLOCKED_STATUS, BLOCKED_CODE, message, flows.request_headers(flow))
        sub = self._subflow(flow, item, version)
        if sub is None:
            logger.warning("blocked inside a batch: %s", message)
            return batch.answer_of(item.id, reply)
        await self._run(sub, HttpRequestHeadersHook(sub), HttpRequestHook(sub))
        if sub.response is None and sub.error is None:
            logger.warning("blocked inside a batch: %s", message)
            flows.answer(sub, reply, by=AnsweredBy.NETWORK_POLICY)
        if sub.response is None:
            return batch.answer_of(item.id, reply)
        await self._run(sub, HttpResponseHook(sub))
        sub.live = False
        return self._answer_of(item, sub)

    def _answer_here(
        self,
        flow: http.HTTPFlow,
        parsed: Batch,
        answers: Mapping[str, Answer],
        ran: list[http.HTTPFlow],
    ) -> None:
        """Answer the batch call itself, 200 with every answer in the listed order."""
        headers = flows.request_headers(flow)
        ordered = [answers[i.key] for i in parsed.items if i.key in answers]
        reply = replace(json_reply(200, {}, headers), body=batch.responses_body(ordered))
        # Who answered the batch call: whoever answered the first of ours inside it (replay,
        # the emulator...), else the checks that decided every request.
        by = next((b for sub in ran if (b := flows.answered_by(sub)) is not None), None)
        flows.answer(flow, reply, by=by or AnsweredBy.CHECK)

    async def _send_upstream(self, flow: http.HTTPFlow, pending: _Pending) -> None:
        """Let the batch go on with what is left for upstream: as sent when that is all of it,
        else a batch of those entries; where our requests were sent (the recorder's
        ``--upstream``), the batch goes too."""
        parsed = pending.parsed
        keys = [i.key for i in parsed.items]
        if set(pending.upstream) != set(keys) or pending.answers:
            met = [k for k, a in pending.answers.items() if not a.failed]
            flow.request.content = batch.upstream_body(parsed, pending.upstream, met)
        sent = next(iter(pending.subflows.values()), None)
        if sent is not None:
            self._follow(flow, sent)
        # Answers given here must not be lost to mitmproxy's own page should the upstream the
        # others go to not answer: where the unreachable-upstream envelope is in the chain
        # (replay, record), its trial connection is made first, as for one of ours.
        envelope = ctx.master.addons.get("unreachableupstream")
        if pending.answers and envelope is not None and flow.server_conn.via is None:
            request = flow.request
            reason = await envelope.try_connect((request.host, request.port), envelope.timeout)
            if reason is not None:
                upstream = unreachable_upstream.upstream_url(request)
                reply = unreachable_upstream.unreachable_reply(
                    upstream, reason, flows.request_headers(flow)
                )
                by_key = parsed.by_key()
                for key in pending.upstream:
                    pending.answers[key] = batch.answer_of(by_key[key].id, reply)
                self._answer_here(flow, parsed, pending.answers, [])
                return
        self._pending[flow] = pending

    @staticmethod
    def _follow(flow: http.HTTPFlow, sub: http.HTTPFlow) -> None:
        """Send the batch where its request ``sub`` was sent (scheme, host, port, path prefix)."""
        original = sub.metadata[flows.BATCH].get("path", "")
        request, target = flow.request, sub.request
        if (target.scheme, target.host, target.port) == (
            request.scheme,
            request.host,
            request.port,
        ):
            return
        prefix = (
            target.path[: -len(original)] if original and target.path.endswith(original) else ""
        )
        request.scheme, request.port, request.host = target.scheme, target.port, target.host
        request.path = prefix + request.path

    # --- the answer from upstream -------------------------------------------------------------

    @flows.guarded
    async def response(self, flow: http.HTTPFlow) -> None:
        pending = self._pending.pop(flow, None)
        if pending is None or flow.response is None:
            return
        response = flow.response
        try:
            document = json.loads(response.get_content(strict=False) or b"")
        except (ValueError, RecursionError):
            document = None
        found = batch.answers_in(document) if response.status_code == 200 else {}
        if not found and not pending.answers:
            # The batch as a whole failed upstream (a 429, a 400...): the client gets that
            # answer as it came, and none of our requests has an answer of its own to record.
            await self._fail(pending, f"the $batch was answered {response.status_code} as a whole")
            return
        whole = Answer(
            "",
            response.status_code,
            tuple(response.headers.items()),
            response.get_content(strict=False) or b"",
        )
        by_key = pending.parsed.by_key()
        changed = bool(pending.answers)
        answers = dict(pending.answers)
        for key in pending.upstream:
            item = by_key[key]
            got = found.get(key) or self._missing(item, whole, flow)
            changed |= key not in found
            sub = pending.subflows.get(key)
            if sub is not None and key not in found:
                # No answer of its own upstream: nothing to record for it, it failed.
                sub.error = mitmproxy_flow.Error(f"no answer for it in the $batch's ({got.status})")
                sub.live = False
                await ctx.master.addons.handle_lifecycle(HttpErrorHook(sub))
            elif sub is not None:
                sub.response = http.Response.make(
                    got.status,
                    got.body,
                    http.Headers(
                        [
                            (k.encode(), v.encode())
                            for k, v in got.headers
                            if k.lower() not in batch.FRAMING_HEADERS
                        ]
                    ),
                )
                await self._run(sub, HttpResponseHook(sub))
                sub.live = False
                after = self._answer_of(item, sub)
                changed |= after != got
                got = after
            answers[key] = got
        if not changed:
            return  # upstream's answer, as it came
        ordered = [answers[i.key] for i in pending.parsed.items if i.key in answers]
        response.status_code = 200
        response.reason = "OK"
        response.headers["content-type"] = "application/json"
        response.content = batch.responses_body(ordered)

    @staticmethod
    def _missing(item: Item, whole: Answer, flow: http.HTTPFlow) -> Answer:
        """The answer of a request sent upstream that the batch's answer does not hold: the
        batch's own error when it failed whole, else Graph's 502 saying so."""
        if whole.status != 200:
            return Answer(item.id, whole.status, whole.headers, whole.body)
        reply = error_reply(
            502,
            "BadGateway",
            f"graph-vcr-proxy: the upstream's $batch answer has none for {item.describe()}",
            flows.request_headers(flow),
        )
        return batch.answer_of(item.id, reply)

    @flows.guarded
    async def error(self, flow: http.HTTPFlow) -> None:
        """The batch got no answer from upstream: neither do our requests that went with it
        (the summary, the web view and the journal see each fail as the batch did)."""
        pending = self._pending.pop(flow, None)
        if pending is not None and flow.error is not None:
            await self._fail(pending, flow.error.msg)

    @staticmethod
    async def _fail(pending: _Pending, why: str) -> None:
        for sub in pending.subflows.values():
            sub.error = mitmproxy_flow.Error(why)
            sub.live = False
            await ctx.master.addons.handle_lifecycle(HttpErrorHook(sub))

    # --- our requests inside ----------------------------------------------------------------

    @staticmethod
    def _subflow(flow: http.HTTPFlow, item: Item, version: str) -> http.HTTPFlow | None:
        path = item.path_and_query(version)
        if path is None:
            return None
        request = flow.request
        own = {name.lower() for name, _ in item.headers}
        fields = [
            (name, value)
            for name, value in request.headers.items(multi=True)
            if name.lower() not in BATCH_BODY_HEADERS
            and name.lower() != "content-encoding"
            and name.lower() not in own
        ]
        fields += list(item.headers)
        if item.body is not None:
            fields.append(("content-length", str(len(item.body))))
        now = time.time()
        sub_request = http.Request(
            host=request.host,
            port=request.port,
            method=item.method.encode(),
            scheme=request.scheme.encode(),
            authority=request.authority.encode(),
            path=path.encode(),
            http_version=request.http_version.encode(),
            headers=http.Headers([(k.encode(), v.encode()) for k, v in fields]),
            content=item.body or b"",
            trailers=None,
            timestamp_start=now,
            timestamp_end=now,
        )
        sub = http.HTTPFlow(flow.client_conn, flow.server_conn, live=True)
        sub.request = sub_request
        sub.metadata[flows.BATCH] = {"batch": flow.id, "id": item.id, "path": path}
        return sub

    @staticmethod
    async def _run(sub: http.HTTPFlow, *hooks: Any) -> None:
        """Run mitmproxy's hooks on ``sub`` over the whole chain, as the proxy does for a flow
        (an intercepted one waits to be resumed); an error hook when it was killed."""
        manager = ctx.master.addons
        for hook in hooks:
            await manager.handle_lifecycle(hook)
            if sub.intercepted:
                await sub.wait_for_resume()
            if sub.error is not None and sub.response is None:
                await manager.handle_lifecycle(HttpErrorHook(sub))
                return

    @staticmethod
    def _answer_of(item: Item, sub: http.HTTPFlow) -> Answer:
        response = sub.response
        assert response is not None
        return Answer(
            item.id,
            response.status_code,
            tuple(response.headers.items()),
            response.get_content(strict=False) or b"",
        )
