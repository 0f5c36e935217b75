"""``python -m proxy_addons.child``, the old address of the pytest plugin's proxy process
(``proxy_addons/testing/child.py``, which the launcher runs)."""

from proxy_addons.testing.child import exit_now, main

if __name__ == "__main__":
    exit_now(main())
