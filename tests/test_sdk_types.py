"""An author's script type-checks against `agent.sdk` with mypy from a folder outside the repo.

The project is installed editable with a plain path entry (scripts/setup.sh), which static
checkers follow; nested results (records) have typed attributes, so typos and wrong types in
an author's use of them are caught.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

AUTHOR_SCRIPT = """
from agent.sdk import Agent


async def main(agent: Agent) -> dict[str, object]:
    sub = await agent.utils.job.add_sub_tasks([{"q": "a"}])
    planned: str = sub.inserted_ids[0].planned_task_id
    assigned = [a.assigned for a in sub.assignment_results or []]
    tasks = (await agent.utils.job.get_sub_tasks([planned])).tasks
    status: str = tasks[planned].status
    current = await agent.utils.job.get_current_task()
    me: str = current.parent_task_id
    adder: str | None = current.spawned_by
    shot = await agent.actions.screenshot(100, 100, 50)
    width: int = shot.compressedWidth
    root = await agent.actions.screen_content()
    left = root.children[0].bounds.left if root is not None else 0
    kind: str = (await agent.info.get_device_info()).kind
    wrong: int = sub.inserted_ids[0].planned_task_id
    typo = sub.inserted_ids[0].planed_task_id
    return {"a": assigned, "s": status, "m": me, "b": adder, "w": width, "l": left, "k": kind}
"""


def test_an_authors_script_type_checks_from_a_folder_outside_the_repo(tmp_path: Path) -> None:
    assert not tmp_path.is_relative_to(REPO)
    script = tmp_path / "author.py"
    script.write_text(textwrap.dedent(AUTHOR_SCRIPT))
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", script.name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    errors = done.stdout.splitlines()
    lines = AUTHOR_SCRIPT.splitlines()
    wrong = next(i for i, line in enumerate(lines, start=1) if "wrong: int" in line)
    typo = next(i for i, line in enumerate(lines, start=1) if "planed_task_id" in line)
    # Only the two planted mistakes: everything else is known to mypy, and precisely typed.
    assert errors == [
        f'author.py:{wrong}: error: Incompatible types in assignment (expression has type "str", '
        'variable has type "int")  [assignment]',
        f'author.py:{typo}: error: "InsertedId" has no attribute "planed_task_id"; maybe '
        '"planned_task_id"?  [attr-defined]',
    ], done.stdout + done.stderr
