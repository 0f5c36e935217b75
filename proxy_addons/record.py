"""The script for ``mitmdump -s`` that runs :class:`Record`
(``proxy_addons/addons/record.py``).

A script file lists no instance: it names the stages it wants, and the one script chain
(``addons/script_chain.py``) builds each once, in chain order, whatever other scripts load.
"""

from proxy_addons.addons.chain_order import Stage
from proxy_addons.addons.record import Record
from proxy_addons.addons.script_chain import script_addons

__all__ = ["Record", "addons"]

# Record, with validation (graph_validate, default warn) and the envelope for what it forwards.
addons = script_addons(__name__, Stage.VALIDATION, Stage.RECORD, Stage.UNREACHABLE)
