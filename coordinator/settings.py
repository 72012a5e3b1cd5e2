"""What one `device-coordinator serve` runs with (from its command line)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from coordinator.db_location import Location


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    """Where stored files go (files/), and the SQLite database unless `database` is elsewhere."""
    database: Location
    grace_s: float = 30.0
    """How long past its timeout an active task may stay silent before the coordinator ends it."""
    heartbeat_s: float = 10.0
    max_script_bytes: int = 1024 * 1024
    """Largest job script (UTF-8) the API takes; bigger is HTTP 413 (coordinator/limits.py)."""
    max_input_bytes: int = 256 * 1024
    """Largest task input (compact JSON) the API or a script's add_sub_tasks takes."""
    rate_limit: float = 100.0
    """Requests per second each API key may make (coordinator/ratelimit.py); more is HTTP 429."""
    rate_burst: int = 1000
    """How many requests a key may make at once after a quiet spell."""
    public_url: str | None = None
    """Base of the public file URLs put into data-dump proofs, e.g. https://coord.example;
    None: the scheme, host and port the host's websocket reached us on (ws -> http)."""

    webhook_timeout_s: float = 10.0
    """How long one webhook delivery attempt may take (coordinator/webhooks.py)."""
    webhook_retry_s: float = 5.0
    """Wait after a delivery's first failed attempt; it doubles after each later one..."""
    webhook_retry_max_s: float = 3600.0
    """... up to this."""
    metrics_auth: Literal["apikey", "none"] = "apikey"
    """Whether `GET /metrics` asks for an API key (coordinator/metrics.py)."""

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"
