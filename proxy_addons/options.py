"""Options that more than one addon reads, declared by one function each.

mitmproxy accepts a second declaration of an option when its signature is identical, so each
addon that needs ``graph_cassette`` declares it through the same function and works alone in
``mitmdump -s`` as well as beside the others.
"""

from __future__ import annotations

from mitmproxy.addonmanager import Loader

from proxy_addons.cassette import bundled_cassettes


def declare_cassette(loader: Loader) -> None:
    loader.add_option(
        "graph_cassette",
        str,
        str(bundled_cassettes()),
        "Cassette file, or folder of cassettes, in vcrpy's YAML format.",
    )
