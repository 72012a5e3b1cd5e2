"""Request bodies are strict JSON (RFC 8259): NaN, Infinity and -Infinity are refused with 422.

Python's json module, which starlette's `Request.json()` uses, accepts those three words. A body
holding one then fails later, as a 500, wherever a response is rendered (responses are strict
JSON), even FastAPI's own 422 that echoes the input. Every API router is made by `api_router`,
whose routes parse bodies with these words refused before any validation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.routing import APIRoute


def _refuse(word: str) -> Any:
    # FastAPI lets an HTTPException raised while a body is parsed through as it is.
    raise HTTPException(
        status_code=422,
        detail=[
            {
                "type": "json_invalid",
                "loc": ["body"],
                "msg": f"{word} is not valid JSON: numbers must be finite (RFC 8259)",
                "input": None,
            }
        ],
    )


class _StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), parse_constant=_refuse)
        return self._json


class StrictJSONRoute(APIRoute):
    """An API route whose JSON body may not hold NaN, Infinity or -Infinity."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictJSONRequest(request.scope, request.receive))

        return strict


def api_router(**options: Any) -> APIRouter:
    """An APIRouter of StrictJSONRoutes. Each module's router must be one: including a router
    in another keeps the route class its routes were made with."""
    return APIRouter(route_class=StrictJSONRoute, **options)
