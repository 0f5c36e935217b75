"""The script for ``mitmdump -s`` that runs :class:`Replay`
(``proxy_addons/addons/replay.py``).

A script file lists no instance: it names the stages it wants, and the one script chain
(``addons/script_chain.py``) builds each once, in chain order, whatever other scripts load.
"""

from proxy_addons.addons.chain_order import Stage
from proxy_addons.addons.replay import Replay
from proxy_addons.addons.script_chain import script_addons

__all__ = ["Replay", "addons"]

# Replay, with the envelope for --set graph_on_miss=forward.
addons = script_addons(__name__, Stage.REPLAY, Stage.SEAL, Stage.UNREACHABLE)
