"""``python -m proxy_addons.child``: the process the pytest plugin runs (see ``session.py``).

Its start-up is on the critical path of every test run, so it imports less than the CLI:
vcrpy's cassette format modules (``vcr.request``, ``vcr.serialize``, ``vcr.serializers``)
without ``vcr/__init__``, which builds vcrpy's patching machinery and with it imports every
HTTP library installed (aiohttp, tornado, boto3, httpx...): 0.4 s here, for code this process
never runs. Only this entry point does it, in a process of its own; importing the package
anywhere else leaves vcrpy alone.

The process stops itself when its stdin reaches end of file: the plugin keeps the only write
end of that pipe, so a test run that dies (even by kill -9) leaves no proxy behind.
"""

from __future__ import annotations

import importlib.util
import sys


def import_vcr_formats_only() -> None:
    """Register the ``vcr`` package without running its ``__init__``: its submodules (the
    format modules need nothing from the package itself) then import on their own."""
    if "vcr" in sys.modules:
        return
    spec = importlib.util.find_spec("vcr")
    if spec is None or spec.submodule_search_locations is None:
        return  # not installed as a package: let the normal import say so
    sys.modules["vcr"] = importlib.util.module_from_spec(spec)


def main() -> int:
    import_vcr_formats_only()
    from proxy_addons.session import main as session_main

    return session_main()


if __name__ == "__main__":
    sys.exit(main())
