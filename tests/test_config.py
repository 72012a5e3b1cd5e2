"""Configuration: a bad file, unknown key or bad value stops the daemon with exit 2, naming both."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent


def run_agent(
    config: Path, command: str = "run", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli.main", command, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        ("[coordinator]\nurl = 'http://x'\n", "coordinator.url", "ws://"),
        ("[coordinator]\nbackoff_max_s = -1\n", "coordinator.backoff_max_s", "greater than 0"),
        ("[agent]\ncolour = 'blue'\n", "agent.colour", "Extra inputs are not permitted"),
        ("[scripts]\nkill_grace_s = 'soon'\n", "scripts.kill_grace_s", "valid number"),
        ("[[devices.browser]]\nviewport_width = 'wide'\n", "devices.browser.0", ""),
        ("[scripts]\nuser = 'no-such-account'\n", "scripts.user", "no account"),
        ("[scripts]\nmemory_max_mb = 0\n", "scripts.memory_max_mb", "greater than or equal"),
        ("[scripts]\npids_max = -5\n", "scripts.pids_max", "greater than or equal"),
        ("[scripts]\ncpus = 0\n", "scripts.cpus", "greater than 0"),
        ("[scripts]\nnetwork = 'everywhere'\n", "scripts.network", "'none', 'outbound'"),
        ("[scripts]\nsandbox = 'maybe'\n", "scripts.sandbox", "'bwrap' or 'off'"),
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


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o644])
def test_token_file_open_to_others_exits_2_naming_key_file_and_mode(
    tmp_path: Path, mode: int
) -> None:
    token = tmp_path / "token"
    token.write_text("secret-token\n")
    token.chmod(mode)
    config = tmp_path / "agent.toml"
    config.write_text(f"[coordinator]\ntoken_file = '{token}'\n")
    result = run_agent(config)
    assert result.returncode == 2
    assert "key `coordinator.token_file`" in result.stderr
    assert f"{token} has mode {mode:04o}" in result.stderr
    assert "secret-token" not in result.stderr


def test_private_token_file_is_read(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("secret-token\n")
    token.chmod(0o600)
    config = tmp_path / "agent.toml"
    config.write_text(f"[coordinator]\ntoken_file = '{token}'\n")
    assert load_config(config, env={}).coordinator.read_token() == "secret-token"


@pytest.mark.parametrize("host", ["coordinator.example", "10.1.2.3", "[fe80::1]"])
def test_ws_to_another_machine_exits_2_unless_allowed(tmp_path: Path, host: str) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f"[coordinator]\nurl = 'ws://{host}:8765/ws/host'\ntoken = 't'\n")
    result = run_agent(config)
    assert result.returncode == 2
    assert "key `coordinator.url`" in result.stderr and str(config) in result.stderr
    assert "coordinator.allow_insecure = true" in result.stderr
    allowed = load_config(config, env={"DEVICE_AGENT__COORDINATOR__ALLOW_INSECURE": "true"})
    assert allowed.coordinator.insecure(allowed.coordinator.urls[0])


def test_each_url_of_a_list_is_checked(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        "[coordinator]\nurl = ['ws://127.0.0.1:8765/ws/host', 'ws://replica-b:8765/ws/host']\n"
        "token = 't'\n"
    )
    result = run_agent(config)
    assert result.returncode == 2
    assert "key `coordinator.url`" in result.stderr and "ws:// to replica-b" in result.stderr
    config.write_text("[coordinator]\nurl = []\ntoken = 't'\n")
    result = run_agent(config)
    assert result.returncode == 2 and "give at least one URL" in result.stderr
    urls = ["ws://127.0.0.1:8765/ws/host", "wss://replica-b/ws/host"]
    config.write_text(f"[coordinator]\nurl = {urls!r}\n")
    assert load_config(config, env={}).coordinator.urls == urls


@pytest.mark.parametrize(
    "url",
    [
        "ws://127.0.0.1:8765/ws/host",
        "ws://127.8.9.10/ws/host",
        "ws://[::1]:8765/ws/host",
        "ws://LocalHost:8765/ws/host",
        "wss://coordinator.example/ws/host",
    ],
)
def test_loopback_ws_and_any_wss_need_no_allowance(tmp_path: Path, url: str) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f"[coordinator]\nurl = '{url}'\n")
    coordinator = load_config(config, env={}).coordinator
    assert not coordinator.insecure(coordinator.urls[0])


def test_ca_file_that_is_not_a_pem_bundle_is_a_config_error(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    config = tmp_path / "agent.toml"
    config.write_text(f"[coordinator]\nurl = 'wss://127.0.0.1/ws/host'\nca_file = '{ca}'\n")
    with pytest.raises(ConfigError, match=rf"key `coordinator\.ca_file`: .*cannot load {ca}"):
        load_config(config, env={})
    with pytest.raises(ConfigError, match=r"key `coordinator\.ca_file`: .*cannot load"):
        load_config(config, env={"DEVICE_AGENT__COORDINATOR__CA_FILE": str(tmp_path / "absent")})


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


def test_a_host_without_bubblewrap_refuses_to_start_unless_sandbox_is_off(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    token.chmod(0o600)
    config = tmp_path / "agent.toml"
    body = f"[agent]\nstate_file = '{tmp_path / 'state.db'}'\n"
    body += f"[coordinator]\ntoken_file = '{token}'\n"
    config.write_text(body)
    no_bwrap = {"PATH": "/nonexistent", "LANG": "C.UTF-8"}
    result = run_agent(config, "run", env=no_bwrap)
    assert result.returncode == 2, result.stderr
    assert "key `scripts.sandbox`: this host cannot sandbox scripts" in result.stderr
    assert "bubblewrap is not installed" in result.stderr
    # doctor says the same on its sandbox line, and fails (exit 1: it could check the rest).
    result = run_agent(config, "doctor", env=no_bwrap)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "fail sandbox: the daemon would refuse to start: key `scripts.sandbox`: this host "
        "cannot sandbox scripts" in result.stdout
    )
    assert "bubblewrap is not installed" in result.stdout
    config.write_text(body + "[scripts]\nsandbox = 'off'\n")
    result = run_agent(config, "doctor", env=no_bwrap)
    assert "warn sandbox: off: scripts run unsandboxed" in result.stdout, result.stderr
    assert "sandbox: OFF" in result.stdout


def test_doctor_says_which_isolation_is_in_force(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("[scripts]\nnetwork = 'outbound'\n")
    result = run_agent(config, "doctor")
    assert "ok   sandbox: the daemon would start with this isolation" in result.stdout, (
        result.stdout + result.stderr
    )
    assert "sandbox: bubblewrap at " in result.stdout
    assert "network: outbound" in result.stdout
    assert "limits: cgroup v" in result.stdout
    assert "trial: a sandboxed interpreter imported the script host" in result.stdout


def test_bad_value_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("[agent]\nhost_id = 'h'\n")
    variable = "DEVICE_AGENT__COORDINATOR__BACKOFF_MAX_S"
    with pytest.raises(ConfigError) as caught:
        load_config(config, env={variable: "-1"})
    assert str(caught.value).startswith(f"environment {variable}: key `coordinator.backoff_max_s`")
    assert str(config) not in str(caught.value)


def test_state_file_in_a_directory_that_cannot_be_made_exits_2(tmp_path: Path) -> None:
    """Root can write anywhere, so the unusable directory is one under a regular file."""
    (tmp_path / "token").write_text("secret-token")
    (tmp_path / "token").chmod(0o600)
    (tmp_path / "plain-file").write_text("")
    state_file = tmp_path / "plain-file" / "sub" / "state.db"
    config = tmp_path / "agent.toml"
    config.write_text(
        f"[agent]\nstate_file = '{state_file}'\n"
        f"[coordinator]\ntoken_file = '{tmp_path / 'token'}'\n"
        f"[scripts]\nwork_root = '{tmp_path / 'work'}'\n"
    )
    result = run_agent(config)
    assert result.returncode == 2, result.stderr
    assert f"state file {state_file}: cannot make its directory" in result.stderr
    assert "Traceback" not in result.stderr
