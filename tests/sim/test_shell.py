"""The sim's shell interpreter on its own: quoting, status, operators, pipes, redirections."""

from __future__ import annotations

from drivers.sim.commands import COMMANDS
from drivers.sim.screen import Screen
from drivers.sim.shell import Interpreter
from drivers.sim.state import PhoneState, default_props


class Run:
    def __init__(self) -> None:
        self.state = PhoneState(props=default_props("Sim", "SIM1"), screen=Screen())
        self.interp = Interpreter(self.state, COMMANDS)

    async def __call__(self, line: str) -> tuple[int, str, str]:
        out = bytearray()
        err = bytearray()

        async def to_out(data: bytes) -> None:
            out.extend(data)

        async def to_err(data: bytes) -> None:
            err.extend(data)

        status = await self.interp.run(line, to_out, to_err)
        return status, out.decode(), err.decode()


async def test_quoting_and_status_expansion() -> None:
    run = Run()
    assert await run('echo \'single $? "q"\' "double $?" a\\ b') == (
        0,
        'single $? "q" double 0 a b\n',
        "",
    )
    assert await run("false; echo $?") == (0, "1\n", "")
    assert await run("nosuch; echo X4EXIT:$?") == (
        0,
        "X4EXIT:127\n",
        "/system/bin/sh: nosuch: not found\n",
    )


async def test_and_or_lists() -> None:
    run = Run()
    assert (await run("true && echo a || echo b"))[1] == "a\n"
    assert (await run("false && echo a || echo b"))[1] == "b\n"
    assert (await run("false && echo a; echo c"))[1] == "c\n"


async def test_pipes_and_redirections() -> None:
    run = Run()
    assert (await run("pm list packages | grep example | wc -l"))[1] == "2\n"
    assert await run("echo hi > /sdcard/a.txt; echo there >> /sdcard/a.txt; cat /sdcard/a.txt") == (
        0,
        "hi\nthere\n",
        "",
    )
    assert await run("ls /nowhere 2>/dev/null") == (1, "", "")
    status, out, _ = await run("ls /nowhere 2>&1")
    assert status == 1 and "No such file or directory" in out
    assert (await run("echo 'a;b' | grep -c ';'"))[1] == "1\n"


async def test_syntax_errors_are_reported() -> None:
    run = Run()
    status, _, err = await run("echo 'unterminated")
    assert status == 2 and "unterminated" in err
    status, _, err = await run("&& echo x")
    assert status == 2 and "syntax error" in err


async def test_app_commands_drive_the_screen() -> None:
    run = Run()
    screen = run.state.screen
    assert (await run("monkey -p com.example.list -c android.intent.category.LAUNCHER 1"))[0] == 0
    assert screen.current.package == "com.example.list"
    assert "com.example.list/com.example.list.ListActivity" in (await run("dumpsys window"))[1]
    assert (await run("am start -a android.intent.action.VIEW -d https://example.com"))[0] == 0
    assert screen.current.package == "com.android.browser"
    assert (await run("am force-stop com.android.browser"))[0] == 0
    assert screen.current.package == "com.example.list"
    status, _, err = await run("am start -n com.example.login/.Nope")
    assert status == 1 and "does not exist" in err
    assert (await run("monkey -p no.such.app 1"))[0] == 252


async def test_airplane_mode_by_cmd_or_by_setting() -> None:
    run = Run()

    def shown() -> list[str]:
        return [view.text for view in run.state.screen.tree().walk() if view.text]

    assert await run("cmd connectivity airplane-mode") == (0, "disabled\n", "")
    assert (await run("cmd connectivity airplane-mode enable"))[0] == 0
    assert await run("settings get global airplane_mode_on") == (0, "1\n", "")
    assert (await run("am start -a android.intent.action.VIEW -d https://example.com"))[0] == 0
    assert "No internet: ERR_INTERNET_DISCONNECTED" in shown()
    assert (await run("settings put global airplane_mode_on 0"))[0] == 0
    assert await run("cmd connectivity airplane-mode") == (0, "disabled\n", "")
    assert (await run("am start -a android.intent.action.VIEW -d https://example.com"))[0] == 0
    assert "Page: https://example.com" in shown()
    status, _, err = await run("cmd connectivity airplane-mode sideways")
    assert status == 255 and "usage: cmd connectivity airplane-mode" in err
    assert (await run("cmd wifi status"))[0] == 20
