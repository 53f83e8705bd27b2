"""`python -m services.ledger` serves; `... migrate` upgrades the schema;
`... admin ...` is the operator CLI (see cli.py)."""

import sys

from services.ledger.cli import main

sys.exit(main(sys.argv[1:]))
