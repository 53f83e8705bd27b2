"""`python -m services <name> [args]` runs one service (ledger, listener, sweeper,
notifier, checkout); without a name, $PAYMESH_SERVICE decides. The container image's
entry point, so one image serves every Deployment."""

from __future__ import annotations

import os
import runpy
import sys

SERVICES = ("ledger", "listener", "sweeper", "notifier", "checkout")


def main() -> None:
    args = sys.argv[1:]
    name = args.pop(0) if args and args[0] in SERVICES else os.environ.get("PAYMESH_SERVICE", "")
    if name not in SERVICES:
        sys.exit(f"which service? give one of {', '.join(SERVICES)} as the first argument or in PAYMESH_SERVICE")
    sys.argv = [f"services.{name}", *args]
    runpy.run_module(f"services.{name}", run_name="__main__", alter_sys=True)


main()
