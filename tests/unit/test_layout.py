"""Every service has the same rooms with the same names (docs/ARCHITECTURE.md,
"One skeleton"), and the rules between them hold:

- `domain/` is pure: no transport, storage, generated protobuf or logging;
- use-case modules (the top of a service package, all but its composition root
  app.py and its entry points __main__.py and cli.py) import no grpc and no
  generated protobuf: conversion lives in api/, inbound/ and adapters/;
- no service imports another service, and services/common imports none;
- a name means one thing: no worker.py, transport.py, grpc_api.py or consumers.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("ledger", "listener", "sweeper", "notifier")
ROOMS = ("api", "adapters", "domain")
WITH_INBOUND = ("ledger", "notifier")  # the services that consume a NATS stream
ENTRY_POINTS = {"app.py", "__main__.py", "cli.py"}
DOMAIN_FORBIDDEN = {
    "grpc",
    "grpc_health",
    "grpc_reflection",
    "grpc_status",
    "nats",
    "sqlalchemy",
    "asyncpg",
    "alembic",
    "httpx",
    "httpcore",
    "websockets",
    "paymesh",
    "google",
    "structlog",
    "prometheus_client",
    "uvloop",
}
USE_CASE_FORBIDDEN = {"grpc", "grpc_health", "grpc_reflection", "grpc_status", "paymesh", "google"}
RETIRED_NAMES = {"worker.py", "transport.py", "grpc_api.py", "consumers.py"}


def imports(path: Path) -> set[str]:
    """Top-level names of the absolute imports of a module."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def roots(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imports(path)}


def package(service: str) -> Path:
    return ROOT / "services" / service


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_rooms(service):
    base = package(service)
    assert (base / "app.py").is_file() and (base / "__main__.py").is_file()
    for room in (*ROOMS, *(("inbound",) if service in WITH_INBOUND else ())):
        assert (base / room / "__init__.py").is_file(), f"services/{service}/{room}/ is missing"
    assert (base / "README.md").is_file(), f"services/{service}/README.md is missing"


@pytest.mark.parametrize("service", SERVICES)
def test_domain_is_pure(service):
    files = sorted((package(service) / "domain").rglob("*.py"))
    assert files
    for path in files:
        bad = roots(path) & DOMAIN_FORBIDDEN
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("service", SERVICES)
def test_use_cases_import_no_grpc_or_generated_protobuf(service):
    files = [p for p in sorted(package(service).glob("*.py")) if p.name not in ENTRY_POINTS]
    assert files
    for path in files:
        bad = roots(path) & USE_CASE_FORBIDDEN
        assert not bad, f"{path.relative_to(ROOT)} (a use-case module) imports {sorted(bad)}"


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_imports_another(service):
    others = {f"services.{s}" for s in SERVICES if s != service}
    for path in package(service).rglob("*.py"):
        found = {name for name in imports(path) for other in others if name == other or name.startswith(other + ".")}
        assert not found, f"{path.relative_to(ROOT)} imports {sorted(found)}"


def test_common_imports_no_service():
    for path in (ROOT / "services" / "common").rglob("*.py"):
        found = {n for n in imports(path) for s in SERVICES if n == f"services.{s}" or n.startswith(f"services.{s}.")}
        assert not found, f"{path.relative_to(ROOT)} imports {sorted(found)}"


@pytest.mark.parametrize("service", SERVICES)
def test_one_name_one_meaning(service):
    retired = [p.relative_to(ROOT) for p in package(service).rglob("*.py") if p.name in RETIRED_NAMES]
    assert not retired, f"retired module names (say what the thing is instead): {retired}"
