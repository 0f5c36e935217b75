"""mitmproxy flow files (``mitmdump -w``, mitmweb's "Save") to cassettes.

Read with mitmproxy's own ``io.FlowReader``, which also migrates files written by older
mitmproxy versions to the running one's flow format.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mitmproxy import exceptions
from mitmproxy import io as mitmproxy_io

from proxy_addons.cassette.redaction import Placeholders
from proxy_addons.convert.conversions import (
    ConversionError,
    ImportReport,
    ImportSettings,
    Source,
    check_output,
    import_flows,
)

# What a damaged flow file makes mitmproxy's state migration raise besides FlowReadException.
_DAMAGED = (KeyError, ValueError, TypeError, AttributeError, IndexError)


def read_flows(path: Path) -> Iterator[Source]:
    """Every flow in the file, numbered from 0 in file order."""
    try:
        with path.open("rb") as file:
            n = 0
            try:
                for flow in mitmproxy_io.FlowReader(file).stream():
                    yield Source(f"flow {n}", flow)
                    n += 1
            except (exceptions.FlowReadException, *_DAMAGED) as exc:
                raise ConversionError(
                    path, f"flow {n}: not a readable mitmproxy flow: {exc}"
                ) from None
    except OSError as exc:
        raise ConversionError(path, exc.strerror or str(exc)) from None


def import_flow_file(path: Path, settings: ImportSettings) -> ImportReport:
    """``import flows FILE -o CASSETTE``."""
    check_output(settings.output, settings.force, [path])
    try:
        # Flow files are binary (tnetstring); placeholders in them are plain ASCII.
        known = path.read_bytes().decode("latin-1")
    except OSError as exc:
        raise ConversionError(path, exc.strerror or str(exc)) from None
    return import_flows(path, read_flows(path), settings, Placeholders.continuing(known))
