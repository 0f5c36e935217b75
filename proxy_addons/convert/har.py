"""HAR 1.2 files (what browsers' dev tools and mitmproxy save) to cassettes and back.

Both directions are mitmproxy's own code: each entry becomes a flow through
``mitmproxy.io.har.request_to_flow`` (the function ``mitmproxy.io.FlowReader`` applies to a
HAR file), and flows become HAR through the ``savehar`` addon's ``make_har`` (what
mitmproxy's ``save.har`` command and ``hardump`` option write). The entries are read one by
one here rather than through ``FlowReader``, whose HAR branch reports any problem as "Unable
to read HAR file" without saying which entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mitmproxy import exceptions
from mitmproxy.addons.savehar import SaveHar
from mitmproxy.io import har as mitmproxy_har

from proxy_addons.cassette import cassette
from proxy_addons.cassette.redaction import Placeholders
from proxy_addons.convert.conversions import (
    ConversionError,
    ImportReport,
    ImportSettings,
    Source,
    check_output,
    import_flows,
    interaction_flow,
    read_json,
    read_text,
    write_output,
)


def har_entries(path: Path, document: Any) -> list[Any]:
    log = document.get("log") if isinstance(document, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise ConversionError(path, "not a HAR file: no 'log.entries' list")
    return entries


def read_har(path: Path, text: str) -> Iterator[Source]:
    """Every entry of a HAR file as a flow, as mitmproxy reads it."""
    for n, entry in enumerate(har_entries(path, read_json(path, text))):
        try:
            flow = mitmproxy_har.request_to_flow(entry)
        except KeyError as exc:
            raise ConversionError(path, f"entry {n}: not a HAR entry: {exc} is missing") from None
        except (
            ValueError,
            TypeError,
            AttributeError,
            IndexError,
            exceptions.MitmproxyException,
        ) as exc:
            raise ConversionError(path, f"entry {n}: not a HAR entry: {exc}") from None
        yield Source(f"entry {n}", flow)


def har_document(interactions: list[cassette.Interaction], creator_comment: str) -> bytes:
    """The interactions as a HAR 1.2 file, written by mitmproxy's HAR exporter."""
    document = SaveHar().make_har([interaction_flow(i) for i in interactions])
    document["log"]["creator"]["comment"] = creator_comment
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


def import_har(path: Path, settings: ImportSettings) -> ImportReport:
    """``import har FILE -o CASSETTE``."""
    check_output(settings.output, settings.force, [path])
    text = read_text(path)
    return import_flows(path, read_har(path, text), settings, Placeholders.continuing(text))


def export_har(path: Path, output: Path, force: bool) -> int:
    """``export har CASSETTE -o FILE``: the number of entries written."""
    check_output(output, force, cassette.cassette_files(path))
    interactions = cassette.load(path)
    write_output(output, har_document(interactions, f"graph-vcr-proxy export of {path}"), force)
    return len(interactions)
