"""Where the recorder sends intercepted Graph calls instead of the real host (``--upstream``).

The cassette keeps the URL the client sent; only the request that goes out is pointed here.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlsplit

from mitmproxy import http


class Upstream(NamedTuple):
    """A base URL: scheme, host, port and a path prefix (no trailing slash)."""

    scheme: str
    host: str
    port: int
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Upstream:
        """The upstream of ``url``; ValueError, with the message a user sees, if it is none."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"graph_upstream must be an http:// or https:// URL, not {url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"graph_upstream must be a base URL without query, not {url!r}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ValueError(f"graph_upstream has an invalid port: {url!r}") from None
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    def redirect(self, request: http.Request) -> None:
        """Point ``request`` here; setting the host also rewrites the Host header."""
        request.scheme = self.scheme
        request.port = self.port
        request.host = self.host
        request.path = self.prefix + request.path
