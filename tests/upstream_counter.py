"""Test-only: a proxy command that counts (and refuses) every upstream connection it tries.

Run as ``python tests/upstream_counter.py ATTEMPTS MODE ARGS...``: the command
``graph-vcr-proxy MODE ARGS...`` exactly as the CLI assembles it, with one more addon at the
end of its chain. On mitmproxy's ``server_connect`` hook (which runs before every upstream
connection, whichever addon or layer asked for it) it appends one JSON line
``{"via": "server_connect", "host": ..., "port": ..., "refused": ...}`` to the file ATTEMPTS
and refuses the connection unless it goes to loopback, where only a test's own servers
listen: nothing a test does can reach the internet. ``refused`` is the refusal an addon
before it (the gate) already set, when one did: mitmproxy will not dial those, so a test
holds the attempts without one (:func:`leaving`) to zero. ``UnreachableUpstream`` opens
its own trial connection before a forward; those trials are counted (``"via": "probe"``) and
refused the same way.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from mitmproxy import ctx
from mitmproxy.proxy.server_hooks import ServerConnectionHookData

from proxy_addons import cli, serving
from proxy_addons.traffic import is_loopback
from proxy_addons.unreachable_upstream import UnreachableUpstream

REFUSED = "refused by the test's upstream counter"


def attempts(path: Path) -> list[dict[str, Any]]:
    """Every attempt the counter wrote to ``path`` so far, in order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def leaving(path: Path) -> list[dict[str, Any]]:
    """The attempts to anywhere but loopback that nothing of ours had refused: the
    connections the proxy would really have opened, which a sealed proxy must never make."""
    return [a for a in attempts(path) if not is_loopback(a["host"]) and not a["refused"]]


class UpstreamCounter:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _note(self, via: str, address: tuple[str, int] | None, refused: str | None) -> bool:
        """Write the attempt down; True when it must be refused."""
        host, port = address if address else ("", 0)
        line = {"via": via, "host": host, "port": port, "refused": refused}
        with self.path.open("a") as out:
            out.write(json.dumps(line) + "\n")
        return not (host and is_loopback(host))

    def server_connect(self, data: ServerConnectionHookData) -> None:
        if self._note("server_connect", data.server.address, data.server.error):
            data.server.error = data.server.error or REFUSED

    def running(self) -> None:
        for addon in ctx.master.addons.chain:
            if isinstance(addon, UnreachableUpstream):
                addon.try_connect = self._probe(addon.try_connect)

    def _probe(self, connect: Any) -> Any:
        async def counted(address: tuple[str, int], timeout: float) -> str | None:
            if self._note("probe", address, None):
                return REFUSED
            return await connect(address, timeout)

        return counted


def main(argv: list[str]) -> int:
    path, *command = argv
    args = cli.build_parser().parse_args(command)
    cli.configure_logging(args.verbose)
    addons, settings = serving.assemble(args)
    return asyncio.run(serving.serve([*addons, UpstreamCounter(Path(path))], settings, args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
