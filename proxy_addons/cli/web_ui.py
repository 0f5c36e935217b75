"""The proxy inside mitmweb's master: the web UI on loopback, and its URL as it must be typed.

``graph-vcr-proxy MODE --web`` runs the same addons in ``mitmproxy.tools.web.master.WebMaster``
instead of the plain master. What differs between mitmproxy majors is handled here: 11.0
serves the UI to anyone who can reach the port, 12 requires a token, generated at each start
(``?token=`` in the URL, then a cookie); the URL printed carries it when there is one.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from mitmproxy import options

from proxy_addons.options.listen import DEFAULT_WEB_PORT

if TYPE_CHECKING:  # imported when used: tornado and the UI cost every other command 0.1 s
    from mitmproxy.tools.web.master import WebMaster

WEB_HOST = "127.0.0.1"  # loopback only, whatever --listen-host says: the UI can replay flows
DEFAULT_PORT = DEFAULT_WEB_PORT  # the --web-port row's (options/listen.py)
URL_LINE = "web UI on "  # the third start-up line, after the proxy's and the CA's
COMMENT_COLUMN = "comment"  # mitmweb hides flow comments unless this column is shown


def free_port(host: str = WEB_HOST) -> int:
    """A port free on ``host`` right now. mitmweb can't report the port it bound when asked
    for port 0, so a free one is picked first (a race only with another process binding the
    same port in between, which then fails cleanly with exit status 2)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def web_master(opts: options.Options, *, port: int, verbose: bool) -> WebMaster:
    """mitmweb's master with its default addons, serving the UI on ``WEB_HOST:port``.

    Two of mitmweb's defaults are turned off: opening a browser at start (on a developer's
    machine or CI it would launch one), and its startup error check, which exits with status
    1 on any logged error before our own start-up report can say what went wrong (a busy
    proxy port is exit status 2 with one line, with or without ``--web``).
    """
    from mitmproxy.tools.web.master import WebMaster

    master = WebMaster(opts, with_termlog=verbose)
    errorcheck: Any = master.addons.get("errorcheck")
    if errorcheck is not None:
        master.addons.remove(errorcheck)
        errorcheck.finish()
    columns = list(opts.web_columns)
    if COMMENT_COLUMN not in columns:
        columns.append(COMMENT_COLUMN)
    opts.update(
        web_host=WEB_HOST,
        web_port=port or free_port(),
        web_open_browser=False,
        web_columns=columns,
    )
    return master


def url(master: WebMaster) -> str:
    """The UI's URL, with the access token where this mitmproxy requires one (12.x)."""
    with_token = getattr(master, "web_url", None)  # mitmproxy 12: carries ?token=...
    if with_token:
        return str(with_token)
    return f"http://{master.options.web_host}:{master.options.web_port}/"
