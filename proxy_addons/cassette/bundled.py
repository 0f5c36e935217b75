"""Where the cassettes shipped with graph-vcr-proxy are: replay's default cassette. Its own
module, so the option tables name that default without loading the cassette format."""

from __future__ import annotations

from pathlib import Path


def bundled_cassettes() -> Path:
    """The cassettes shipped with the package (installed) or beside it (source checkout)."""
    package = Path(__file__).resolve().parent.parent  # proxy_addons/
    installed, checkout = package / "cassettes", package.parent / "cassettes"
    return installed if installed.is_dir() else checkout
