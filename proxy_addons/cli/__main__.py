"""``python -m proxy_addons.cli``: the same as the ``graph-vcr-proxy`` command."""

import sys

from proxy_addons.cli.commands import main

if __name__ == "__main__":
    sys.exit(main())
