"""The mitmproxy addons, one class each, and the mitmproxy-side helpers they share.

The addons (``gate``, ``control_endpoint``, ``request_checks``, ``etag_tracker``,
``fault_injection``, ``validation_report``, ``batching``, ``replay``, ``missing_cassette``,
``record``, ``emulator``, ``unreachable_upstream``, ``summary``, ``web_tags``) run in the one
order of ``chain_order.py``; ``script_chain.py`` assembles them for ``mitmdump -s``. The
helpers: ``flows`` (what every addon reads from and writes to a flow), ``declared_options``
(an option table declared to mitmproxy), ``gate_options`` (the network policy as addons read
it), ``match_options`` (the match rule as replay and the recorder read it),
``connection_strategy`` (lazy connections), ``playback`` (the replay core), ``interactions``
(an exchange as a cassette block), ``control_rules`` (the control endpoint's rules),
``upstream`` (where the recorder sends), ``rate_limiting`` and ``stalls`` (the fault
injector's budgets, hangs and paced bodies). Modules here build no instances at import: the
script files at the package's top (``proxy_addons/replay.py``...) are the only ones holding
``addons = ...``.

May import mitmproxy, ``proxy_addons.options`` (the option tables), ``proxy_addons.cassette``,
``proxy_addons.graph`` and ``proxy_addons.common``; never convert, cli or testing. Held by
import-linter.
"""
