"""PyYAML as every reader of ours uses it: one loader, and one way to say where a document broke.

Cassettes and ``--faults`` files are both YAML that users write or edit by hand; reading them
with the same loader and reporting their errors the same way gives one behaviour and one
error style (``FILE:LINE: ...``) for both.
"""

from __future__ import annotations

import yaml

# The C loader where PyYAML was built with libyaml (several times faster on a big cassette),
# else the pure-Python one; both safe: a document can't construct Python objects.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def error_location(exc: yaml.YAMLError) -> tuple[int | None, str]:
    """The 1-based line a YAML error points at (None when it points nowhere) and its problem
    in one line, e.g. ``(14, "did not find expected ',' or '}'")``."""
    line = None
    problem = ""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or ""
    if not problem:
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return line, problem
