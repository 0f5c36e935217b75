"""The layers of ``proxy_addons/`` hold: import-linter's contracts (pyproject.toml) are kept,
and the pure packages they name import in a Python where mitmproxy can't load.

The guide's dependency direction (``common``, ``graph`` and ``cassette`` below the addons) is
what lets them be tested, fuzzed and reused without a proxy. import-linter proves it from the
source; importing every pure module with every ``mitmproxy`` module refused proves it at run
time (an import hidden from the parser, e.g. through ``importlib``, would show here).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from proxy_addons.cassette.cassette import bundled_cassettes

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
    "importlinter"
]["contracts"]
# The packages import-linter forbids mitmproxy (pyproject.toml): the one list of what is pure.
PURE_PACKAGES = next(
    contract["source_modules"]
    for contract in CONTRACTS
    if contract["type"] == "forbidden" and "mitmproxy" in contract["forbidden_modules"]
)


def modules_of(package: str) -> list[str]:
    """``package`` and every module in it, by their files (importing nothing)."""
    folder = ROOT.joinpath(*package.split("."))
    files = sorted(path.stem for path in folder.glob("*.py") if path.stem != "__init__")
    return [package, *(f"{package}.{stem}" for stem in files)]


def test_the_contract_names_the_pure_packages():
    assert PURE_PACKAGES == [
        "proxy_addons.common",
        "proxy_addons.graph",
        "proxy_addons.cassette",
        "proxy_addons.options",
    ]


def test_import_linter_keeps_every_contract():
    """The layers and forbidden imports of pyproject.toml, as CI checks them."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports"))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout


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
    names = [name for package in PURE_PACKAGES for name in modules_of(package)]
    assert len(names) > 20  # every module of the pure packages, found by its file
    assert import_without_mitmproxy(*names) == dict.fromkeys(names)


def test_the_blocker_really_refuses_mitmproxy():
    """Without this, a blocker that blocked nothing would let the test above pass."""
    failures = import_without_mitmproxy("proxy_addons.addons.flows", "mitmproxy.http")
    assert failures == {
        "proxy_addons.addons.flows": "mitmproxy is blocked",
        "mitmproxy.http": "mitmproxy is blocked",
    }


# Runs the command in a fresh interpreter, then prints which of the proxy's modules it loaded.
PROXY_MODULES_LOADED = """
import contextlib, io, json, sys
from proxy_addons import cli
with contextlib.redirect_stdout(io.StringIO()):
    status = cli.main(sys.argv[1:])
watched = ("proxy_addons.cli.serving", "mitmproxy.master", "mitmproxy.addons")
print(json.dumps([status, [name for name in watched if name in sys.modules]]))
"""


def test_commands_that_only_read_cassettes_start_without_the_proxy_machinery():
    """``show`` and ``schema`` are run by hand, often: they pay for no proxy."""
    bundled = str(bundled_cassettes())
    for command in (["schema"], ["show", bundled], ["show", "--json", bundled]):
        assert fresh_python(PROXY_MODULES_LOADED, *command) == [0, []], command


# Imports the pytest plugin (as pytest does at every start), then prints the heavy packages
# it loaded.
PLUGIN_IMPORTS = """
import json, sys
import proxy_addons.pytest_plugin
heavy = ("mitmproxy", "pydantic", "vcr", "proxy_addons.cli.commands")
print(json.dumps(sorted({name for name in sys.modules if name.split(".")[0] in heavy
                         or name in heavy})))
"""


def test_the_pytest_plugin_loads_no_proxy_models_or_vcrpy_at_pytest_start():
    """Every pytest run imports the plugin, most of them never start a proxy: it must not pay
    for mitmproxy, pydantic's models or vcrpy (a package's ``__init__`` that imported its
    modules eagerly would)."""
    assert fresh_python(PLUGIN_IMPORTS) == []
