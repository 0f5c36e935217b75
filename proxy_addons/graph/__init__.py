"""What Microsoft Graph does, written down without a proxy: the routes and their models,
validation, Graph's error and reply builders, the request checks Graph makes, ETags,
permissions, the emulator's state, the traffic rules (which host is Graph) and the fault
specs (how Graph itself breaks).

Pure: may import ``proxy_addons.common`` and third-party packages, never mitmproxy, and
nothing above it (cassette, addons, convert, cli, testing). Held by import-linter
(``[tool.importlinter]`` in pyproject.toml).
"""
