"""Service processes for tests (see tools/services.py)."""

from tools.services import ServiceProcess

__all__ = ["ServiceProcess"]
