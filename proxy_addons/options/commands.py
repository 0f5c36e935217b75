"""Each proxy command's options, in the order its ``--help`` lists them: where it listens,
what every mode shares, then the mode's own."""

from __future__ import annotations

from proxy_addons.common.option_table import Option
from proxy_addons.options.listen import LISTEN
from proxy_addons.options.proxy import EVERY_MODE, FAULTS, NETWORK_POLICY, SUMMARY
from proxy_addons.options.record import RECORD
from proxy_addons.options.replay import REPLAY
from proxy_addons.options.simulate import SIMULATE
from proxy_addons.options.validation import VALIDATE, VALIDATE_ASKED

# Each mode's rows, and its --validate: record's sets graph_validate (default warn); replay's
# and simulate's default to off, which leaves validation out of their chain (validation.py).
MODE_TABLES: dict[str, tuple[Option, ...]] = {
    "replay": (*REPLAY, VALIDATE_ASKED),
    "record": (*RECORD, VALIDATE),
    "simulate": (*SIMULATE, VALIDATE_ASKED),
}


def command_options(mode: str) -> tuple[Option, ...]:
    """Every row of ``graph-vcr-proxy MODE``, in its ``--help``'s order."""
    return (*LISTEN, *EVERY_MODE, *MODE_TABLES[mode])


# Every table that declares options of ours, by the name the docs' option reference gives it
# (``<!-- options: NAME -->`` in docs/options.md, filled by docs/hooks/command_help.py).
TABLES: dict[str, tuple[Option, ...]] = {
    **MODE_TABLES,
    "network-policy": NETWORK_POLICY,
    "faults": FAULTS,
    "summary": SUMMARY,
}
