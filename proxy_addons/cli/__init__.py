"""The ``graph-vcr-proxy`` command line: the parser and its commands (``commands.py``), how a
mode's addons are assembled and served (``serving.py``), the web UI, the demo, ``show``,
``schema``, ``validate``, and the launcher that starts the command as a child process.

``python -m proxy_addons.cli`` and the console script (``proxy_addons.cli:main``) both run
``commands.main``. This ``__init__`` imports it on first use only: the pytest plugin imports
the launcher from here and must not pay for the parser, pydantic's models or mitmproxy.

May import every package below it (convert, addons, options, cassette, graph, common);
never testing. Held by import-linter.
"""

from typing import Any

__all__ = ["main"]


def __getattr__(name: str) -> Any:
    if name == "main":
        from proxy_addons.cli.commands import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
