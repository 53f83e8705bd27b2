"""`python -m services.listener` runs the listener (configuration: services/listener/settings.py)."""

import sys

import uvloop
from pydantic import ValidationError

from services.common.chains import ChainConfigError
from services.listener.app import ConfigError, serve, watched_chains
from services.listener.settings import ListenerSettings

try:
    settings = ListenerSettings()
    watched_chains(settings)
except (ChainConfigError, ConfigError, ValidationError) as exc:
    # Configuration mistakes are the operator's to fix: say what, without a traceback.
    print(f"listener: configuration error: {exc}", file=sys.stderr)
    sys.exit(2)

try:
    uvloop.run(serve(settings))
except KeyboardInterrupt:
    pass
except ChainConfigError as exc:  # an endpoint found serving another chain at start
    print(f"listener: configuration error: {exc}", file=sys.stderr)
    sys.exit(2)
