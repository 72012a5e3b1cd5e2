"""scripts/install-host.sh into a fresh root (DESTDIR): the user recorded for systemd-sysusers,
the directories with their modes, the unit, and a virtualenv whose `device-agent` runs.

To stay fast and offline beyond PyPI, the project's wheel is built here without build isolation
(PACKAGE), the virtualenv is made without pip, this test's pip installs the wheel into it without
its dependencies, and `device-agent --help` then finds those in this test's environment
(PYTHONPATH)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_install_host_into_a_fresh_root(tmp_path: Path) -> None:
    dest = tmp_path / "root"
    venv = dest / "opt" / "device-agent" / ".venv"
    python3 = shutil.which("python3")
    assert python3
    built = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check"),
            *("--no-deps", "--no-build-isolation", "-w", str(tmp_path / "wheels"), str(ROOT)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "wheels").glob("device_agent-*.whl")
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-host.sh")],
        env={
            **os.environ,
            "DESTDIR": str(dest),
            "PYTHON": python3,
            "VENV_ARGS": "--without-pip",
            "PIP": f"{sys.executable} -m pip --python {venv / 'bin' / 'python'}",
            "PIP_ARGS": "--no-deps",
            "PACKAGE": str(wheel),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'token_file = "/etc/device-agent/token"' in result.stdout

    assert mode(dest / "etc" / "device-agent") == 0o750
    assert mode(dest / "var" / "lib" / "device-agent") == 0o700
    assert mode(dest / "var" / "log" / "device-agent") == 0o700
    sysusers = (dest / "usr" / "lib" / "sysusers.d" / "device-agent.conf").read_text()
    assert sysusers.startswith('u device-agent - "device-agent service" /var/lib/device-agent ')
    assert "m device-agent plugdev" in sysusers
    unit = dest / "etc" / "systemd" / "system" / "device-agent.service"
    assert unit.read_text() == (ROOT / "systemd" / "device-agent.service").read_text()
    assert mode(unit) == 0o644

    installed = list(venv.glob("lib/python3*/site-packages/agent/__init__.py"))
    assert installed, "the project is installed into the virtualenv, not linked to this checkout"
    deps = sysconfig.get_paths()["purelib"]
    run = subprocess.run(
        [str(venv / "bin" / "device-agent"), "--help"],
        env={**os.environ, "PYTHONPATH": deps},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "doctor" in run.stdout
