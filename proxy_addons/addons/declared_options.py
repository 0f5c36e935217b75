"""An option table's rows (``proxy_addons/options/``) as mitmproxy options: declared in an
addon's ``load``, held to their choices in its ``configure``.

mitmproxy accepts a second declaration of an option when its signature is identical, so each
addon that needs ``graph_cassette`` declares it from the same row and works alone in
``mitmdump -s`` as well as beside the others.
"""

from __future__ import annotations

from collections.abc import Iterable

from mitmproxy import ctx, exceptions
from mitmproxy.addonmanager import Loader

from proxy_addons.common.option_table import Option, declared


def declare(loader: Loader, rows: Iterable[Option]) -> None:
    """Declare every mitmproxy option of ours among ``rows``."""
    for row in declared(rows):
        assert row.name is not None
        loader.add_option(row.name, row.type, row.default, row.help, choices=row.choices)


def check_choices(updated: set[str], rows: Iterable[Option]) -> None:
    """Refuse a value outside a row's choices: mitmproxy lists them in help but doesn't
    enforce them."""
    for row in declared(rows):
        if row.choices is None or row.name not in updated:
            continue
        value = getattr(ctx.options, row.name)
        if value not in row.choices:
            raise exceptions.OptionsError(
                f"{row.name} must be one of {', '.join(row.choices)}, not {value!r}"
            )
