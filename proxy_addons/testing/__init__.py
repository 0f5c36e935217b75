"""The pytest side: the plugin, its settings (``vcr_settings``), its client of the proxy
(``session_client``), the journal of answered calls, the socket guard, and the child process
the plugin runs (``child``, serving ``session``).

The top layer: may import every package below it (cli, convert, addons, cassette, graph,
common). The plugin module itself imports no mitmproxy, so a test run pays nothing for it
until a test asks. Held by import-linter.
"""
