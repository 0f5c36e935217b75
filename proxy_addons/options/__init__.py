"""Every option of ours, written once: one table of ``Option`` rows
(``proxy_addons/common/option_table.py``) per mode (``replay``, ``record``, ``simulate``),
one for what every proxy mode shares (``proxy``: the network policy, faults, the summary),
one for where the proxy listens (``listen``), the rows replay and record share
(``cassette``), and validation's (``validation``: its option, and each command's
``--validate``). ``commands`` puts them in each command's order.

Each addon declares its table's options from these rows, the command line builds its
parser from them, serving and the pytest plugin make settings and arguments from them, and
the docs' option reference is generated from them (docs/design.md, "Options", says how to
add one). Pure: may import ``proxy_addons.cassette``, ``graph`` and ``common``; never
mitmproxy, nor anything above (addons, convert, cli, testing). Held by import-linter.
"""
