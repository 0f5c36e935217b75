"""The proxy the pytest plugin runs: one child for a whole test run, switched per test.

The plugin starts it once (``python -m proxy_addons.testing.child --listen-port 0 --confdir DIR
--session-root ROOT``) and, before each test, sends one request to the control endpoint::

    PUT http://graph-vcr-proxy.control/session   {"mode": "replay", "args": ["--cassette", ...]}

(the plugin sends it, and ``GET /calls``, over the child's stdin, to the same handlers: see
``common/control_pipe.py``; any client may send them to the endpoint through the proxy).

``mode`` is ``replay``, ``record`` or ``simulate`` and ``args`` are that mode's command-line
arguments, parsed by the CLI's own parser and turned into addons and options by the CLI's
own mode functions, so a test's proxy behaves exactly like ``graph-vcr-proxy MODE ARGS``.
They are parsed strictly (:func:`checked_arguments`): no abbreviations, no ``--help``, no
option given twice, nothing that belongs to the process rather than a session, and no file
outside ROOT; anything else is the endpoint's 400 with one line, and the child serves on.
Switching retires the previous test's mode addon (its ``done`` hook closes cassettes and
releases state-file locks), puts every option back to its default and sets the new ones
(only those that differ: most tests of a run look alike), resets the fault injector (which
stays, and keeps serving ``/faults``: its rules start counting afresh) and the ETag tracker
(which forgets every ETag) and adds a *fresh* instance of the mode's addon. A fresh instance
is what makes everything a test could leave behind new for the next one: replay positions,
the emulator's appointments, the recorder's state. The journal (``GET /calls``, see
``journal.py``) starts empty with each session.

Until the first session, and after a refused one, Graph requests get a 503 of ours: with no
addon to answer them they would otherwise go to the real Graph.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import os
import sys
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

from mitmproxy import ctx, exceptions, hooks, http
from mitmproxy.addonmanager import Loader

from proxy_addons.addons import control_endpoint, control_rules, flows
from proxy_addons.addons.batching import Batching
from proxy_addons.addons.chain_order import in_chain_order
from proxy_addons.addons.control_endpoint import ControlEndpoint
from proxy_addons.addons.etag_tracker import ETagTracker
from proxy_addons.addons.fault_injection import OPTIONS as FAULT_OPTIONS
from proxy_addons.addons.fault_injection import FaultInjector
from proxy_addons.addons.gate import Gate
from proxy_addons.addons.missing_cassette import MissingCassette
from proxy_addons.addons.request_checks import RequestChecks
from proxy_addons.addons.unreachable_upstream import UnreachableUpstream
from proxy_addons.cassette.cassette import Interaction
from proxy_addons.cassette.matching import CassetteIndex
from proxy_addons.cassette.redaction import CREDENTIAL_HEADERS
from proxy_addons.cli import commands as cli
from proxy_addons.cli import serving
from proxy_addons.common import control_pipe
from proxy_addons.common.answered_by import AnsweredBy, answered
from proxy_addons.common.control_address import CALLS_PATH, PLAYED_PATH, SESSION_PATH
from proxy_addons.common.files import replace_atomically
from proxy_addons.common.option_table import declared, flagged, path_argument
from proxy_addons.common.usage import USAGE_ERROR, UsageError
from proxy_addons.graph.replies import BAD_REQUEST, error_reply
from proxy_addons.options.commands import command_options
from proxy_addons.options.proxy import GUIDANCE_FLAG, PERMISSIONS_REPORT
from proxy_addons.options.replay import REPLAY
from proxy_addons.testing.call_assertions import Recorded
from proxy_addons.testing.journal import FAILING, Call, journal_headers, parsed_body

if TYPE_CHECKING:  # imported when asked for: rich, for a child that never prints a table
    from proxy_addons.addons.summary import Tally

logger = logging.getLogger(__name__)
SUMMARY_PREFIX = "graph-vcr-summary-"  # the files a child writes into --summary-dir


class SessionError(ValueError):
    """A session the proxy refuses; ``str()`` is the one line the test fails with."""


class Sent(NamedTuple):
    """A request as it arrived, before any addon redirects or rewrites it."""

    flow: http.HTTPFlow
    method: str
    url: str
    operation: str | None
    body: Any
    ours: bool = True  # one of our Graph routes; other traffic is journalled only if blocked
    headers: dict[str, str] | None = None  # as sent, credentials redacted (journal_headers)


def call_of(sent: Sent) -> Call:
    """The journal entry of a request, read once every addon has had its say."""
    flow = sent.flow
    response = flow.response
    by = answered(flows.answered_by(flow), response is not None)
    return Call(
        method=sent.method,
        url=sent.url,
        operation=sent.operation,
        body=sent.body,
        status=response.status_code if response is not None else None,
        answered_by=by,
        fault=flow.metadata.get(flows.FAULT),
        miss=error_message(response) if by is AnsweredBy.MISS and response else None,
        error=error_message(response) if by in FAILING and response else None,
        batch=(flow.metadata.get(flows.BATCH) or {}).get("id"),
        headers=sent.headers,
    )


def unplayed_record(interaction: Interaction) -> Recorded:
    request = interaction.request
    return Recorded(request.method, request.uri, interaction.source.name, interaction.position)


def blocked(sent: Sent) -> bool:
    return flows.answered_by(sent.flow) is AnsweredBy.NETWORK_POLICY


def error_message(response: http.Response) -> str | None:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return None


def session_request(data: Any) -> tuple[str, list[str]]:
    """The mode and arguments of a ``PUT /session`` body (``missing_cassette_ok``: see
    :func:`missing_cassette_ok`)."""
    if not isinstance(data, dict) or not isinstance(data.get("mode"), str):
        raise SessionError('expected a JSON object {"mode": MODE, "args": [ARG, ...]}')
    args = data.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise SessionError("args must be a list of strings")
    if data["mode"] not in serving.MODES:
        raise SessionError(f"mode must be one of {', '.join(serving.MODES)}, not {data['mode']!r}")
    return data["mode"], args


# --- a session's arguments ----------------------------------------------------------------

# What a session's arguments may not set, by the parser's name for it (``dest``), and why:
# the rows of the option tables that say so. The options that name them come from the parser
# itself, so no spelling of one gets past.
NOT_PER_SESSION = {
    row.dest: row.session_refusal
    for mode in serving.MODES
    for row in flagged(command_options(mode))
    if row.session_refusal
}


class SessionParser(cli.Parser):
    """The CLI's parser for arguments a program sends, not a person types: no abbreviations
    (``--cass`` is not ``--cassette``, so no spelling slips past a rule about an option), no
    ``--help``, and never an exit: argparse's SystemExit would end the child that serves
    every test of the run. Every mistake is a UsageError, one line."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "allow_abbrev": False, "add_help": False})

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError(" ".join((message or f"exit status {status}").split()))


def mode_parsers() -> dict[str, SessionParser]:
    """The CLI's parser of each proxy mode, built by the CLI's own functions, made strict."""
    top = SessionParser(prog="graph-vcr-proxy")
    sub = top.add_subparsers(dest="command", required=True, parser_class=SessionParser)
    for add in (cli.add_replay_parser, cli.add_record_parser, cli.add_simulate_parser):
        add(sub)
    return {mode: sub.choices[mode] for mode in serving.MODES}


def options_given(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> list[tuple[str, argparse.Action]]:
    """Each option ``argv`` sets, as written, with its action, in order.

    Read after the strict parser accepted ``argv``: without abbreviations a word is an option
    exactly when it is one of the parser's option strings (or one followed by ``=VALUE``),
    and a value can't look like one (argparse would have refused it as a missing value).
    """
    by_option = {name: action for action in parser._actions for name in action.option_strings}
    given = []
    for word in argv:
        if word == "--":
            break
        name = word.split("=", 1)[0] if word.startswith("--") else word
        if name in by_option:
            given.append((name, by_option[name]))
    return given


def outside(root: Path, value: str) -> bool:
    """Whether the file ``value`` names (``~`` and symlinks followed, relative to our working
    folder as the addons open it) is not under ``root``; an unusable path is outside."""
    try:
        return not Path(value).expanduser().resolve().is_relative_to(root)
    except (OSError, ValueError, RuntimeError):  # NUL, a symlink loop, no home folder
        return True


def checked_arguments(
    parser: argparse.ArgumentParser, argv: Sequence[str], root: Path
) -> argparse.Namespace:
    """``argv`` parsed for a session; SessionError (one line) for anything it may not do.

    Refused: what the strict parser refuses (unknown words, abbreviations, ``--help``), an
    option a session can't change (``NOT_PER_SESSION``), an option that takes one value given
    twice (the pytest plugin's arguments come first: a test's ``args`` can't override the
    cassette it confined), and a path argument outside ``root``.
    """
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        raise SessionError(str(exc)) from None
    given = options_given(parser, argv)
    times = Counter(action.dest for _, action in given)
    for name, action in given:
        if action.dest in NOT_PER_SESSION:
            raise SessionError(f"{name}: {NOT_PER_SESSION[action.dest]}")
        repeatable = isinstance(getattr(args, action.dest), list)  # --fault, --redact-field...
        if times[action.dest] > 1 and action.nargs != 0 and not repeatable:
            raise SessionError(
                f"{name} is given twice: a test's args can't override what the session "
                "already sets (the cassette the pytest plugin confined to its folder, say)"
            )
    for action in dict.fromkeys(a for _, a in given if a.type is path_argument):
        value = getattr(args, action.dest)
        for path in value if isinstance(value, list) else [value]:
            if path and outside(root, path):
                raise SessionError(
                    f"{action.option_strings[0]} {path!r}: outside the session root {root}, "
                    "the only folder this proxy reads and writes files in"
                )
    return args


REPLAY_OPTIONS = tuple(row.name for row in declared(REPLAY))  # Replay's own


def missing_cassette_ok(data: dict[str, Any], mode: str, cassette: str | None) -> Path | None:
    """The cassette a replay session may play although it does not exist (the plugin's record
    mode none, as vcrpy's: a miss only when a request arrives), else None."""
    allowed = data.get("missing_cassette_ok", False)
    if not isinstance(allowed, bool):
        raise SessionError("missing_cassette_ok must be true or false")
    if not allowed or mode != "replay" or not cassette or Path(cassette).exists():
        return None
    return Path(cassette)


class RunSummary(NamedTuple):
    """The summary of every test this child served, counted from the journal (which holds
    each flow) as each test's session ends, and written as JSON when the child stops: the
    pytest plugin merges its children's into one Markdown summary for the run."""

    folder: Path
    tally: Tally

    def count(self, journal: Sequence[Sent]) -> None:
        for sent in journal:
            if sent.ours:
                self.tally.add(sent.flow, has_response=sent.flow.response is not None)

    def write(self) -> None:
        text = json.dumps(self.tally.document()) + "\n"
        name = f"{SUMMARY_PREFIX}{os.getpid()}-{uuid.uuid4().hex}.json"
        replace_atomically(self.folder / name, text.encode())


class Session:
    def __init__(self, root: Path, summary: RunSummary | None = None) -> None:
        # Graph's request checks, the ETag tracker and the fault injector stay for the whole
        # run (the injector serves /faults); mitmproxy runs them right after this addon, in
        # this order, and before the mode's addon, as every chain orders them (chain_order).
        self.root = root.resolve()
        self.etags = ETagTracker()
        self.faults = FaultInjector()
        self.addons = [RequestChecks(), self.etags, self.faults]
        self.active: list[Any] = []  # this test's mode addon
        self.journal: list[Sent] = []
        self.declared: set[type] = set()
        self.option_names: set[str] = set(FAULT_OPTIONS)  # every option we set per session
        self.summary = summary  # the run's, when the plugin asked for one
        self._pending = b""  # the start of a control line not ended yet (control_pipe.py)
        self._skipping = False  # in the rest of a line refused as too long

    @functools.cached_property
    def parsers(self) -> dict[str, SessionParser]:
        return mode_parsers()

    def control_routes(self) -> dict[str, control_rules.Handler]:
        """``/session`` and ``/calls`` on the control endpoint (``control_endpoint.py``)."""
        return {
            SESSION_PATH: functools.partial(control_rules.answer_session, session=self),
            CALLS_PATH: functools.partial(control_rules.answer_calls, session=self),
            PLAYED_PATH: functools.partial(control_rules.answer_played, session=self),
        }

    # --- switching ------------------------------------------------------------------------

    def apply(self, request: Any) -> dict[str, Any]:
        mode, argv = session_request(request)
        args = checked_arguments(self.parsers[mode], argv, self.root)
        modes, settings = serving.MODES[mode](args)
        missing = missing_cassette_ok(request, mode, getattr(args, "cassette", None))
        if missing is not None:  # Replay would refuse it: nothing to load, every request a miss
            modes = [MissingCassette(missing), UnreachableUpstream()]
            settings = {k: v for k, v in settings.items() if k not in REPLAY_OPTIONS}
        addons = in_chain_order(modes)
        self._retire()
        self._declare(addons)
        wanted = {name: ctx.options.default(name) for name in self.option_names}
        wanted |= {**serving.fault_settings(args), **settings}
        changed = {k: v for k, v in wanted.items() if getattr(ctx.options, k) != v}
        try:
            if changed:
                ctx.options.update(**changed)
            self.faults.reset()
            self.etags.reset()
            self._start(addons)
        except (exceptions.OptionsError, TypeError) as exc:  # refused by an addon, or mistyped
            raise SessionError(str(exc)) from None
        return {"mode": mode, "addons": [type(a).__name__ for a in self.active]}

    def _retire(self) -> None:
        for addon in reversed(self.active):
            ctx.master.addons.remove(addon)
        self.active = []
        if self.summary is not None:
            self.summary.count(self.journal)
        self.journal = []

    def _declare(self, addons: Sequence[Any]) -> None:
        """Declare the options of addon classes not seen yet, so they can be set (and reset)
        before a fresh instance is added."""
        before = set(ctx.options.keys())
        loader = Loader(ctx.master)
        for addon in addons:
            if type(addon) not in self.declared:
                if hasattr(addon, "load"):  # an addon may declare no options at all
                    addon.load(loader)
                self.declared.add(type(addon))
        self.option_names |= set(ctx.options.keys()) - before

    def _start(self, addons: Sequence[Any]) -> None:
        """Add, configure and start ``addons``; if one refuses its options, none stays."""
        manager = ctx.master.addons
        everything = set(ctx.options.keys())
        started: list[Any] = []
        try:
            for addon in addons:
                manager.add(addon)
                started.append(addon)
                # Added at run time, an addon gets no configure or running event by itself.
                manager.invoke_addon_sync(addon, hooks.ConfigureHook(everything))
                manager.invoke_addon_sync(addon, hooks.RunningHook())
        except BaseException:
            for addon in reversed(started):
                manager.remove(addon)
            raise
        self.active = started

    # --- the journal ----------------------------------------------------------------------

    def calls(self) -> list[dict[str, Any]]:
        """Our Graph calls, and the other requests the network policy stopped: a test
        whose request was blocked fails, naming it (the pytest plugin)."""
        return [call_of(sent).to_json() for sent in self.journal if sent.ours or blocked(sent)]

    def unplayed(self) -> list[dict[str, Any]]:
        """The recorded interactions of this test's cassette it has not played (none for a
        mode that plays no cassette)."""
        return [
            unplayed_record(interaction).to_json()
            for addon in self.active
            if isinstance(getattr(addon, "index", None), CassetteIndex)
            for interaction in addon.index.unplayed()
        ]

    # --- hooks ----------------------------------------------------------------------------

    @flows.guarded
    def request(self, flow: http.HTTPFlow) -> None:
        route = flows.route_of(flow)
        if route is None:  # kept in case the network policy blocks it
            if self.active and not control_endpoint.is_control_request(flow):
                request = flow.request
                sent = Sent(flow, request.method, request.pretty_url, None, None, ours=False)
                self.journal.append(sent)
            return
        request = flow.request
        if not self.active:
            reply = error_reply(
                503,
                "NoSession",
                "graph-vcr-proxy: no test session is configured on this proxy",
                request.headers,
            )
            flows.answer(flow, reply, by=AnsweredBy.CHECK)
            return
        operation = route.operation.value if route.operation else None
        body = parsed_body(flows.body_of(flow))
        headers = journal_headers(request.headers.items(multi=True), CREDENTIAL_HEADERS)
        sent = Sent(flow, request.method, request.pretty_url, operation, body, headers=headers)
        self.journal.append(sent)

    def done(self) -> None:
        if self.summary is not None:
            self.summary.count(self.journal)
            self.journal = []
            self.summary.write()

    def running(self) -> None:
        # The plugin holds the only write end of our stdin: it sends its control requests
        # there (``control_pipe.py``), and EOF means it has gone (even by kill -9): a proxy
        # that nobody can switch any more must not outlive it.
        with contextlib.suppress(OSError, ValueError, AttributeError, NotImplementedError):
            asyncio.get_running_loop().add_reader(sys.stdin.fileno(), self._stdin_readable)

    def _stdin_readable(self) -> None:
        data = os.read(sys.stdin.fileno(), 1 << 16)
        if not data:
            asyncio.get_running_loop().remove_reader(sys.stdin.fileno())
            ctx.master.shutdown()
            return
        if self._skipping:
            end = data.find(b"\n")
            if end < 0:
                return
            data, self._skipping = data[end + 1 :], False
        *lines, self._pending = (self._pending + data).split(b"\n")
        replies = [answer_line(line) for line in lines if line.strip()]
        if len(self._pending) > LONGEST_LINE:  # no line end in sight: refuse, skip the rest
            replies.append(refusal_line(self._pending, f"a line longer than {LONGEST_LINE} bytes"))
            self._pending, self._skipping = b"", True
        for reply in replies:
            print(reply, end="", flush=True)


# The longest request line the pipe reads: a body as long as the endpoint's, JSON-encoded.
LONGEST_LINE = control_rules.MAX_BODY * 2


def refusal_line(line: bytes, why: str) -> str:
    """A 400 for a request line the pipe can't read, to its sender (the id its start names)."""
    reply = error_reply(400, BAD_REQUEST, f"control pipe: {why}", {})
    return control_pipe.reply_line(control_pipe.request_id_of(line), reply.status, reply.body)


def answer_line(line: bytes) -> str:
    """The reply line to one request line of the plugin's pipe: what the control endpoint
    answers the same request (a loopback JSON request), or a 400 for a line it can't read."""
    try:
        request = control_pipe.parse_request(line)
    except ValueError as exc:
        return refusal_line(line, str(exc))
    incoming = control_rules.Incoming(
        method=request.method,
        path=request.path,
        headers={},
        loopback=True,  # our stdin: only the plugin that started us can write to it
        content_type="application/json" if request.body else None,
        body=request.body,
    )
    reply = control_endpoint.answer_safely(incoming)
    return control_pipe.reply_line(request.id, reply.status, reply.body)


def mitmproxy_base() -> list[Any]:
    """The command's mitmproxy addons without the ``mitm.it`` page (and flask): a test's
    client trusts the CA the plugin hands it."""
    return serving.mitmproxy_base(onboarding=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.Parser(
        prog="graph-vcr-proxy session",
        description="The pytest plugin's proxy: switched per test over the control endpoint.",
    )
    cli.add_listen_arguments(parser)
    parser.add_argument(
        "--session-root",
        type=path_argument,
        required=True,
        metavar="DIR",
        help="the folder every path a session names (cassettes, state files...) must be in",
    )
    parser.add_argument(
        "--summary-dir",
        type=path_argument,
        metavar="DIR",
        help="at exit, write the summary of every test served as JSON into DIR (the pytest "
        "plugin's --graph-summary-markdown merges them)",
    )
    # The run's reports, as the command takes them (a test's session may not ask for them).
    cli.add_option_arguments(parser, (PERMISSIONS_REPORT, GUIDANCE_FLAG))
    try:
        args = parser.parse_args(argv)
        root = Path(args.session_root).expanduser()
        if not root.is_dir():
            raise UsageError(f"--session-root {args.session_root}: not a folder")
        cli.configure_logging(args.verbose)
        if not args.verbose:  # what each test's addons announce would only be noise
            cli.logger.setLevel(logging.WARNING)
        # The gate first, as in every chain of ours; each session sets its options.
        # Batching after the session (whose fault injector sees a batch call first).
        summary = None
        if args.summary_dir:
            from proxy_addons.addons.summary import Tally

            folder = Path(args.summary_dir).expanduser()
            if not folder.is_dir():
                raise UsageError(f"--summary-dir {args.summary_dir}: not a folder")
            tally = Tally(permissions=args.permissions_report, guidance=args.guidance)
            summary = RunSummary(folder, tally)
        addons = [Gate(), ControlEndpoint(), Session(root, summary), Batching()]
        if args.guidance:  # it only reads flows: anywhere before the journal is counted
            from proxy_addons.addons.guidance import Guidance

            addons.insert(2, Guidance())
        return asyncio.run(serving.serve(addons, {}, args, mitmproxy_base))
    except UsageError as exc:
        print(f"graph-vcr-proxy: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return 130
