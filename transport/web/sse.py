"""The feed as Server-Sent Events (being written: see docs/http.md §3)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response


def attach(gateway: Any) -> None:
    """Start the feed hubs of ``gateway``."""


async def detach(gateway: Any) -> None:
    """Stop the feed hubs of ``gateway``."""


async def feed(request: Request) -> Response:
    return JSONResponse(
        {"error": {"class": "Unavailable", "message": "no feed yet", "fields": {}}}, 503
    )
