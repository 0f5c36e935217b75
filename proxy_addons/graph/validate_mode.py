"""What the recorder and the importers do with a body the models reject: its own module, so
the option tables (``proxy_addons/options/``) name the choices without loading the models."""

from __future__ import annotations

from enum import StrEnum


class ValidateMode(StrEnum):
    WARN = "warn"  # log and count each problem
    ENFORCE = "enforce"  # also answer a request with errors with Graph's 400
    OFF = "off"  # check nothing
