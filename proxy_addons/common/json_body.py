"""A body read as JSON once, for everything that needs its document.

Graph's request checks refuse a body that is not one UTF-8 JSON object, matching compares
bodies as JSON, and validation checks the document against a model: three readers of one
parse. A :class:`JsonBody` parses on first use and keeps the result (or the reason there is
none), so a flow's body is parsed once however many of them read it (``flows.body_of``).
Nothing here knows mitmproxy.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

# Why a body is not JSON: not UTF-8 (UnicodeDecodeError), not JSON (JSONDecodeError), or
# nested past the interpreter's recursion limit.
NotJson = ValueError | RecursionError


class JsonBody:
    """A request or response body (bytes or text, None when absent) and its JSON document.

    JSON bodies are UTF-8 text, as Graph requires: bytes in another encoding are not JSON
    here, whatever ``json.loads`` would guess.
    """

    def __init__(self, raw: bytes | str | None, *, over_limit: bool = False) -> None:
        self.raw = raw if raw else None  # b"" and "" are no body, like None
        # A compressed body that decodes past Graph's size limit: ``raw`` is then the bytes
        # as they came, decoding having stopped at the limit (``content_encoding.decode``).
        self.over_limit = over_limit

    @classmethod
    def of(cls, body: JsonBody | bytes | str | None) -> JsonBody:
        """``body`` itself when it is already read, else a reader of it."""
        return body if isinstance(body, JsonBody) else cls(body)

    @cached_property
    def _read(self) -> tuple[Any, NotJson | None]:
        raw = self.raw
        if raw is None:
            return None, None
        try:
            return json.loads(raw if isinstance(raw, str) else raw.decode("utf-8")), None
        except (ValueError, RecursionError) as exc:
            return None, exc.with_traceback(None)

    @property
    def empty(self) -> bool:
        return self.raw is None

    @property
    def document(self) -> Any:
        """The parsed JSON value; None when the body is empty or not JSON."""
        return self._read[0]

    @property
    def error(self) -> NotJson | None:
        """Why a body that is there is not JSON; None for an empty or a JSON body."""
        return self._read[1]

    @property
    def comparable(self) -> Any:
        """The body as matching compares it: the JSON document, the bytes of a body that is
        not JSON, None for no body."""
        if self.raw is None:
            return None
        if self._read[1] is None:
            return self._read[0]
        return self.raw.encode() if isinstance(self.raw, str) else self.raw
