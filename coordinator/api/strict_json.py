"""Request bodies are strict, bounded JSON: what a host frame may not hold is a 422 here too.

Python's json module, which starlette's `Request.json()` uses, accepts NaN, Infinity and
-Infinity; a body holding one then fails later, as a 500, wherever a response is rendered
(responses are strict JSON), even FastAPI's own 422 that echoes the input. And a task input
nested deeper, or with longer numbers, than a frame may carry (agent/boundedjson.py) would make
an `assign` frame every daemon refuses. Every API router is made by `api_router`, whose routes
parse bodies with the frames' decoder before any validation, and refuse a path or query parameter
holding a NUL (`%00`): no id holds one (PostgreSQL's text cannot), and looking one up would fail
in the database instead of answering. They also refuse query parameters they do not declare.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.routing import APIRoute

from agent import boundedjson
from coordinator.api.known_params import declared_query_names, refuse_unknown_query


class _StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = boundedjson.loads(await self.body())
            except boundedjson.BadJson as exc:
                # FastAPI lets an HTTPException raised while a body is parsed through as it is.
                detail = [{"type": "json_invalid", "loc": ["body"], "msg": str(exc), "input": None}]
                raise HTTPException(status_code=422, detail=detail) from None
        return self._json


class StrictJSONRoute(APIRoute):
    """An API route whose JSON body is strict, bounded JSON, whose path and query parameters
    hold no NUL, and which takes no query parameter it does not declare (known_params.py)."""

    takes_unknown_query = False

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        declared = declared_query_names(self.dependant)

        async def strict(request: Request) -> Response:
            _refuse_nul_parameters(request)
            if not self.takes_unknown_query:
                refuse_unknown_query(request, declared)
            return await handler(_StrictJSONRequest(request.scope, request.receive))

        return strict


class StrictJSONLinkRoute(StrictJSONRoute):
    """A StrictJSONRoute whose URL is handed to others as a link, which sites and messengers
    may add their own query parameters to (`?fbclid=...`): it ignores unknown ones."""

    takes_unknown_query = True


def _refuse_nul_parameters(request: Request) -> None:
    params = [
        *(("path", name, value) for name, value in request.path_params.items()),
        *(("query", name, value) for name, value in request.query_params.multi_items()),
    ]
    for where, name, value in params:
        if "\x00" in str(value):
            detail = [
                {
                    "type": "value_error",
                    "loc": [where, name],
                    "msg": "must not hold a NUL character (U+0000)",
                    "input": None,
                }
            ]
            raise HTTPException(status_code=422, detail=detail)


def api_router(*, links: bool = False, **options: Any) -> APIRouter:
    """An APIRouter of StrictJSONRoutes (StrictJSONLinkRoutes with `links`). Each module's
    router must be one: including a router in another keeps the route class its routes were
    made with."""
    return APIRouter(route_class=StrictJSONLinkRoute if links else StrictJSONRoute, **options)
