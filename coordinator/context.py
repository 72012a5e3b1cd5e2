"""The running coordinator's shared parts, built once at start and kept on the app's state."""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.db import Database
from coordinator.dispatch import Dispatcher
from coordinator.ratelimit import RateLimiter
from coordinator.sessions import SessionRegistry
from coordinator.settings import Settings
from coordinator.webhooks import Deliverer


@dataclass(frozen=True)
class Context:
    settings: Settings
    db: Database
    sessions: SessionRegistry
    dispatcher: Dispatcher
    limiter: RateLimiter
    webhooks: Deliverer
