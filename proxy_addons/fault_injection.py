"""The script for ``mitmdump -s`` that runs :class:`FaultInjector`
(``proxy_addons/addons/fault_injection.py``).

A script file lists no instance: it names the stages it wants, and the one script chain
(``addons/script_chain.py``) builds each once, in chain order, whatever other scripts load.
"""

from proxy_addons.addons.chain_order import Stage
from proxy_addons.addons.fault_injection import FaultInjector
from proxy_addons.addons.script_chain import script_addons

__all__ = ["FaultInjector", "addons"]

# The rules, their control endpoint, and the ETag tracker their staleness condition reads.
addons = script_addons(__name__, Stage.CONTROL, Stage.ETAGS, Stage.FAULTS)
