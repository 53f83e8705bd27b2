"""`python -m services.notifier` serves; `... migrate` upgrades the schema and exits."""

import sys

from services.notifier.cli import main

sys.exit(main(sys.argv[1:]))
