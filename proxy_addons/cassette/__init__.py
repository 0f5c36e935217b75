"""The vcrpy cassette, without a proxy: its format and loading, writing (append, heal,
rewrite), opening for a record mode (``opening``), matching a request to an interaction, redaction,
record modes, re-recording, what replay does on a miss, and the documented example.

(The cassettes bundled as data are the separate package ``proxy_addons.cassettes``.)
Pure: may import ``proxy_addons.graph``, ``proxy_addons.common`` and third-party packages,
never mitmproxy, and nothing above it (addons, convert, cli, testing). Held by import-linter
(``[tool.importlinter]`` in pyproject.toml).
"""

from typing import Any


def __getattr__(name: str) -> Any:
    """``proxy_addons.cassette.bundled_cassettes()``, the address the README gives the bundled
    cassettes by, kept; imported on first use, so that importing a module of this package
    (the pytest plugin does) does not load the cassette format and vcrpy with it."""
    if name == "bundled_cassettes":
        from proxy_addons.cassette.bundled import bundled_cassettes

        return bundled_cassettes
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
