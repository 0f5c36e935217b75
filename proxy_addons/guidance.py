"""The script for ``mitmdump -s`` that runs :class:`Guidance`
(``proxy_addons/addons/guidance.py``).

A script file lists no instance: it names the stages it wants, and the one script chain
(``addons/script_chain.py``) builds each once, in chain order, whatever other scripts load.
"""

from proxy_addons.addons.chain_order import Stage
from proxy_addons.addons.guidance import Guidance
from proxy_addons.addons.script_chain import script_addons

__all__ = ["Guidance", "addons"]

addons = script_addons(__name__, Stage.GUIDANCE)
