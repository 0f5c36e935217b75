"""Validation's option (the Validation addon's, ``addons/validation_report.py``) and the
``--validate`` flag of each proxy command.

One mitmproxy option, ``graph_validate``, default ``warn`` (the recorder's, and any
``mitmdump -s`` chain that loads the addon). ``record`` always carries the addon, so its flag
is the option's own row. ``replay`` and ``simulate`` carry it only when asked: their flag
defaults to ``off``, sets no option by itself (``serving.validation_step`` adds the addon and
its setting when it is not off), so their chain has no validation step unless asked.
"""

from __future__ import annotations

from proxy_addons.common.option_table import Option
from proxy_addons.graph.validate_mode import ValidateMode

VALIDATE = Option(
    "graph_validate",
    str,
    str(ValidateMode.WARN),
    "Check requests and responses against the models: warn logs each problem, "
    "enforce also answers an invalid request with Graph's 400 without sending it.",
    flag="--validate",
    flag_help="warn: log each problem; enforce: also refuse invalid requests with Graph's 400 "
    "(default: %(default)s)",
    choices=tuple(ValidateMode),
)
# replay's and simulate's --validate: off leaves validation out of the chain.
VALIDATE_ASKED = Option(
    None,
    str,
    str(ValidateMode.OFF),
    "",
    flag="--validate",
    flag_help="warn: log each problem a request (or an upstream answer) has against the "
    "models; enforce: also refuse an invalid request with Graph's 400 (default: %(default)s: "
    "no validation step in the chain)",
    choices=tuple(ValidateMode),
)

VALIDATION = (VALIDATE,)
