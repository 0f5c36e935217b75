"""Running one proxy: each mode's addons and options from its parsed arguments, mitmproxy's
own addons, and a mitmproxy master bound to loopback that prints the one "proxy listening on"
line and stops cleanly on SIGINT/SIGTERM.

Every mode is one function from parsed arguments to (addons, option settings); the settings
are the mode's option table read from the arguments (``option_table.settings``), and a mode
function adds only what is really its own (``graph_forward_ours``, ``--reverse``). ``commands.py``
parses the arguments and imports this module only for a command that runs a proxy, so the
commands that only read cassettes (``show``, ``schema``, ``validate``, conversions) start
without mitmproxy's proxy machinery.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mitmproxy import ctx, exceptions, master, options

from proxy_addons.addons.batching import Batching
from proxy_addons.addons.chain_order import in_chain_order
from proxy_addons.addons.control_endpoint import ControlEndpoint
from proxy_addons.addons.etag_tracker import ETagTracker
from proxy_addons.addons.fault_injection import FaultInjector
from proxy_addons.addons.gate import Gate, Seal
from proxy_addons.addons.record import Record
from proxy_addons.addons.replay import Replay
from proxy_addons.addons.request_checks import RequestChecks
from proxy_addons.addons.unreachable_upstream import UnreachableUpstream
from proxy_addons.addons.validation_report import Validation
from proxy_addons.cassette.on_miss import OnMiss
from proxy_addons.cli import web_ui
from proxy_addons.common.option_table import declared
from proxy_addons.common.option_table import settings as option_settings
from proxy_addons.common.usage import USAGE_ERROR, UsageError
from proxy_addons.graph.validate_mode import ValidateMode
from proxy_addons.options.listen import PROCESS
from proxy_addons.options.proxy import FAULTS, FORWARD_OURS, NETWORK_POLICY, SUMMARY
from proxy_addons.options.record import RECORD
from proxy_addons.options.replay import REPLAY
from proxy_addons.options.simulate import SIMULATE
from proxy_addons.options.validation import VALIDATION

ModeBuilder = Callable[[argparse.Namespace], tuple[list[Any], dict[str, Any]]]


# --- modes --------------------------------------------------------------------------------


def replay_mode(args: argparse.Namespace) -> tuple[list[Any], dict[str, Any]]:
    settings = {
        **option_settings(args, REPLAY),
        **gate_settings(args, forward_ours=args.on_miss == OnMiss.FORWARD),
    }
    validation, validate_settings = validation_step(args)
    return [*validation, Replay(), Seal(), UnreachableUpstream()], {**settings, **validate_settings}


def record_mode(args: argparse.Namespace) -> tuple[list[Any], dict[str, Any]]:
    """``record``: forward, validate, redact and append each interaction to the cassette."""
    settings = {**option_settings(args, RECORD), **gate_settings(args, forward_ours=True)}
    validation, validate_settings = validation_step(args, always=True)
    return [*validation, Record(), Seal(), UnreachableUpstream()], {**settings, **validate_settings}


def simulate_mode(args: argparse.Namespace) -> tuple[list[Any], dict[str, Any]]:
    """``simulate``: the stateful emulator, as a proxy or (``--reverse``) as Graph itself."""
    from proxy_addons.addons.emulator import Emulator  # not needed by the other modes' start-up

    settings = {**option_settings(args, SIMULATE), **gate_settings(args, forward_ours=False)}
    if args.reverse:
        # A plain-HTTP endpoint that parses every request as a graph.microsoft.com URL: what
        # the recorder's --upstream points at. The emulator answers; nothing goes upstream.
        settings["mode"] = ["reverse:https://graph.microsoft.com"]
    validation, validate_settings = validation_step(args)
    return [*validation, Emulator(), Seal()], {**settings, **validate_settings}


def validation_step(
    args: argparse.Namespace, *, always: bool = False
) -> tuple[list[Any], dict[str, Any]]:
    """Validation (``--validate``) as a step of the chain: record always carries it (off is
    one of its settings, as a user may switch it at run time); replay and simulate only when
    asked, since each addon in the chain costs every request a hook call."""
    if not always and args.validate == str(ValidateMode.OFF):
        return [], {}
    return [Validation()], option_settings(args, VALIDATION)


def gate_settings(args: argparse.Namespace, *, forward_ours: bool) -> dict[str, Any]:
    """The gate's options (``gate.py``): the network policy every mode takes, and whether the
    mode may send our operations upstream, which each mode above states here, in one place:
    record does, replay only with ``--on-miss forward``, simulate never. The gate's seal
    (``gate.Seal``) comes right after each mode's addon, before anything that would connect."""
    return {**option_settings(args, NETWORK_POLICY), FORWARD_OURS.name: forward_ours}


def common_addons(args: argparse.Namespace) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """Addons every proxy mode carries: the gate, the control endpoint, Graph's request
    checks, the ETag tracker and the fault rules, before the mode's own; the summary after.

    The gate first: it decides what each flow is (and refuses what must not leave) before any
    other addon of ours sees it. The request checks next: a malformed request is Graph's 4xx
    whichever addons are loaded. Faults then: an answer given in its request hook is one the
    mode's addons never see.
    Bad rules are refused by the addon's ``configure`` (exit status 2, one line). The summary
    last: it counts each flow once the others have done their work on it.
    """
    settings = fault_settings(args)
    first = [Gate(), ControlEndpoint(), RequestChecks(), ETagTracker(), FaultInjector(), Batching()]
    if args.guidance:  # only in the chain when asked: each addon costs every request a dispatch
        from proxy_addons.addons.guidance import Guidance

        first.append(Guidance())
    last: list[Any] = []
    summary = option_settings(args, SUMMARY)
    if summary_wanted(summary):  # likewise: --no-summary and no report asked, no summary
        from proxy_addons.addons.summary import Summary  # rich: only where a summary is made

        last.append(Summary())
        settings |= summary
    return first, last, settings


def summary_wanted(settings: dict[str, Any]) -> bool:
    """Whether the summary's settings ask for anything: the table (on unless --no-summary),
    its JSON or Markdown, or the permissions report."""
    return any(settings.get(row.name, row.default) for row in declared(SUMMARY))


def fault_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The fault injector's options from the fault arguments every mode takes."""
    return option_settings(args, FAULTS)


MODES: dict[str, ModeBuilder] = {
    "replay": replay_mode,
    "record": record_mode,
    "simulate": simulate_mode,
}


# --- running a proxy ----------------------------------------------------------------------


def mitmproxy_base(*, onboarding: bool = True, reverse: bool = False) -> list[Any]:
    """mitmproxy's own addons that our proxies use, in mitmproxy's order.

    mitmproxy calls every addon of its chain for every hook of every flow (eight per
    request), and each costs about as much as a small hook does, whatever it does: about a
    third of mitmdump's own CPU per request goes to handing hooks out. mitmproxy's user
    features (scripts, saving, replaying and rewriting flows, cookies, anti-cache, proxy
    auth, upstream proxy auth, the export and cut commands) are off unless one of their
    options is set, and no command of ours sets them, so they are left out; so are those that
    act only in a mode our proxies never run: DNS (the resolver, HTTPS records stripped) and,
    but for ``simulate --reverse``, Alt-Svc rewriting in reverse mode. What a proxy does in
    its modes with its default options stays: the proxy server, TLS, ``block_global``, h2c
    refusal, and (for the command, not the pytest plugin's proxy) the ``mitm.it`` page that
    hands clients the CA. The web view keeps all of mitmweb's, whose options a user can set
    in it.
    """
    from mitmproxy.addons import block, core, disable_h2c, next_layer, proxyserver, tlsconfig

    welcome = []
    if onboarding:  # flask: only where it is served
        from mitmproxy.addons.onboarding import Onboarding

        welcome = [Onboarding()]
    alt_svc = []
    if reverse:
        from mitmproxy.addons.update_alt_svc import UpdateAltSvc

        alt_svc = [UpdateAltSvc()]
    return [
        core.Core(),
        block.Block(),
        disable_h2c.DisableH2C(),
        *welcome,
        proxyserver.Proxyserver(),
        next_layer.NextLayer(),
        tlsconfig.TlsConfig(),
        *alt_svc,
    ]


class Announce:
    """Prints where the proxy listens once it does, or stops it with status 2 if it can't.

    Other tools parse the first two lines; the web UI's URL, when there is one, comes third;
    then the network policy the gate holds (``network: ...``).
    """

    def __init__(self, listen: str, web: bool = False) -> None:
        self.listen = listen
        self.web = web
        self.exit_code = 0

    def running(self) -> None:
        addrs = ctx.master.addons.get("proxyserver").listen_addrs()
        if not addrs:
            print(
                f"graph-vcr-proxy: cannot listen on {self.listen} (address in use or not "
                "available)",
                file=sys.stderr,
                flush=True,
            )
            self.exit_code = USAGE_ERROR
            ctx.master.shutdown()
            return
        host, port = addrs[0][:2]
        ca = Path(ctx.options.confdir).expanduser() / "mitmproxy-ca-cert.pem"
        host = f"[{host}]" if ":" in host else host  # an IPv6 address in a URL
        print(f"proxy listening on http://{host}:{port}", flush=True)
        print(f"CA certificate: {ca}", flush=True)
        if self.web:
            print(f"{web_ui.URL_LINE}{web_ui.url(ctx.master)}", flush=True)
        gate = ctx.master.addons.get("gate")
        if gate is not None:
            print(gate.banner(), flush=True)
        # Said once; mitmproxy would still hand this addon every hook of every request (a
        # proxy's throughput goes down with each addon in its chain), so it leaves the chain,
        # once the running hook has been handed to every addon.
        asyncio.get_running_loop().call_soon(ctx.master.addons.remove, self)


async def serve(
    addons: list[Any],
    settings: dict[str, Any],
    args: argparse.Namespace,
    base_addons: Callable[[], list[Any]] | None = None,
) -> int:
    """Run a proxy with ``addons`` after mitmproxy's own (``base_addons()``, by default
    :func:`mitmproxy_base`'s) until it is stopped; the exit status."""
    confdir = Path(args.confdir).expanduser()
    if confdir.exists() and not confdir.is_dir():
        # mitmproxy would start anyway and fail every TLS handshake without saying why.
        raise UsageError(f"--confdir {args.confdir}: not a folder")
    if args.web_port is not None and not args.web:
        raise UsageError("--web-port: only with --web")
    opts = options.Options(
        **{row.name: getattr(args, row.dest) for row in PROCESS if row.name is not None}
    )
    proxy: master.Master
    if args.web:
        web_port = web_ui.DEFAULT_PORT if args.web_port is None else args.web_port
        proxy = web_ui.web_master(opts, port=web_port, verbose=args.verbose)
        from proxy_addons.addons.web_tags import WebTags  # only the web view tags flows

        addons = [*addons, WebTags()]  # last: it reports what the others did to each flow
    else:
        proxy = master.Master(opts, with_termlog=args.verbose)
        reverse = any(str(mode).startswith("reverse:") for mode in settings.get("mode", ()))
        proxy.addons.add(*(base_addons or functools.partial(mitmproxy_base, reverse=reverse))())
    announce = Announce(f"{args.listen_host}:{args.listen_port}", web=args.web)
    try:
        with addon_errors_refused():
            proxy.addons.add(*addons, announce)
            opts.update(connection_strategy="lazy", **settings)
    except exceptions.OptionsError as exc:
        raise UsageError(str(exc)) from None
    # Everything built so far (modules, the cassettes just loaded: a 10,000-interaction one
    # is a million objects) lives until the proxy stops. Out of the cyclic collector's sight,
    # it is never scanned again: no collection pause grows with the cassette. A process that
    # held the collector off while it started (the pytest plugin's child) gets it back now.
    gc.freeze()
    gc.enable()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, proxy.shutdown)
    loop.set_exception_handler(_quiet_cancelled)
    try:
        await proxy.run()
    except OSError:
        if not args.web:
            raise
        # mitmweb binds its UI port when it starts running, and raises if it can't.
        raise UsageError(
            f"cannot listen on {web_ui.WEB_HOST}:{opts.web_port} for the web UI (address in "
            "use or not available; --web-port 0 takes a free port)"
        ) from None
    return announce.exit_code


class _AddonErrors(logging.Handler):
    """What mitmproxy's addon manager logs, and swallows, when an addon raises anything but
    an ``OptionsError``: kept to be refused."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def addon_errors_refused() -> Iterator[None]:
    """Refuse to start (exit status 2, one line) when an addon failed while the proxy was set
    up: mitmproxy logs such an error (unseen without ``--verbose``) and goes on, and a proxy
    serving with an addon half-configured (a cassette not loaded, rules not read) would
    answer as if nothing were wrong."""
    handler = _AddonErrors()
    log = logging.getLogger("mitmproxy.addonmanager")
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)
    if handler.messages:
        first = handler.messages[0].splitlines()[0] if handler.messages[0] else "addon error"
        raise UsageError(f"cannot start: {first}")


def _quiet_cancelled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Python 3.11's asyncio reports client connections still open at a stop as errors, with a
    traceback; they were cancelled on purpose (SIGTERM, Ctrl-C), so say nothing."""
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


def assemble(args: argparse.Namespace) -> tuple[list[Any], dict[str, Any]]:
    """The whole chain of the mode ``args`` names, in order, and its option settings."""
    addons, settings = MODES[args.command](args)
    first, last, extra_settings = common_addons(args)
    ours = in_chain_order([*first, *addons, *last])  # the one order, as every chain has it
    return ours, {**extra_settings, **settings}


def run(args: argparse.Namespace) -> int:
    """The command's proxy, in the mode ``args`` names, until it is stopped; the exit status."""
    addons, settings = assemble(args)
    return asyncio.run(serve(addons, settings, args))
