"""`python -m services.sweeper` runs the sweeper (configuration: services/sweeper/settings.py)."""

import uvloop

from services.sweeper.app import serve

uvloop.run(serve())
