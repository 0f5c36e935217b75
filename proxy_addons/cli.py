"""graph-vcr-proxy: assembles the addons for one mode, runs mitmproxy, and reports.

Every mode is one function from parsed arguments to (addons, option settings); the rest of
the file is the shared machinery: argument parsing, a mitmproxy master bound to loopback,
the one "proxy listening on" line, clean stops on SIGINT/SIGTERM, and exit status 2 with one
line for any user mistake.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mitmproxy import ctx, exceptions, master, options

from proxy_addons import permissions, web_ui
from proxy_addons.fault_injection import FaultInjector
from proxy_addons.record import RECORD_MODES, VALIDATE_MODES, Record
from proxy_addons.record_mode import RecordMode
from proxy_addons.replay import ON_MISS, Replay
from proxy_addons.unreachable_upstream import UnreachableUpstream

USAGE_ERROR = 2
logger = logging.getLogger("proxy_addons")


class UsageError(Exception):
    """A user mistake: printed as one line, exit status 2."""


ModeBuilder = Callable[[argparse.Namespace], tuple[list[Any], dict[str, Any]]]


# --- modes --------------------------------------------------------------------------------


def replay_mode(args: argparse.Namespace) -> tuple[list[Any], dict[str, Any]]:
    settings: dict[str, Any] = {
        "graph_on_miss": args.on_miss,
        "graph_match_body": not args.ignore_body,
    }
    if args.cassette:
        settings["graph_cassette"] = args.cassette
    return [Replay(), UnreachableUpstream()], settings


def record_mode(args: argparse.Namespace) -> tuple[list[Any], dict[str, Any]]:
    """``record``: forward, validate, redact and append each interaction to the cassette."""
    settings: dict[str, Any] = {
        "graph_cassette": args.cassette,
        "graph_record_mode": args.record_mode,
        "graph_upstream": args.upstream,
        "graph_validate": args.validate,
        "graph_redact_headers": list(args.redact_header or []),
        "graph_redact_fields": list(args.redact_field or []),
        "graph_record_fsync": not args.no_fsync,
        "graph_record_decode_compressed": args.decode_compressed_response,
    }
    return [Record(), UnreachableUpstream()], settings


def simulate_mode(args: argparse.Namespace) -> tuple[list[Any], dict[str, Any]]:
    """``simulate``: the stateful emulator, as a proxy or (``--reverse``) as Graph itself."""
    from proxy_addons.emulator import Emulator  # not needed by the other modes' start-up

    settings: dict[str, Any] = {
        "graph_state": args.state or "",
        "graph_provisioning_delay": args.provisioning_delay,
        "graph_deprecation_warnings": args.deprecation_warnings,
        "graph_require_auth": not args.allow_anonymous,
        "graph_allow_any_token": args.allow_any_token,
        "graph_accepted_scopes": list(args.accept_scope or []),
        "graph_forbidden_code": args.forbidden_code,
        "graph_forbidden_message": args.forbidden_message,
    }
    if args.reverse:
        # A plain-HTTP endpoint that parses every request as a graph.microsoft.com URL: what
        # the recorder's --upstream points at. The emulator answers; nothing goes upstream.
        settings["mode"] = ["reverse:https://graph.microsoft.com"]
    return [Emulator()], settings


def common_addons(args: argparse.Namespace) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """Addons every proxy mode carries: faults before the mode's own, the summary after.

    Faults first: an answer given in its request hook is one the mode's addons never see.
    Bad rules are refused by the addon's ``configure`` (exit status 2, one line). The summary
    last: it counts each flow once the others have done their work on it.
    """
    from proxy_addons.summary import Summary  # rich: only for proxies that print a summary

    settings: dict[str, Any] = {
        **fault_settings(args),
        "graph_summary": not args.no_summary,
        "graph_summary_json": args.summary_json or "",
    }
    return [FaultInjector()], [Summary()], settings


def fault_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The fault injector's options from the fault arguments every mode takes."""
    return {
        "graph_faults": list(args.fault or []),
        "graph_faults_file": args.faults or "",
        "graph_fault_seed": args.seed,
    }


MODES: dict[str, ModeBuilder] = {
    "replay": replay_mode,
    "record": record_mode,
    "simulate": simulate_mode,
}


# --- running a proxy ----------------------------------------------------------------------


def mitmproxy_base(*, onboarding: bool = True) -> list[Any]:
    """mitmproxy's own addons that our proxies use, in mitmproxy's order.

    mitmproxy calls every addon of its chain for every hook of every flow (eight per
    request), and each costs about as much as a small hook does, whatever it does: about a
    third of mitmdump's own CPU per request goes to handing hooks out. mitmproxy's user
    features (scripts, saving, replaying and rewriting flows, cookies, anti-cache, proxy
    auth, the export and cut commands) are off unless one of their options is set, and no
    command of ours sets them, so they are left out. What a proxy does with its default
    options stays: the proxy server, TLS, DNS, ``block_global``, h2c refusal, Alt-Svc in
    reverse mode, ``upstream_auth``, and (for the command, not the pytest plugin's proxy)
    the ``mitm.it`` page that hands clients the CA. The web view keeps all of mitmweb's,
    whose options a user can set in it.
    """
    from mitmproxy.addons import (
        block,
        core,
        disable_h2c,
        dns_resolver,
        next_layer,
        proxyserver,
        strip_dns_https_records,
        tlsconfig,
        update_alt_svc,
        upstream_auth,
    )

    welcome = []
    if onboarding:  # flask: only where it is served
        from mitmproxy.addons.onboarding import Onboarding

        welcome = [Onboarding()]
    return [
        core.Core(),
        block.Block(),
        strip_dns_https_records.StripDnsHttpsRecords(),
        disable_h2c.DisableH2C(),
        *welcome,
        proxyserver.Proxyserver(),
        dns_resolver.DnsResolver(),
        next_layer.NextLayer(),
        tlsconfig.TlsConfig(),
        upstream_auth.UpstreamAuth(),
        update_alt_svc.UpdateAltSvc(),
    ]


class Announce:
    """Prints where the proxy listens once it does, or stops it with status 2 if it can't.

    Other tools parse the first two lines; the web UI's URL, when there is one, comes third.
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
        listen_host=args.listen_host, listen_port=args.listen_port, confdir=args.confdir
    )
    proxy: master.Master
    if args.web:
        web_port = web_ui.DEFAULT_PORT if args.web_port is None else args.web_port
        proxy = web_ui.web_master(opts, port=web_port, verbose=args.verbose)
        from proxy_addons.web_tags import WebTags  # only the web view tags flows

        addons = [*addons, WebTags()]  # last: it reports what the others did to each flow
    else:
        proxy = master.Master(opts, with_termlog=args.verbose)
        proxy.addons.add(*(base_addons or mitmproxy_base)())
    announce = Announce(f"{args.listen_host}:{args.listen_port}", web=args.web)
    try:
        proxy.addons.add(*addons, announce)
        opts.update(connection_strategy="lazy", **settings)
    except exceptions.OptionsError as exc:
        raise UsageError(str(exc)) from None
    # Everything built so far (modules, the cassettes just loaded: a 10,000-interaction one
    # is a million objects) lives until the proxy stops. Out of the cyclic collector's sight,
    # it is never scanned again: no collection pause grows with the cassette.
    gc.freeze()
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


def _quiet_cancelled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Python 3.11's asyncio reports client connections still open at a stop as errors, with a
    traceback; they were cancelled on purpose (SIGTERM, Ctrl-C), so say nothing."""
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


def configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("graph-vcr-proxy: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False


# --- arguments ----------------------------------------------------------------------------


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {port}")
    return port


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line and exit status 2, never a usage dump."""

    def error(self, message: str) -> Any:
        command = self.prog.removeprefix("graph-vcr-proxy").strip()
        raise UsageError(f"{command}: {message}" if command else message)


def add_proxy_arguments(parser: argparse.ArgumentParser) -> None:
    add_listen_arguments(parser)
    add_common_mode_arguments(parser)


def add_listen_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the proxy listens and keeps its CA, and how loud it is: fixed for its lifetime."""
    parser.add_argument("--listen-host", default="127.0.0.1", help="default: 127.0.0.1")
    parser.add_argument("--listen-port", type=_port, default=8080, help="0 takes a free port")
    parser.add_argument(
        "--confdir",
        default="~/.mitmproxy",
        help="where mitmproxy keeps its CA (default: %(default)s)",
    )
    parser.add_argument("--verbose", action="store_true", help="show mitmproxy's own log")
    parser.add_argument(
        "--web",
        action="store_true",
        help="run inside mitmproxy's web UI (on 127.0.0.1 only), each Graph flow tagged with "
        "who answered it; its URL is the third line printed",
    )
    parser.add_argument(
        "--web-port",
        type=_port,
        metavar="P",
        help=f"the web UI's port (default: {web_ui.DEFAULT_PORT}; 0 takes a free port)",
    )


def add_common_mode_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments every proxy mode takes besides the listen ones: faults, seed, summary."""
    parser.add_argument(
        "--fault",
        action="append",
        metavar="SPEC",
        help="inject a fault, KIND[:key=value,...], e.g. throttle:times=1,retry-after=1 "
        "(repeatable; tried in order)",
    )
    parser.add_argument(
        "--faults", metavar="FILE", help="a YAML list of fault rules, tried before --fault"
    )
    parser.add_argument(
        "--seed", type=int, metavar="N", help="make rate= and ms=MIN-MAX faults repeatable"
    )
    parser.add_argument(
        "--summary-json", metavar="FILE", help="write the exit summary as JSON to FILE"
    )
    parser.add_argument(
        "--no-summary", action="store_true", help="do not print the summary table at exit"
    )


def add_replay_parser(sub: Any) -> None:
    replay = sub.add_parser("replay", help="answer Graph calls from cassettes, offline")
    add_proxy_arguments(replay)
    replay.add_argument("--cassette", help="cassette file or folder (default: bundled)")
    replay.add_argument("--on-miss", choices=ON_MISS, default="error")
    replay.add_argument(
        "--ignore-body", action="store_true", help="match on method, URL and query only"
    )


def add_record_parser(sub: Any) -> None:
    record = sub.add_parser("record", help="forward Graph calls and record them to a cassette")
    add_proxy_arguments(record)
    record.add_argument("--cassette", required=True, help="cassette file to record into")
    record.add_argument(
        "--record-mode",
        choices=RECORD_MODES,
        default=str(RecordMode.ONCE),
        help="vcrpy's record modes (default: %(default)s, which refuses an existing cassette)",
    )
    record.add_argument(
        "--upstream",
        metavar="URL",
        default="",
        help="send Graph calls to this base URL instead of the real host; the cassette keeps "
        "the real Graph URL",
    )
    record.add_argument(
        "--validate",
        choices=VALIDATE_MODES,
        default="warn",
        help="warn: log each problem; enforce: also refuse invalid requests with Graph's 400 "
        "(default: %(default)s)",
    )
    add_redaction_arguments(record)
    record.add_argument(
        "--decode-compressed-response",
        action="store_true",
        help="store compressed response bodies decoded, without their Content-Encoding "
        "(vcrpy's decode_compressed_response; default: as received, as vcrpy does)",
    )
    record.add_argument(
        "--no-fsync",
        action="store_true",
        help="write each interaction without fsync (still safe from a killed proxy, not from "
        "a power cut)",
    )


def add_redaction_arguments(parser: argparse.ArgumentParser) -> None:
    """What is redacted besides the credentials: the recorder's options, also on imports."""
    parser.add_argument(
        "--redact-header",
        action="append",
        metavar="NAME",
        help="also redact this header (repeatable; Authorization, Cookie, Set-Cookie always)",
    )
    parser.add_argument(
        "--redact-field",
        action="append",
        metavar="NAME",
        help="also redact this JSON field at any depth, e.g. emailAddress (repeatable)",
    )


def add_simulate_parser(sub: Any) -> None:
    simulate = sub.add_parser("simulate", help="answer Graph calls from a stateful emulator")
    add_proxy_arguments(simulate)
    simulate.add_argument(
        "--state", metavar="FILE", help="keep appointments in FILE across restarts"
    )
    simulate.add_argument(
        "--provisioning-delay",
        type=int,
        default=0,
        metavar="SECONDS",
        help="each owner's first create gets 409 with this Retry-After once (default: 0, off)",
    )
    simulate.add_argument(
        "--deprecation-warnings",
        action="store_true",
        help="log that virtualAppointment is retired; add Deprecation/Sunset/Link headers",
    )
    simulate.add_argument(
        "--allow-anonymous",
        action="store_true",
        help="accept requests without an 'Authorization: Bearer' header",
    )
    simulate.add_argument(
        "--allow-any-token",
        action="store_true",
        help="do not judge what a JWT bearer token grants (by default app-only tokens, personal "
        "accounts' tokens and tokens without an accepted scope get Graph's 403)",
    )
    simulate.add_argument(
        "--accept-scope",
        action="append",
        metavar="SCOPE",
        help="a delegated scope that grants every operation (repeatable; default: each "
        "operation's documented scopes)",
    )
    simulate.add_argument(
        "--forbidden-code",
        default=permissions.FORBIDDEN_CODE,
        metavar="CODE",
        help="error code of that 403 (default: %(default)s, Graph's)",
    )
    simulate.add_argument(
        "--forbidden-message",
        default=permissions.FORBIDDEN_MESSAGE,
        metavar="TEXT",
        help="error message of that 403 (default: empty, Graph's)",
    )
    simulate.add_argument(
        "--reverse",
        action="store_true",
        help="serve plain HTTP as graph.microsoft.com itself instead of being a proxy "
        "(an --upstream for record)",
    )


def build_parser() -> Parser:
    parser = Parser(prog="graph-vcr-proxy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_replay_parser(sub)
    add_record_parser(sub)
    add_simulate_parser(sub)

    validate = sub.add_parser("validate", help="check cassettes against the models")
    validate.add_argument("paths", nargs="+", metavar="PATH")

    sub.add_parser("demo", help="replay the documented create call end to end")
    add_show_parser(sub)
    add_schema_parser(sub)
    add_import_parsers(sub)
    add_export_parsers(sub)
    return parser


# --- around the cassettes: show, schema, import, export -------------------------------------


def _with_example(sub: Any, name: str, help: str, example: str) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` ends with an example, as written."""
    return sub.add_parser(
        name,
        help=help,
        description=help[0].upper() + help[1:] + ".",
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_show_parser(sub: Any) -> None:
    show = _with_example(
        sub,
        "show",
        "list the interactions of cassettes: route, status, ETag, sizes, what was redacted",
        "graph-vcr-proxy show tests/cassettes/ --json",
    )
    show.add_argument("paths", nargs="+", metavar="PATH", help="cassette file or folder")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show.set_defaults(run=run_show)


def run_show(args: argparse.Namespace) -> int:
    from proxy_addons.show_command import run_show

    return _user_errors(run_show, args.paths, args.json)


def add_schema_parser(sub: Any) -> None:
    schema = _with_example(
        sub,
        "schema",
        "print the JSON Schema of the models (all, or one by name)",
        "graph-vcr-proxy schema VirtualAppointment > virtualAppointment.schema.json",
    )
    schema.add_argument("model", nargs="?", metavar="MODEL", help="e.g. VirtualAppointment")
    schema.set_defaults(run=run_schema)


def run_schema(args: argparse.Namespace) -> int:
    from proxy_addons.schema_command import run_schema

    return _user_errors(run_schema, args.model)


IMPORT_EXAMPLES = {
    "devproxy": (
        "a Dev Proxy mocks file (MockResponsePlugin); replay the result with --ignore-body",
        "graph-vcr-proxy import devproxy mocks.json -o tests/cassettes/from-mocks.yaml",
    ),
    "har": (
        "a HAR file, as browsers' dev tools and mitmproxy save it",
        "graph-vcr-proxy import har session.har -o tests/cassettes/session.yaml "
        "--redact-field emailAddress",
    ),
    "flows": (
        "a mitmproxy flow file (mitmdump -w FILE)",
        "graph-vcr-proxy import flows session.mitm -o tests/cassettes/session.yaml",
    ),
}
EXPORT_EXAMPLES = {
    "devproxy": (
        "a Dev Proxy mocks file (MockResponsePlugin) answering as the cassette does",
        "graph-vcr-proxy export devproxy tests/cassettes/session.yaml -o mocks.json",
    ),
    "har": (
        "a HAR 1.2 file, written by mitmproxy's HAR exporter",
        "graph-vcr-proxy export har tests/cassettes/session.yaml -o session.har",
    ),
}


def add_import_parsers(sub: Any) -> None:
    parser = sub.add_parser("import", help="make a cassette from a HAR, flow or Dev Proxy file")
    formats = parser.add_subparsers(dest="format", required=True, parser_class=Parser)
    for name, (what, example) in IMPORT_EXAMPLES.items():
        each = _with_example(formats, name, f"import {what}", example)
        each.add_argument("source", metavar="FILE", help="the file to import")
        each.add_argument("-o", "--output", required=True, metavar="CASSETTE")
        each.add_argument("--force", action="store_true", help="replace an existing CASSETTE")
        each.add_argument(
            "--validate",
            choices=VALIDATE_MODES,
            default="warn",
            help="warn: log each problem, as record does; enforce: also leave out invalid "
            "requests (default: %(default)s)",
        )
        add_redaction_arguments(each)
        each.add_argument("--verbose", action="store_true", help="also show validation notes")
        each.set_defaults(run=run_import)


def run_import(args: argparse.Namespace) -> int:
    from proxy_addons.conversions import ImportSettings
    from proxy_addons.devproxy import import_devproxy
    from proxy_addons.flow_file import import_flow_file
    from proxy_addons.har import import_har
    from proxy_addons.redaction import RedactionRules

    importer = {"devproxy": import_devproxy, "har": import_har, "flows": import_flow_file}
    settings = ImportSettings(
        output=Path(args.output),
        force=args.force,
        rules=RedactionRules.of(args.redact_header or [], args.redact_field or []),
        validate=args.validate,
    )
    source = Path(args.source)
    report = _user_errors(importer[args.format], source, settings)
    print(report.summary(source, settings.output))
    return 0


def add_export_parsers(sub: Any) -> None:
    parser = sub.add_parser("export", help="write a cassette as a HAR or Dev Proxy file")
    formats = parser.add_subparsers(dest="format", required=True, parser_class=Parser)
    for name, (what, example) in EXPORT_EXAMPLES.items():
        each = _with_example(formats, name, f"export {what}", example)
        each.add_argument("cassette", metavar="CASSETTE", help="cassette file or folder")
        each.add_argument("-o", "--output", required=True, metavar="FILE")
        each.add_argument("--force", action="store_true", help="replace an existing FILE")
        each.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    from proxy_addons.devproxy import export_devproxy
    from proxy_addons.har import export_har

    exporter = {"devproxy": export_devproxy, "har": export_har}
    output = Path(args.output)
    written = _user_errors(exporter[args.format], Path(args.cassette), output, args.force)
    print(f"{output}: {written} {'mocks' if args.format == 'devproxy' else 'entries'} written")
    return 0


def _user_errors(run: Callable[..., Any], *args: Any) -> Any:
    """``run(*args)``, with a cassette or file the user got wrong made a UsageError."""
    from proxy_addons.cassette import CassetteError
    from proxy_addons.conversions import ConversionError
    from proxy_addons.schema_command import UnknownModel

    try:
        return run(*args)
    except (CassetteError, ConversionError, UnknownModel) as exc:
        raise UsageError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        configure_logging(getattr(args, "verbose", False))
        run = getattr(args, "run", None)
        if run is not None:
            return run(args)
        if args.command == "validate":
            from proxy_addons.validate_command import run_validate

            return run_validate(args.paths)
        if args.command == "demo":
            from proxy_addons.demo import run_demo

            return run_demo()
        addons, settings = MODES[args.command](args)
        first, last, extra_settings = common_addons(args)
        return asyncio.run(serve([*first, *addons, *last], {**extra_settings, **settings}, args))
    except UsageError as exc:
        print(f"graph-vcr-proxy: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
