"""The ``hang`` and ``slow-body`` faults at work (``graph/stalls.py`` has their parameters).

**hang** holds the request in the fault injector's async ``request`` hook until the client's
connection closes (mitmproxy's ``client_disconnected`` hook, which the injector passes on
here) or ``max`` seconds pass; then the flow is killed, so the client sees its connection
close and no task outlives it. While the hook waits, mitmproxy keeps every other flow moving.
An HTTP/2 client that cancels one stream but keeps its connection is only let go at ``max``.

**slow-body** cannot be done with mitmproxy's own streaming: ``flow.response.stream`` is
consulted only for a body that arrives from a server, its callable is synchronous (it can
split a body but not wait), and an answer an addon sets (replay, the emulator, a fault) is
sent whole once the ``response`` hook returns (``HttpStream.send_response``, mitmproxy 11 and
12 alike). So the pacing is done one level down: in the ``response`` hook the client
connection's writer (the ``proxyserver`` addon's ``connections[client.id]``, its
``transports[client].writer``) is wrapped by a :class:`PacedWriter`, which lets the next
write (the status line and headers) through and sends the one after it (the body) in
pieces, a gap before each, from a task of its own. Writes that come meanwhile queue behind
it, in order; a close waits for the last piece. Over TLS the client decrypts a record when its
last byte arrives, so it reads the body whole at the end of the period (still a slow read);
over plain HTTP it reads the pieces as they come. Only HTTP/1 answers are paced: HTTP/2
interleaves streams on one connection.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import weakref
from typing import Any

from mitmproxy import connection, ctx, http

from proxy_addons.addons import flows
from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.graph.stalls import Hang, SlowBody

logger = logging.getLogger(__name__)


class PacedWriter:
    """A client connection's writer that can send one answer's body slowly (see above).

    Everything but ``write``, ``write_eof``, ``close`` and ``is_closing`` goes to the real
    writer (mitmproxy drains it, asks for its transport...)."""

    def __init__(self, writer: Any, tasks: set[asyncio.Task[None]]) -> None:
        self._writer = writer
        self._tasks = tasks
        self._armed: SlowBody | None = None
        self._headers_passed = False
        self._queue: collections.deque[bytes] = collections.deque()
        self._dripping: asyncio.Task[None] | None = None
        self._then: list[str] = []  # "write_eof", "close": asked for while dripping

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)

    def arm(self, effect: SlowBody) -> None:
        """Pace the body of the answer whose headers are written next."""
        self._armed, self._headers_passed = effect, False

    def write(self, data: bytes) -> None:
        if self._dripping is not None:
            self._queue.append(data)
        elif self._armed is None or not data:
            self._writer.write(data)
        elif not self._headers_passed:
            self._headers_passed = True
            self._writer.write(data)
        else:
            effect, self._armed = self._armed, None
            task = asyncio.get_running_loop().create_task(
                self._drip(effect.pieces(data), effect.gap_seconds())
            )
            self._dripping = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drip(self, pieces: list[bytes], gap: float) -> None:
        try:
            for piece in pieces:
                await asyncio.sleep(gap)
                if self._writer.is_closing():
                    return
                self._writer.write(piece)
        finally:
            self._dripping = None
            queued, self._queue = self._queue, collections.deque()
            if not self._writer.is_closing():
                for data in queued:
                    self._writer.write(data)
                for call in self._then:
                    getattr(self._writer, call)()

    def write_eof(self) -> None:
        if self._dripping is not None:
            self._then.append("write_eof")
        else:
            self._writer.write_eof()

    def close(self) -> None:
        if self._dripping is not None:
            self._then.append("close")
        else:
            self._writer.close()

    def is_closing(self) -> bool:
        return "close" in self._then or self._writer.is_closing()


class Stalls:
    """The flows held by ``hang`` rules and the bodies ``slow-body`` rules pace."""

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self._held: collections.Counter[int] = collections.Counter()
        self._slow: weakref.WeakKeyDictionary[http.HTTPFlow, SlowBody] = weakref.WeakKeyDictionary()
        self._drips: set[asyncio.Task[None]] = set()

    def held(self, rule_state: object) -> int:
        """How many flows a rule (by its state object) holds now."""
        return self._held[id(rule_state)]

    async def hang(self, flow: http.HTTPFlow, effect: Hang, rule_state: object) -> None:
        """Answer nothing until the client goes or ``effect.max_seconds`` pass; then kill the
        flow."""
        client = flow.client_conn
        gone = asyncio.Event()
        if client.timestamp_end is None:  # not gone already
            self._waiting.setdefault(client.id, set()).add(gone)
            self._held[id(rule_state)] += 1
            try:
                await asyncio.wait_for(gone.wait(), effect.max_seconds)
            except TimeoutError:
                logger.info(
                    "hang: %s %s held %gs (max); closing its connection",
                    flow.request.method,
                    flow.request.pretty_url,
                    effect.max_seconds,
                )
            finally:
                self._held[id(rule_state)] -= 1
                if not self._held[id(rule_state)]:
                    del self._held[id(rule_state)]
                waiting = self._waiting.get(client.id)
                if waiting is not None:
                    waiting.discard(gone)
                    if not waiting:
                        del self._waiting[client.id]
        if flow.killable:
            flows.answer(flow, None, by=AnsweredBy.FAULT)
        else:
            flow.metadata[flows.ANSWERED_BY] = AnsweredBy.FAULT

    def client_disconnected(self, client: connection.Client) -> None:
        for gone in self._waiting.pop(client.id, ()):
            gone.set()

    def slow_body(self, flow: http.HTTPFlow, effect: SlowBody) -> None:
        """Pace this flow's body once its answer is known (:meth:`response`)."""
        self._slow[flow] = effect

    def response(self, flow: http.HTTPFlow) -> None:
        effect = self._slow.pop(flow, None) if self._slow else None
        if effect is None or flow.response is None or not flow.response.raw_content:
            return
        if not flow.request.http_version.startswith("HTTP/1"):
            logger.info("slow-body: %s is not HTTP/1; sent at once", flow.request.pretty_url)
            return
        writer = self._client_writer(flow)
        if writer is None:
            logger.warning("slow-body: no client connection for %s", flow.request.pretty_url)
            return
        writer.arm(effect)

    def _client_writer(self, flow: http.HTTPFlow) -> PacedWriter | None:
        proxyserver = ctx.master.addons.get("proxyserver")
        handler = getattr(proxyserver, "connections", {}).get(flow.client_conn.id)
        io = getattr(handler, "transports", {}).get(flow.client_conn) if handler else None
        if io is None or io.writer is None:
            return None
        if not isinstance(io.writer, PacedWriter):
            io.writer = PacedWriter(io.writer, self._drips)
        return io.writer

    def done(self) -> None:
        """Let every held flow go and stop pacing, as the proxy stops."""
        for events in self._waiting.values():
            for gone in events:
                gone.set()
        for task in list(self._drips):
            task.cancel()
