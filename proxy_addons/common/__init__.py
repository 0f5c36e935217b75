"""The ground floor: what every layer above shares and nothing Graph- or proxy-specific.

Atomic file writes, the one YAML loader, bounded JSON bodies, HTTP content codings, the
usage error (exit 2), the control endpoint's address, who answered a request, and the
``Option`` row every option table is written in (``option_table``).
May import: the standard library and third-party packages other than mitmproxy; nothing of
``proxy_addons``. Held by import-linter (``[tool.importlinter]`` in pyproject.toml).
"""
