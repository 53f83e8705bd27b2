"""`python -m services.checkout` serves the public payment pages."""

import uvloop

from services.checkout.app import serve

uvloop.run(serve())
