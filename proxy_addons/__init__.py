"""graph-vcr-proxy: mitmproxy addons that record, replay, emulate and break Graph calls."""

__version__ = "0.1.0"
