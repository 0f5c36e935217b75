"""``python -m proxy_addons.testing.child``: the process the pytest plugin runs (see
``session.py``).

It takes the listen arguments of every proxy and ``--session-root DIR`` (required): the only
folder a session's cassettes, state files and other paths may be in.

Its start-up is on the critical path of every test run, so it imports only what it runs.
Two packages import far more in their ``__init__`` than this process uses: ``vcr`` builds
vcrpy's patching machinery and with it imports every HTTP library installed (aiohttp,
tornado, boto3, httpx...: 0.4 s here) while we use only its cassette format modules
(``vcr.request``, ``vcr.serialize``, ``vcr.serializers``); ``mitmproxy.addons`` imports all of
mitmproxy's addons (the onboarding web app with flask, LDAP proxy auth, flow filters... 0.3 s)
while the session proxy loads ten of them (``session.mitmproxy_base``). Both are registered
here without running their ``__init__``; their submodules then import as usual. Only this
entry point does it, in a process of its own; importing the package anywhere else changes
nothing.

The process stops itself when its stdin reaches end of file: the plugin keeps the only write
end of that pipe, so a test run that dies (even by kill -9) leaves no proxy behind.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import logging
import os
import sys


def skip_package_init(name: str) -> None:
    """Register package ``name`` without running its ``__init__``: its submodules (which
    need nothing from the package itself) then import on their own."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        return  # not installed as a package: let the normal import say so
    sys.modules[name] = importlib.util.module_from_spec(spec)


def main() -> int:
    # Imports and start-up make hundreds of thousands of objects that all live until the
    # proxy stops: the cyclic collector would scan them again and again for nothing (a tenth
    # of this process's start-up here). ``serving.serve`` turns it back on once everything
    # is built, and freezes what was built.
    gc.disable()
    skip_package_init("vcr")
    skip_package_init("mitmproxy.addons")
    from proxy_addons.testing.session import main as session_main

    return session_main()


def exit_now(code: int) -> None:
    """Leave without the interpreter's teardown of every module (0.4 s here, which the test
    run would wait for): by now the addons' ``done`` hooks have closed every cassette and
    state file, so all there is left to do is flush the logs and standard streams."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
