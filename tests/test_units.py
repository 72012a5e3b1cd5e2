"""The systemd units: their hardening scores stay at or below docs/operations.md's, and
`systemd-analyze verify` finds nothing wrong with them (systemd-analyze is part of Debian's
systemd, on every host this runs on)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = ("device-agent.service", "device-coordinator.service")


def documented_scores() -> dict[str, float]:
    text = (ROOT / "docs" / "operations.md").read_text()
    return {
        m[1]: float(m[2]) for m in re.finditer(r"^\| ([\w-]+\.service) \| ([\d.]+) ", text, re.M)
    }


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    systemd_analyze = shutil.which("systemd-analyze")
    assert systemd_analyze, "systemd-analyze is missing: apt-get install systemd"
    return subprocess.run(
        [systemd_analyze, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("unit", UNITS)
def test_exposure_is_at_most_the_documented_score(unit: str) -> None:
    threshold = documented_scores()[unit]
    result = analyze("security", "--offline=yes", str(ROOT / "systemd" / unit))
    found = re.search(rf"Overall exposure level for {re.escape(unit)}: ([\d.]+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found[1]) <= threshold, (
        f"{unit} scores {found[1]}, above the {threshold} docs/operations.md records:\n"
        + result.stdout
    )


def test_units_verify(tmp_path: Path) -> None:
    """`verify` checks that ExecStart's binary exists: point the copies at this venv's."""
    venv = Path(sys.executable).parent.parent
    for unit in UNITS:
        text = (ROOT / "systemd" / unit).read_text()
        assert "/opt/device-agent/.venv/" in text
        (tmp_path / unit).write_text(text.replace("/opt/device-agent/.venv/", f"{venv}/"))
    result = analyze("verify", *(str(tmp_path / unit) for unit in UNITS))
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
