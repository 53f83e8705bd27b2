"""One GET of an exchange's public JSON, bounded: connect within 2 s, the whole
answer within 5 s (base.py). Every failure raises RateSourceError naming the
source, the URL and what happened (no answer, HTTP status with the body's error,
not JSON)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from services.ledger.adapters.rate_sources.base import TOTAL_TIMEOUT_SECONDS
from services.ledger.domain.rate_sources import RateSourceError


async def get_json(
    client: httpx.AsyncClient, url: str, source: str, *, total: float = TOTAL_TIMEOUT_SECONDS
) -> tuple[int, Any]:
    """(HTTP status, parsed JSON body) of GET url; the body of an error status is
    returned too when it is JSON (exchanges explain errors there), else it raises."""
    try:
        async with asyncio.timeout(total):
            response = await client.get(url)
    except TimeoutError:
        raise RateSourceError(f"{source}: no answer from {url} within {total:g} s") from None
    except httpx.TimeoutException as exc:
        raise RateSourceError(f"{source}: {url} timed out ({type(exc).__name__})") from None
    except httpx.HTTPError as exc:
        raise RateSourceError(f"{source}: {url} could not be reached: {type(exc).__name__}: {exc}") from None
    try:
        body = json.loads(response.content)
    except ValueError:
        raise RateSourceError(
            f"{source}: {url} answered HTTP {response.status_code} with no JSON: {response.content[:120]!r}"
        ) from None
    if response.status_code >= 500 or response.status_code == 429:
        raise RateSourceError(
            f"{source}: {url} answered HTTP {response.status_code} (try again later): {str(body)[:200]}"
        )
    return response.status_code, body
