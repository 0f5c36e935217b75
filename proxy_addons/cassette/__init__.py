"""The vcrpy cassette, without a proxy: its format and loading, writing (append, heal,
rewrite), opening for a record mode (``opening``), matching a request to an interaction, redaction,
record modes, re-recording, what replay does on a miss, and the documented example.

(The cassettes bundled as data are the separate package ``proxy_addons.cassettes``.)
Pure: may import ``proxy_addons.graph``, ``proxy_addons.common`` and third-party packages,
never mitmproxy, and nothing above it (addons, convert, cli, testing). Held by import-linter
(``[tool.importlinter]`` in pyproject.toml).
"""
