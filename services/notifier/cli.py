"""Command line of the notifier.

python -m services.notifier [serve]     run the notifier
python -m services.notifier migrate     upgrade its tables and exit
"""

from __future__ import annotations

import argparse

import uvloop


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.notifier", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the notifier (default)")
    sub.add_parser("migrate", help="upgrade the notifier's tables and exit")
    args = parser.parse_args(argv)
    if args.command == "migrate":
        from services.notifier.adapters.db import migrate
        from services.notifier.settings import NotifierSettings

        migrate(NotifierSettings().database_url)
        print("notifier schema is up to date")
        return 0
    from services.notifier.app import serve

    uvloop.run(serve())
    return 0
