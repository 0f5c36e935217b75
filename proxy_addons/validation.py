"""The script for ``mitmdump -s`` that runs :class:`Validation`
(``proxy_addons/addons/validation_report.py``): ``record.py`` brings it already; give it beside
``replay.py`` or ``emulator.py`` to validate their requests too (``--set graph_validate=...``).

A script file lists no instance: it names the stages it wants, and the one script chain
(``addons/script_chain.py``) builds each once, in chain order, whatever other scripts load.
"""

from proxy_addons.addons.chain_order import Stage
from proxy_addons.addons.script_chain import script_addons
from proxy_addons.addons.validation_report import Validation

__all__ = ["Validation", "addons"]

addons = script_addons(__name__, Stage.VALIDATION)
