"""The pure modules know nothing of mitmproxy: each imports in a Python where it can't load.

The guide's dependency direction (models, routes and the other pure modules below the addons)
is what lets them be tested, fuzzed and reused without a proxy; this proves it by importing
them with every ``mitmproxy`` module refused.
"""

from __future__ import annotations

import json
import subprocess
import sys

PURE_MODULES = (
    "answered_by",
    "appointments",
    "cassette",
    "content_encoding",
    "faults",
    "files",
    "graph",
    "matching",
    "models",
    "record_mode",
    "redaction",
    "request_checks",
    "routes",
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


def import_without_mitmproxy(*modules: str) -> dict[str, str | None]:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_MITMPROXY, *modules],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


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
