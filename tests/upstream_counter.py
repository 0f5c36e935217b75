"""Test-only: a proxy command that counts (and refuses) every upstream connection it tries.

Run as ``python tests/upstream_counter.py ATTEMPTS [--map HOST=PORT ...] MODE ARGS...``
(or start it with :func:`start_counted`): the command
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

``--map HOST=PORT`` is a hosts file for the proxy alone: a connection to HOST (any port) lands
on ``127.0.0.1:PORT``, where a test's stand-in for Graph listens. The request still goes to
HOST as far as the proxy and its addons know, which is what a test of forwarding needs.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mitmproxy import ctx
from mitmproxy.proxy.server_hooks import ServerConnectionHookData

from proxy_addons.addons.unreachable_upstream import UnreachableUpstream
from proxy_addons.cli import commands as cli
from proxy_addons.cli import serving
from proxy_addons.cli.launcher import RunningProxy, listen_arguments, start
from proxy_addons.graph.traffic import canonical_host, is_loopback

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
    def __init__(self, path: Path, hosts: Mapping[str, int] | None = None) -> None:
        self.path = path
        self.hosts = dict(hosts or {})  # host -> loopback port its connections land on

    def _mapped(self, address: tuple[str, int]) -> tuple[str, int]:
        port = self.hosts.get(canonical_host(address[0]))
        return ("127.0.0.1", port) if port is not None else address

    def _note(self, via: str, address: tuple[str, int] | None, refused: str | None) -> bool:
        """Write the attempt down; True when it must be refused."""
        host, port = address if address else ("", 0)
        line = {"via": via, "host": host, "port": port, "refused": refused}
        with self.path.open("a") as out:
            out.write(json.dumps(line) + "\n")
        return not (host and is_loopback(host))

    def server_connect(self, data: ServerConnectionHookData) -> None:
        if data.server.address and not data.server.error:
            data.server.address = self._mapped(data.server.address)
        if self._note("server_connect", data.server.address, data.server.error):
            data.server.error = data.server.error or REFUSED

    def running(self) -> None:
        for addon in ctx.master.addons.chain:
            if isinstance(addon, UnreachableUpstream):
                addon.try_connect = self._probe(addon.try_connect)

    def _probe(self, connect: Any) -> Any:
        async def counted(address: tuple[str, int], timeout: float) -> str | None:
            address = self._mapped(address)
            if self._note("probe", address, None):
                return REFUSED
            return await connect(address, timeout)

        return counted


@dataclass
class Counted:
    """A proxy command with the upstream counter in its chain."""

    proxy: RunningProxy
    path: Path

    def leaving(self) -> list[dict[str, Any]]:
        return leaving(self.path)


def start_counted(
    stack: ExitStack,
    confdir: Path,
    folder: Path,
    mode: str,
    *args: str,
    hosts: Mapping[str, int] | None = None,
) -> Counted:
    """``graph-vcr-proxy MODE ARGS...`` on a free loopback port with the counter (and the
    ``hosts`` mapping) in its chain; stopped when ``stack`` closes."""
    path = folder / f"attempts-{mode}-{len(list(folder.iterdir()))}.jsonl"
    mapped = [f"--map={host}={port}" for host, port in (hosts or {}).items()]
    argv = [sys.executable, __file__, str(path), *mapped, mode, *listen_arguments(confdir), *args]
    proxy = start(argv)
    stack.callback(proxy.stop)
    return Counted(proxy, path)


def main(argv: list[str]) -> int:
    path, *command = argv
    hosts: dict[str, int] = {}
    while command and command[0].startswith("--map="):
        host, _, port = command.pop(0).removeprefix("--map=").rpartition("=")
        hosts[canonical_host(host)] = int(port)
    args = cli.build_parser().parse_args(command)
    cli.configure_logging(args.verbose)
    addons, settings = serving.assemble(args)
    counter = UpstreamCounter(Path(path), hosts)
    return asyncio.run(serving.serve([*addons, counter], settings, args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
