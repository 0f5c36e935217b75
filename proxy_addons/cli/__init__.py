"""The ``graph-vcr-proxy`` command line: the parser and its commands (``commands.py``), how a
mode's addons are assembled and served (``serving.py``), the web UI, the demo, ``show``,
``schema``, ``validate``, and the launcher that starts the command as a child process.

``python -m proxy_addons.cli`` and the console script (``proxy_addons.cli:main``) both run
:func:`main`. This ``__init__`` imports only the parser module, so a command that only reads
cassettes starts without the proxy machinery.

May import every package below it (convert, addons, cassette, graph, common); never testing.
Held by import-linter.
"""

from proxy_addons.cli.commands import main

__all__ = ["main"]
