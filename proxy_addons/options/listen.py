"""Where the proxy listens and keeps its CA, how loud it is, and its web UI: fixed for the
process's lifetime, so the pytest plugin's session refuses them (a test that passes one of
``PROCESS`` in its ``args`` gets a proxy of its own)."""

from __future__ import annotations

import typing

from proxy_addons.common.option_table import Option

PROCESS_REFUSAL = (
    "set when the proxy starts, not per session (in a test's args: a proxy of its own)"
)
WEB_REFUSAL = "a web UI would close with the test; run graph-vcr-proxy MODE --web by hand"
DEFAULT_WEB_PORT = 8081  # mitmweb's own default, beside the proxy's 8080


def port(text: str) -> int:
    """A port number, 0..65535 (0: a free one), or argparse's one-line refusal."""
    import argparse  # only when a command line is parsed

    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {number}")
    return number


PROCESS = (
    Option(
        "listen_host",
        str,
        "127.0.0.1",
        "",
        flag="--listen-host",
        flag_help="default: 127.0.0.1",
        ours=False,
        session_refusal=PROCESS_REFUSAL,
    ),
    Option(
        "listen_port",
        int,
        8080,
        "",
        flag="--listen-port",
        flag_help="0 takes a free port",
        parse=port,
        ours=False,
        session_refusal=PROCESS_REFUSAL,
    ),
    Option(
        "confdir",
        str,
        "~/.mitmproxy",
        "",
        flag="--confdir",
        flag_help="where mitmproxy keeps its CA (default: %(default)s)",
        path=True,
        ours=False,
        session_refusal=PROCESS_REFUSAL,
    ),
    Option(
        None,
        bool,
        False,
        "",
        flag="--verbose",
        flag_help="show mitmproxy's own log",
        session_refusal=PROCESS_REFUSAL,
    ),
)
WEB = (
    Option(
        None,
        bool,
        False,
        "",
        flag="--web",
        flag_help="run inside mitmproxy's web UI (on 127.0.0.1 only), each Graph flow tagged "
        "with who answered it; its URL is the third line printed",
        session_refusal=WEB_REFUSAL,
    ),
    Option(
        None,
        typing.Optional[int],  # noqa: UP045 - as the proxy options spell it
        None,
        "",
        flag="--web-port",
        flag_help=f"the web UI's port (default: {DEFAULT_WEB_PORT}; 0 takes a free port)",
        metavar="P",
        parse=port,
        session_refusal=WEB_REFUSAL,
    ),
)
LISTEN = (*PROCESS, *WEB)
