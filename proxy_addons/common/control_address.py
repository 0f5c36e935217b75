"""Where the control endpoint lives: shared by the proxy and its clients, no mitmproxy here.

The endpoint is served by the proxy itself, for a host name that never resolves, so a client
reaches it by sending a proxy request (``curl --proxy ... http://graph-vcr-proxy.control/...``).
"""

from __future__ import annotations

HOST = "graph-vcr-proxy.control"
FAULTS_PATH = "/faults"
SESSION_PATH = "/session"  # the pytest plugin's proxy only (session.py)
CALLS_PATH = "/calls"  # the pytest plugin's proxy only
PLAYED_PATH = "/played"  # the pytest plugin's proxy only: what the cassette has left
