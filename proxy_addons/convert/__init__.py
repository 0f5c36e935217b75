"""Imports and exports between cassettes and other tools' files: HAR, mitmproxy flow files
and Dev Proxy mocks, all through ``conversions.py`` (each read as mitmproxy flows, stored as
the recorder would store them).

May import mitmproxy, ``proxy_addons.addons`` (its flow helpers), ``options``, ``cassette``,
``graph`` and ``common``; never cli or testing. Held by import-linter.
"""
