"""The pure modules know nothing of mitmproxy: each imports in a Python where it can't load.

The guide's dependency direction (models, routes and the other pure modules below the addons)
is what lets them be tested, fuzzed and reused without a proxy; this proves it by importing
them with every ``mitmproxy`` module refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from proxy_addons.cassette import bundled_cassettes

PURE_MODULES = (
    "answered_by",
    "batch",
    "appointments",
    "call_assertions",
    "cassette",
    "chain_order",
    "content_encoding",
    "faults",
    "files",
    "graph",
    "matching",
    "models",
    "on_miss",
    "record_mode",
    "redaction",
    "request_checks",
    "routes",
    "tokens",
    "traffic",
    "usage",
    "validation",
    "yaml_loading",
)

# Run in a fresh interpreter: refuses mitmproxy (and mitmproxy_rs...), then imports each module
# named on the command line and prints {module: error or null} as JSON.
WITHOUT_MITMPROXY = """
import importlib, importlib.abc, json, sys

class NoMitmproxy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0].startswith("mitmproxy"):
            raise ImportError(f"{name} is blocked")
        return None

sys.meta_path.insert(0, NoMitmproxy())
results = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        results[name] = None
    except ImportError as exc:
        results[name] = str(exc)
print(json.dumps(results))
"""


def fresh_python(code: str, *args: str) -> Any:
    """What ``code``, run in a fresh interpreter with ``args``, prints as JSON."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def import_without_mitmproxy(*modules: str) -> dict[str, str | None]:
    return fresh_python(WITHOUT_MITMPROXY, *modules)


def test_the_pure_modules_import_where_mitmproxy_cannot():
    names = [f"proxy_addons.{module}" for module in PURE_MODULES]
    assert import_without_mitmproxy(*names) == dict.fromkeys(names)


def test_the_blocker_really_refuses_mitmproxy():
    """Without this, a blocker that blocked nothing would let the test above pass."""
    failures = import_without_mitmproxy("proxy_addons.flows", "mitmproxy.http")
    assert failures == {
        "proxy_addons.flows": "mitmproxy is blocked",
        "mitmproxy.http": "mitmproxy is blocked",
    }


# Runs the command in a fresh interpreter, then prints which of the proxy's modules it loaded.
PROXY_MODULES_LOADED = """
import contextlib, io, json, sys
from proxy_addons import cli
with contextlib.redirect_stdout(io.StringIO()):
    status = cli.main(sys.argv[1:])
watched = ("proxy_addons.serving", "mitmproxy.master", "mitmproxy.addons")
print(json.dumps([status, [name for name in watched if name in sys.modules]]))
"""


def test_commands_that_only_read_cassettes_start_without_the_proxy_machinery():
    """``show`` and ``schema`` are run by hand, often: they pay for no proxy."""
    bundled = str(bundled_cassettes())
    for command in (["schema"], ["show", bundled], ["show", "--json", bundled]):
        assert fresh_python(PROXY_MODULES_LOADED, *command) == [0, []], command
