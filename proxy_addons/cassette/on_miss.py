"""What replay does with a request its cassette does not hold."""

from __future__ import annotations

from enum import StrEnum


class OnMiss(StrEnum):
    ERROR = "error"  # answer Graph-shaped 501 CassetteMiss, naming the closest recording
    FORWARD = "forward"  # let the request go on to its host
