"""What replay does with a request its cassette does not hold."""

from __future__ import annotations

from enum import StrEnum

# The answer to a miss: not 404, which a test could take for Graph's itemNotFound.
MISS_STATUS = 501
MISS_CODE = "CassetteMiss"


class OnMiss(StrEnum):
    ERROR = "error"  # answer Graph-shaped 501 CassetteMiss, naming the closest recording
    FORWARD = "forward"  # let the request go on to its host
