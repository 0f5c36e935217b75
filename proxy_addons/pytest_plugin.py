"""The ``pytest11`` entry point (``graph_vcr_proxy``) at its old address: the plugin itself is
``proxy_addons/testing/pytest_plugin.py``; this module is what pytest registers, so its hooks
and fixtures are registered once whichever of the two names a project imports."""

from proxy_addons.testing.pytest_plugin import *  # noqa: F403
