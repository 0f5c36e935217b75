"""graph-vcr-proxy: assembles the addons for one mode, runs mitmproxy, and reports.

Every mode is one function from parsed arguments to (addons, option settings); the rest of
the file is the shared machinery: argument parsing, a mitmproxy master bound to loopback,
the one "proxy listening on" line, clean stops on SIGINT/SIGTERM, and exit status 2 with one
line for any user mistake.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mitmproxy import addons as mitm_addons
from mitmproxy import ctx, exceptions, master, options

from proxy_addons.replay import ON_MISS, Replay

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
    return [Replay()], settings


def record_mode(args: argparse.Namespace) -> tuple[list[Any], dict[str, Any]]:
    """``record``: owned by the recorder (issue 4)."""
    raise UsageError("record: not implemented yet")


def simulate_mode(args: argparse.Namespace) -> tuple[list[Any], dict[str, Any]]:
    """``simulate``: owned by the emulator (issue 3)."""
    raise UsageError("simulate: not implemented yet")


def common_addons(args: argparse.Namespace) -> tuple[list[Any], dict[str, Any]]:
    """Addons every proxy mode carries (faults, summary), placed before the mode's own."""
    return [], {}


MODES: dict[str, ModeBuilder] = {
    "replay": replay_mode,
    "record": record_mode,
    "simulate": simulate_mode,
}


# --- running a proxy ----------------------------------------------------------------------


class Announce:
    """Prints where the proxy listens once it does, or stops it with status 2 if it can't."""

    def __init__(self, listen: str) -> None:
        self.listen = listen
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
        print(f"proxy listening on http://{host}:{port}", flush=True)
        print(f"CA certificate: {ca}", flush=True)


async def serve(addons: list[Any], settings: dict[str, Any], args: argparse.Namespace) -> int:
    opts = options.Options(
        listen_host=args.listen_host, listen_port=args.listen_port, confdir=args.confdir
    )
    proxy = master.Master(opts, with_termlog=args.verbose)
    proxy.addons.add(*mitm_addons.default_addons())
    announce = Announce(f"{args.listen_host}:{args.listen_port}")
    try:
        proxy.addons.add(*addons, announce)
        opts.update(connection_strategy="lazy", **settings)
    except exceptions.OptionsError as exc:
        raise UsageError(str(exc)) from None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, proxy.shutdown)
    await proxy.run()
    return announce.exit_code


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
    parser.add_argument("--listen-host", default="127.0.0.1", help="default: 127.0.0.1")
    parser.add_argument("--listen-port", type=_port, default=8080, help="0 takes a free port")
    parser.add_argument(
        "--confdir",
        default="~/.mitmproxy",
        help="where mitmproxy keeps its CA (default: %(default)s)",
    )
    parser.add_argument("--verbose", action="store_true", help="show mitmproxy's own log")
    add_common_mode_arguments(parser)


def add_common_mode_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments every proxy mode takes besides the listen ones: faults, seed, summary."""


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


def add_simulate_parser(sub: Any) -> None:
    simulate = sub.add_parser("simulate", help="answer Graph calls from a stateful emulator")
    add_proxy_arguments(simulate)


def build_parser() -> Parser:
    parser = Parser(prog="graph-vcr-proxy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_replay_parser(sub)
    add_record_parser(sub)
    add_simulate_parser(sub)

    validate = sub.add_parser("validate", help="check cassettes against the models")
    validate.add_argument("paths", nargs="+", metavar="PATH")

    sub.add_parser("demo", help="replay the documented create call end to end")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        configure_logging(getattr(args, "verbose", False))
        if args.command == "validate":
            from proxy_addons.validate_command import run_validate

            return run_validate(args.paths)
        if args.command == "demo":
            from proxy_addons.demo import run_demo

            return run_demo()
        addons, settings = MODES[args.command](args)
        extra_addons, extra_settings = common_addons(args)
        return asyncio.run(serve([*extra_addons, *addons], {**extra_settings, **settings}, args))
    except UsageError as exc:
        print(f"graph-vcr-proxy: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
