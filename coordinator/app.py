"""The coordinator's ASGI application: HTTP API under /api, the host websocket, /healthz,
/metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import Depends, FastAPI

from agent.private_files import private_dir
from agent.protocol import WS_PATH
from coordinator.api import (
    devices,
    files,
    job_controls,
    job_list,
    jobs,
    tasks,
    timeline,
    versions,
    webhooks,
)
from coordinator.api.auth import require_api_key
from coordinator.api.models import Health
from coordinator.api.strict_json import api_router
from coordinator.context import Context
from coordinator.db import Database
from coordinator.dispatch import Dispatcher
from coordinator.herald import Herald
from coordinator.metrics import CoordinatorMetrics, add_metrics_route
from coordinator.ratelimit import RateLimiter
from coordinator.replicas import on_notice
from coordinator.sessions import SessionRegistry
from coordinator.settings import Settings
from coordinator.timeouts import run_timeout_loop
from coordinator.webhooks import Deliverer
from coordinator.ws_host import host_endpoint

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    metrics = CoordinatorMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The data dir holds the stored files whatever the database: private on PostgreSQL too.
        await asyncio.to_thread(private_dir, settings.data_dir)
        await asyncio.to_thread(settings.files_dir.mkdir, parents=True, exist_ok=True)
        db = await Database.open(settings.database)
        sessions = SessionRegistry()
        dispatcher = Dispatcher(db, sessions)
        dispatcher.on_assigned = metrics.dispatched
        limiter = RateLimiter(settings.rate_limit, settings.rate_burst)
        ctx = Context(settings, db, sessions, dispatcher, limiter, Deliverer(db, settings))
        if settings.database.sqlite_file is None:
            dispatcher.herald = Herald(settings.database, partial(on_notice, ctx))
        app.state.ctx = ctx
        loops = [
            asyncio.create_task(run_timeout_loop(ctx)),
            asyncio.create_task(ctx.dispatcher.run()),
            asyncio.create_task(ctx.webhooks.run()),
        ]
        log.info(
            "coordinator ready (database %s, files in %s)", settings.database, settings.files_dir
        )
        try:
            yield
        finally:
            for loop in loops:
                loop.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop
            if dispatcher.herald is not None:
                await dispatcher.herald.close()
            await db.close()
            log.info("coordinator stopped")

    app = FastAPI(title="device-agent coordinator", version="1", lifespan=lifespan)
    api = api_router(prefix="/api", dependencies=[Depends(require_api_key)])
    for module in (
        job_list,
        jobs,
        job_controls,
        versions,
        webhooks,
        tasks,
        timeline,
        files,
        devices,
    ):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(files.public_router)
    app.add_api_websocket_route(WS_PATH, host_endpoint)
    add_metrics_route(app, metrics, settings.metrics_auth)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> Health:
        return Health(ok=True)

    return app
