"""``python benchmarks/run.py``: every benchmark, measured side by side in one run.

Each benchmark module has a ``run()`` that measures ours against the tool it replaces on the
same data, in the same process, and prints its own lines; this only runs them in turn.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lookup
import pytest_suite
import record_cost


def main() -> int:
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.system()}")
    lookup.run()
    record_cost.run()
    pytest_suite.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
