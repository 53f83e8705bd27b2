"""`python -m services.sweeper` runs the sweeper (configuration: services/sweeper/settings.py)."""

import sys

import uvloop

from services.common.chains import ChainConfigError
from services.sweeper.app import serve

try:
    uvloop.run(serve())
except ChainConfigError as exc:  # chains.yaml unusable, or an endpoint serving another chain
    print(f"sweeper: configuration error: {exc}", file=sys.stderr)
    sys.exit(2)
