"""`device-agent doctor`'s checks: each says ok, warn or fail about one thing, and the fix.

The checks are read-only: they open nothing for writing, start no adb server and take no session
at the coordinator, so they are safe beside a running daemon (run them as the daemon's user).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    status: Status
    name: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        """`STATUS NAME: DETAIL (fix: FIX)`, the status padded so that the names line up."""
        fix = f" (fix: {self.fix})" if self.fix else ""
        return f"{self.status:<4} {self.name}: {self.detail}{fix}"


def ok(name: str, detail: str) -> Check:
    return Check("ok", name, detail)


def warn(name: str, detail: str, fix: str = "") -> Check:
    return Check("warn", name, detail, fix)


def fail(name: str, detail: str, fix: str = "") -> Check:
    return Check("fail", name, detail, fix)
