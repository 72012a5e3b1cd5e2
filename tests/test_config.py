"""Configuration: a bad file, unknown key or bad value stops the daemon with exit 2, naming both."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent


def run_agent(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli.main", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        ("[coordinator]\nurl = 'http://x'\n", "coordinator.url", "ws://"),
        ("[coordinator]\nbackoff_max_s = -1\n", "coordinator.backoff_max_s", "greater than 0"),
        ("[agent]\ncolour = 'blue'\n", "agent.colour", "Extra inputs are not permitted"),
        ("[scripts]\nkill_grace_s = 'soon'\n", "scripts.kill_grace_s", "valid number"),
        ("[[devices.browser]]\nviewport_width = 'wide'\n", "devices.browser.0", ""),
    ],
)
def test_bad_value_exits_2_naming_file_and_key(
    tmp_path: Path, body: str, key: str, reason: str
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(body)
    result = run_agent(config)
    assert result.returncode == 2
    assert str(config) in result.stderr
    assert f"key `{key}" in result.stderr
    assert reason in result.stderr


def test_file_that_is_not_toml_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("[agent\n")
    result = run_agent(config)
    assert result.returncode == 2
    assert f"{config}: not valid TOML" in result.stderr


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = run_agent(tmp_path / "nope.toml")
    assert result.returncode == 2
    assert "nope.toml: file not found" in result.stderr


def test_missing_token_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f"[coordinator]\ntoken_file = '{tmp_path / 'absent'}'\n")
    result = run_agent(config)
    assert result.returncode == 2
    assert "key `coordinator.token_file`" in result.stderr and str(config) in result.stderr


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("[agent]\nhost_id = 'from-file'\n")
    loaded = load_config(config, env={"DEVICE_AGENT__AGENT__HOST_ID": "from-env"})
    assert loaded.agent.host_id == "from-env"
    with pytest.raises(ConfigError, match=r"key `agent\.log_level`"):
        load_config(config, env={"DEVICE_AGENT__AGENT__LOG_LEVEL": "loud"})


def test_example_config_is_valid_and_documents_every_key() -> None:
    example = ROOT / "config.example.toml"
    loaded = load_config(example, env={})
    text = example.read_text()
    for section_name, section in loaded:
        if section_name == "devices":
            continue
        for key in type(section).model_fields:
            assert key in text, f"config.example.toml does not document {section_name}.{key}"
    for key in type(loaded.devices.browser[0]).model_fields:
        assert key in text
