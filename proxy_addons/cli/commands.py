"""graph-vcr-proxy's command line: every command's arguments, and exit status 2 with one
line for any user mistake.

A command that runs a proxy (``replay``, ``record``, ``simulate``) is handed to
``serving.py``, imported only then; the others (``show``, ``schema``, ``validate``,
``import``, ``export``, ``demo``, ``token``) import only what they use.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from proxy_addons.common.option_table import Option, flagged
from proxy_addons.common.usage import USAGE_ERROR, UsageError
from proxy_addons.graph import permissions
from proxy_addons.graph.validate_mode import ValidateMode
from proxy_addons.options.commands import command_options
from proxy_addons.options.listen import LISTEN
from proxy_addons.options.record import REDACTION

logger = logging.getLogger("proxy_addons")


def configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("graph-vcr-proxy: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False


# --- arguments ----------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line and exit status 2, never a usage dump."""

    def error(self, message: str) -> Any:
        command = self.prog.removeprefix("graph-vcr-proxy").strip()
        raise UsageError(f"{command}: {message}" if command else message)


def add_option_arguments(parser: argparse.ArgumentParser, rows: Iterable[Option]) -> None:
    """A flag for each row of an option table (``proxy_addons/options/``) that has one, in the
    table's order; how each flag sets its option is the row's (``option_table.Option``)."""
    for row in flagged(rows):
        assert row.flag is not None
        extra: dict[str, Any] = {}
        if row.is_switch:
            extra["action"] = "store_true"
        else:
            if row.is_repeated:
                extra["action"] = "append"
            else:
                extra["default"] = row.flag_default
            if row.value_type is not None:
                extra["type"] = row.value_type
            if row.choices is not None:
                extra["choices"] = row.choices
            if row.metavar is not None:
                extra["metavar"] = row.metavar
        if row.required:
            extra["required"] = True
        parser.add_argument(row.flag, help=row.flag_help, **extra)


def add_proxy_arguments(parser: argparse.ArgumentParser, mode: str) -> None:
    """Every argument of ``graph-vcr-proxy MODE``: where it listens, what every mode shares,
    then the mode's own."""
    add_option_arguments(parser, command_options(mode))


def add_listen_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the proxy listens and keeps its CA, and how loud it is: fixed for its lifetime."""
    add_option_arguments(parser, LISTEN)


def add_redaction_arguments(parser: argparse.ArgumentParser) -> None:
    """What is redacted besides the credentials: the recorder's options, also on imports."""
    add_option_arguments(parser, REDACTION)


def add_replay_parser(sub: Any) -> None:
    replay = sub.add_parser("replay", help="answer Graph calls from cassettes, offline")
    add_proxy_arguments(replay, "replay")


def add_record_parser(sub: Any) -> None:
    record = sub.add_parser("record", help="forward Graph calls and record them to a cassette")
    add_proxy_arguments(record, "record")


def add_simulate_parser(sub: Any) -> None:
    simulate = sub.add_parser("simulate", help="answer Graph calls from a stateful emulator")
    add_proxy_arguments(simulate, "simulate")


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
    add_token_parser(sub)
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
    from proxy_addons.cli.show import run_show

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
    from proxy_addons.cli.schema import run_schema

    return _user_errors(run_schema, args.model)


def add_token_parser(sub: Any) -> None:
    token = _with_example(
        sub,
        "token",
        "print an unsigned test JWT (alg none) that the permissions checks read as Microsoft's",
        "graph-vcr-proxy token --scope OnlineMeetings.Read  # under-scoped for a create",
    )
    token.add_argument(
        "--scope",
        action="append",
        default=[],
        dest="scopes",
        metavar="SCOPE",
        help="a delegated scope in scp (repeatable; default: none)",
    )
    token.add_argument("--app", action="store_true", help="an app-only token: roles, no scp")
    token.add_argument(
        "--role",
        action="append",
        default=[],
        dest="roles",
        metavar="ROLE",
        help="an application permission in roles (repeatable; needs --app)",
    )
    token.add_argument(
        "--personal",
        action="store_true",
        help=f"a personal Microsoft account's (tid {permissions.PERSONAL_ACCOUNT_TENANT})",
    )
    token.add_argument("--tenant", metavar="ID", help="the tid (a GUID; default: a made-up one)")
    token.add_argument(
        "--expires-in",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="exp from now (default: 3600; negative: already expired)",
    )
    token.add_argument("--app-id", metavar="ID", help="appid and azp (a GUID)")
    token.set_defaults(run=run_token)


def run_token(args: argparse.Namespace) -> int:
    from proxy_addons.graph import tokens

    try:
        minted = tokens.token(
            scopes=args.scopes,
            app=args.app,
            roles=args.roles,
            personal=args.personal,
            tenant=args.tenant,
            expires_in=args.expires_in,
            app_id=tokens.DEFAULT_APP_ID if args.app_id is None else args.app_id,
        )
    except tokens.TokenError as exc:
        raise UsageError(f"token: {exc}") from None
    print(minted)
    return 0


IMPORT_EXAMPLES = {
    "devproxy": (
        "a Dev Proxy mocks file (MockResponsePlugin); replay the result with --ignore-body "
        "--allow-playback-repeats",
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
            choices=tuple(ValidateMode),
            default="warn",
            help="warn: log each problem, as record does; enforce: also leave out invalid "
            "requests (default: %(default)s)",
        )
        add_redaction_arguments(each)
        each.add_argument("--verbose", action="store_true", help="also show validation notes")
        each.set_defaults(run=run_import)


def run_import(args: argparse.Namespace) -> int:
    from proxy_addons.cassette.redaction import RedactionRules
    from proxy_addons.convert.conversions import ImportSettings
    from proxy_addons.convert.devproxy import import_devproxy
    from proxy_addons.convert.har import import_har
    from proxy_addons.convert.mitmproxy_file import import_flow_file

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
    from proxy_addons.convert.devproxy import export_devproxy
    from proxy_addons.convert.har import export_har

    exporter = {"devproxy": export_devproxy, "har": export_har}
    output = Path(args.output)
    written = _user_errors(exporter[args.format], Path(args.cassette), output, args.force)
    print(f"{output}: {written} {'mocks' if args.format == 'devproxy' else 'entries'} written")
    return 0


def _user_errors(run: Callable[..., Any], *args: Any) -> Any:
    """``run(*args)``, with a cassette or file the user got wrong made a UsageError."""
    from proxy_addons.cassette.cassette import CassetteError
    from proxy_addons.cli.schema import UnknownModel
    from proxy_addons.convert.conversions import ConversionError

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
            from proxy_addons.cli.validate import run_validate

            return run_validate(args.paths)
        if args.command == "demo":
            from proxy_addons.cli.demo import run_demo

            return run_demo()
        from proxy_addons.cli import serving  # mitmproxy's proxy: only for a command that runs one

        return serving.run(args)
    except UsageError as exc:
        print(f"graph-vcr-proxy: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
