"""A real headless Chromium for the page tests: Debian's `chromium` package, driven
by Playwright (its Python package talks to the browser over CDP; Playwright's own
browser downloads are never used). `make test` installs the package where it can
(as root, with apt-get); where it is missing the tests fail with a message naming
it: they never skip."""

from __future__ import annotations

import os
import shutil

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def chromium_path() -> str:
    configured = os.environ.get("PAYMESH_CHROMIUM")
    for path in (configured, *CANDIDATES, shutil.which("chromium")):
        if path and os.path.exists(path):
            return path
    raise RuntimeError(
        "the checkout's browser tests need a Chromium: install Debian's package `chromium` "
        "(apt-get install chromium), or set PAYMESH_CHROMIUM to a Chromium binary"
    )


LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
