"""The script sandbox: bubblewrap namespaces, a cgroup per task, the network policy.

`probe` finds once what this host can enforce (agent/sandbox/probe.py); `start_script_host`
starts one script host under it and returns the handle that ends it (agent/sandbox/launch.py).
docs/security.md states what this guarantees and what it does not.
"""

from agent.sandbox.launch import HostProcess, SandboxError, ScriptProcess, start_script_host
from agent.sandbox.probe import Isolation, log_isolation, probe, refuse_unsandboxed

__all__ = [
    "HostProcess",
    "Isolation",
    "SandboxError",
    "ScriptProcess",
    "log_isolation",
    "probe",
    "refuse_unsandboxed",
    "start_script_host",
]
