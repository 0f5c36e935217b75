"""graph-vcr-proxy: mitmproxy addons that record, replay, emulate and break Graph calls.

The packages are the layers, each importing only the ones below it (import-linter holds
this: ``[tool.importlinter]`` in pyproject.toml)::

    testing/   the pytest plugin, its settings, its client, the journal, the child process
    cli/       the graph-vcr-proxy command: parser, serving, demo, show/schema/validate
    convert/   HAR, mitmproxy flow files, Dev Proxy mocks <-> cassettes
    addons/    the mitmproxy addons (one class each), their chain order, their flow helpers
    cassette/  the vcrpy cassette: format, writing, matching, redaction, record modes  (pure)
    graph/     what Graph does: routes, models, validation, replies, checks, emulator state (pure)
    common/    files, YAML, JSON bodies, content codings, usage errors  (pure)

The files at this top level are addresses kept for users: the ``mitmdump -s`` scripts
(``replay.py``, ``record.py``...; the only modules holding ``addons = ...``), the ``pytest11``
entry point (``pytest_plugin.py``) and ``python -m proxy_addons.child``. (``cassettes/`` is the
bundled cassettes, data.)
"""

__version__ = "0.1.0"
