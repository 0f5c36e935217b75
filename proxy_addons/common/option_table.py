"""One row per option: what mitmproxy declares, what the command line takes, and how one sets
the other.

Every option of ours is written once, as an :class:`Option` in a table of
``proxy_addons/options/`` (one table per mode, and the ones every proxy mode shares). From
those rows come the mitmproxy options each addon declares (``addons/declared_options.py``),
the argparse parser of ``replay``, ``record`` and ``simulate`` (``cli/commands.py``), the
settings a parsed command line makes (:func:`settings`, for ``cli/serving.py`` and the pytest
plugin's session), the arguments the pytest plugin sends (:meth:`Option.arguments`) and
refuses, and the option reference of the docs (``docs/hooks/command_help.py``).

Pure: neither mitmproxy nor argparse is needed to read a table.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any


def path_argument(text: str) -> str:
    """The ``type`` of every argument that names a file or folder: the text as given. The
    pytest plugin's proxy finds them by it and keeps each under its session root."""
    return text


@dataclass(frozen=True)
class Option:
    """One option: the mitmproxy option (``name``, ``type``, ``default``, ``help``, ``choices``)
    and its command-line flag (``flag`` and the fields after it), each optional.

    How the flag sets the option follows from the type: a ``bool`` is a switch
    (``store_true``) that sets it ``True``, or ``False`` when ``inverted`` (``--no-fsync``);
    a ``Sequence[str]`` is a repeatable flag (``append``), each occurrence one item; anything
    else takes one value, parsed by ``parse`` (``path_argument`` when ``path``). A flag left
    out leaves the option at its default.
    """

    name: str | None  # the mitmproxy option; None: a flag with no option (--verbose, --reverse)
    type: Any  # as mitmproxy types options: str, int, bool, Sequence[str], Optional[int]
    default: Any
    help: str  # the mitmproxy option's help (``mitmdump --options``)
    flag: str | None = None  # None: no command-line flag (set by a mode, or by --set only)
    flag_help: str | None = None  # the command line's help; argparse's %(default)s works
    choices: tuple[str, ...] | None = None  # from an enum: tuple(TheEnum)
    metavar: str | None = None
    inverted: bool = False  # the switch sets the option False (--no-fsync, --ignore-body...)
    path: bool = False  # names a file or folder, kept under the pytest plugin's session root
    parse: Any = None  # the flag's value type when it is neither str nor a path (int, a port)
    required: bool = False
    ours: bool = True  # False: mitmproxy's own option (listen_host...), never declared by us
    # Why the pytest plugin's session refuses the flag ("": it takes it)
    session_refusal: str = ""
    shown_default: str | None = None  # the docs' words for a default that differs by machine

    @property
    def dest(self) -> str:
        """The parsed argument's name: argparse's, from the flag."""
        if self.flag is None:
            raise ValueError(f"option {self.name} has no command-line flag")
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def is_switch(self) -> bool:
        return self.type is bool

    @property
    def is_repeated(self) -> bool:
        return self.type == Sequence[str]

    @property
    def takes_value(self) -> bool:
        """Whether the flag is followed by a value."""
        return not self.is_switch

    @property
    def value_type(self) -> Any:
        """What parses the flag's value (argparse's ``type``); None: the text as given."""
        if self.path:
            return path_argument
        if self.parse is not None:
            return self.parse
        if self.type in (int, typing.Optional[int]):  # noqa: UP045 - mitmproxy's spelling
            return int
        return None

    @property
    def flag_default(self) -> Any:
        """The parsed argument when the flag is left out: a switch is off, a repeatable flag
        and a path of ours are None (the option keeps its default, which a cassette's help
        names rather than spells out), any other value its option's default."""
        if self.is_switch:
            return False
        if self.is_repeated or (self.path and self.ours):
            return None
        return self.default

    def value(self, parsed: Any) -> Any:
        """The option's value for the flag's parsed argument (None: leave the default)."""
        if self.is_switch:
            return not parsed if self.inverted else bool(parsed)
        if self.is_repeated:
            return list(parsed or [])
        return parsed

    def arguments(self, value: Any) -> tuple[str, ...]:
        """The command-line words that set the option to ``value`` (none for its default)."""
        if self.flag is None:
            raise ValueError(f"option {self.name} has no command-line flag")
        if self.is_switch:
            return (self.flag,) if bool(value) is not self.inverted else ()
        if self.is_repeated:
            return tuple(word for item in value for word in (self.flag, str(item)))
        return () if value is None else (self.flag, str(value))

    def for_command(self, **changes: Any) -> Option:
        """The same option with another command line (``flag_help``, ``required``...): what
        mitmproxy declares must stay identical wherever the option is declared."""
        return replace(self, **changes)


def declared(rows: Iterable[Option]) -> list[Option]:
    """The rows that are mitmproxy options of ours."""
    return [row for row in rows if row.name is not None and row.ours]


def flagged(rows: Iterable[Option]) -> list[Option]:
    """The rows that have a command-line flag, in the table's order."""
    return [row for row in rows if row.flag is not None]


def settings(args: Any, rows: Iterable[Option]) -> dict[str, Any]:
    """The option settings a parsed command line (``args``, argparse's namespace) makes for
    ``rows``: each flagged option of ours, except those left at their default by a flag
    that was not given."""
    found: dict[str, Any] = {}
    for row in flagged(declared(rows)):
        value = row.value(getattr(args, row.dest))
        if value is not None:
            found[row.name] = value  # type: ignore[index]
    return found
