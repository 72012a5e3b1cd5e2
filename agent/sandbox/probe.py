"""What isolation this host can give scripts: found once at start, shown by `device-agent doctor`.

`probe` looks for bubblewrap, setpriv and slirp4netns, the cgroup tree, and then starts one
sandboxed interpreter the way a task would, importing the script host: a host that passes the
probe runs its first task the same way. A host that cannot sandbox is refused at start unless
`[scripts] sandbox = "off"` says so on purpose.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import agent
from agent.sandbox.bwrap import SandboxSpec, bwrap_argv
from agent.sandbox.cgroup import CgroupTree, CgroupUnavailable, Limits, find_tree
from agent.script_settings import MIB, ScriptSettings

TRIAL_TIMEOUT_S = 30.0
_SETUP_CAP_BITS = (6, 7, 21)  # CAP_SETGID, CAP_SETUID, CAP_SYS_ADMIN


@dataclass(frozen=True)
class Isolation:
    """The settings as this host can carry them out, and what stands in the way."""

    settings: ScriptSettings
    bwrap: str | None
    setpriv: str
    slirp4netns: str | None
    as_root: bool
    uid: int
    gid: int
    cgroups: CgroupTree | None
    read_only: tuple[Path, ...]
    problems: tuple[str, ...]
    facts: tuple[str, ...]

    @property
    def limits(self) -> Limits:
        s = self.settings
        return Limits(memory_bytes=s.memory_max_mb * MIB, pids=s.pids_max, cpus=s.cpus)

    def spec(self, task_dir: Path) -> SandboxSpec | None:
        """The sandbox for a task dir; None when scripts run unsandboxed (`sandbox = "off"`)."""
        if self.bwrap is None:
            return None
        return SandboxSpec(
            bwrap=self.bwrap,
            setpriv=self.setpriv,
            task_dir=task_dir,
            read_only=self.read_only,
            network=self.settings.network,
            as_root=self.as_root,
            uid=self.uid,
            gid=self.gid,
        )

    def report(self) -> str:
        lines = [*self.facts, *(f"PROBLEM: {p}" for p in self.problems)]
        return "\n".join(lines)


def refuse_unsandboxed(isolation: Isolation) -> str | None:
    """Why the daemon must not start with this isolation (exit 2), or None."""
    if not isolation.problems or isolation.settings.sandbox == "off":
        return None
    return (
        "key `scripts.sandbox`: this host cannot sandbox scripts:\n  "
        + "\n  ".join(isolation.problems)
        + '\n(fix the above, or set [scripts] sandbox = "off" to run trusted scripts as they are)'
    )


def log_isolation(isolation: Isolation, log: logging.Logger) -> None:
    """Say at start which isolation is in force; warn for each thing missing."""
    for fact in isolation.facts:
        log.info("isolation: %s", fact)
    for problem in isolation.problems:
        log.warning("isolation: %s", problem)
    if isolation.settings.sandbox == "off":
        log.warning('isolation: [scripts] sandbox = "off": scripts run unsandboxed (trusted only)')


def probe(settings: ScriptSettings) -> Isolation:
    """Find what isolation is in force for `settings` (blocking: run it off the event loop)."""
    facts: list[str] = []
    problems: list[str] = []
    as_root = _privileged()
    uid, gid = settings.account() if as_root else (os.getuid(), os.getgid())
    bwrap = shutil.which("bwrap")
    slirp = shutil.which("slirp4netns")
    setpriv = shutil.which("setpriv") or "setpriv"
    if settings.sandbox == "off":
        facts.append("sandbox: OFF (scripts run with the daemon's user and view; trusted only)")
        bwrap = None
    else:
        problems += _sandbox_problems(bwrap, setpriv, slirp, settings, as_root, uid)
        who = f"uid {uid} ({settings.user}) via setpriv" if as_root else "uid 65534 in a userns"
        facts.append(f"sandbox: bubblewrap at {bwrap}; scripts run as {who}")
        facts.append(f"user namespaces: {_userns_fact()}")
    facts.append(f"network: {settings.network}")
    cgroups: CgroupTree | None = None
    try:
        cgroups = find_tree()
        facts.append(f"limits: {cgroups.describe()}")
    except CgroupUnavailable as exc:
        problems.append(f"limits cannot be enforced: {exc}")
    facts.append(
        f"per task: {settings.memory_max_mb} MiB, {settings.pids_max} processes, "
        f"{settings.cpus:g} CPU, {settings.open_files_max} open files, files up to "
        f"{settings.file_size_max_mb} MiB, output {settings.output_max_bytes} bytes at "
        f"{settings.output_lines_per_s} lines/s"
    )
    isolation = Isolation(
        settings=settings,
        bwrap=bwrap,
        setpriv=setpriv,
        slirp4netns=slirp,
        as_root=as_root,
        uid=uid,
        gid=gid,
        cgroups=cgroups,
        read_only=_read_only(settings.python),
        problems=tuple(problems),
        facts=tuple(facts),
    )
    if bwrap is None or problems:
        return isolation
    trial = _trial(isolation)
    if trial is None:
        return _with(isolation, fact="trial: a sandboxed interpreter imported the script host")
    return _with(isolation, problem=f"a sandboxed interpreter failed: {trial}")


def _with(isolation: Isolation, fact: str | None = None, problem: str | None = None) -> Isolation:
    return replace(
        isolation,
        facts=isolation.facts + ((fact,) if fact else ()),
        problems=isolation.problems + ((problem,) if problem else ()),
    )


def _sandbox_problems(
    bwrap: str | None,
    setpriv: str,
    slirp: str | None,
    settings: ScriptSettings,
    as_root: bool,
    uid: int,
) -> list[str]:
    problems = []
    if bwrap is None:
        problems.append("bubblewrap is not installed (apt-get install bubblewrap)")
    if as_root and shutil.which(setpriv) is None:
        problems.append("setpriv is not installed (apt-get install util-linux)")
    if as_root and uid == 0:
        problems.append("key `scripts.user`: scripts must not run as root")
    if settings.network == "outbound" and slirp is None:
        problems.append(
            'key `scripts.network` = "outbound" needs slirp4netns (apt-get install slirp4netns)'
        )
    return problems


def _privileged() -> bool:
    """Whether the daemon may mount and switch users itself (root with its capabilities); a
    root without them sandboxes as any other user does, through a user namespace."""
    if os.geteuid() != 0:
        return False
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return False
    effective = next(
        (int(line.split()[1], 16) for line in status.splitlines() if line.startswith("CapEff:")), 0
    )
    return all(effective >> bit & 1 for bit in _SETUP_CAP_BITS)


def _userns_fact() -> str:
    try:
        limit = Path("/proc/sys/user/max_user_namespaces").read_text().strip()
    except OSError:
        return "unknown"
    return f"allowed (max {limit})" if limit != "0" else "disabled (max_user_namespaces = 0)"


def _read_only(python: str) -> tuple[Path, ...]:
    """The interpreter's install (and venv), and the agent package for editable installs."""
    paths = {
        Path(python).absolute().parents[1],
        Path(os.path.realpath(python)).parents[1],
        Path(agent.__file__).resolve().parent,
    }
    return tuple(sorted(paths))


def _trial(isolation: Isolation) -> str | None:
    """Start the interpreter sandboxed as a task would; None if it worked, else what it said."""
    with tempfile.TemporaryDirectory(prefix="device-agent-probe-") as tmp:
        task_dir = Path(tmp)
        os.chown(task_dir, isolation.uid, isolation.gid)
        spec = isolation.spec(task_dir)
        assert spec is not None
        command = [isolation.settings.python, "-c", "import agent.scripthost.host"]
        try:
            done = subprocess.run(
                bwrap_argv(spec, command),
                capture_output=True,
                timeout=TRIAL_TIMEOUT_S,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
    if done.returncode != 0:
        return done.stderr.decode(errors="replace").strip()[-500:] or f"exit {done.returncode}"
    return None
