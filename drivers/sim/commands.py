"""The commands the simulated phone's shell knows, with the output formats tools parse.

Outputs follow a real phone closely enough for adbutils and uiautomator2: `wm size`,
`dumpsys window` (current app), `dumpsys display` (rotation), `ps -A` (pids), `pm list packages`,
`toybox md5sum` (u2.jar check), and `app_process` (the uiautomator2 server's lifetime).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import stat
import time

from drivers.sim.apps import App
from drivers.sim.fs import FSError
from drivers.sim.screen import parse_keycode
from drivers.sim.shell import Builtin, Context
from drivers.sim.state import AIRPLANE_SETTING
from drivers.sim.u2server import AlreadyRunning
from drivers.sim.views import hierarchy_xml

U2_JAR = "/data/local/tmp/u2.jar"
U2_MAIN = "com.wetest.uia2.Main"
MAX_SLEEP = 600.0
INSTALL_TIME = "2024-01-01 00:00:00"


# -- basics ------------------------------------------------------------------------------------


async def echo(ctx: Context) -> int:
    args = ctx.args[1:]
    newline = True
    if args and args[0] == "-n":
        newline = False
        args = args[1:]
    await ctx.print(" ".join(args) + ("\n" if newline else ""))
    return 0


async def true(ctx: Context) -> int:
    return 0


async def false(ctx: Context) -> int:
    return 1


async def sleep(ctx: Context) -> int:
    try:
        seconds = float(ctx.args[1])
    except (IndexError, ValueError):
        return await ctx.fail("usage: sleep SECONDS")
    await asyncio.sleep(max(0.0, min(seconds, MAX_SLEEP)))
    return 0


async def ident(ctx: Context) -> int:
    await ctx.print("uid=2000(shell) gid=2000(shell) groups=2000(shell) context=u:r:shell:s0\n")
    return 0


async def whoami(ctx: Context) -> int:
    await ctx.print("shell\n")
    return 0


async def getprop(ctx: Context) -> int:
    props = ctx.state.props
    if len(ctx.args) == 1:
        await ctx.print("".join(f"[{k}]: [{v}]\n" for k, v in sorted(props.items())))
        return 0
    await ctx.print(props.get(ctx.args[1], ctx.args[2] if len(ctx.args) > 2 else "") + "\n")
    return 0


async def toybox(ctx: Context) -> int:
    if len(ctx.args) < 2:
        return await ctx.fail("usage: toybox COMMAND [ARGS...]")
    builtin = COMMANDS.get(ctx.args[1])
    if builtin is None or builtin is toybox:
        return await ctx.fail(f"Unknown command {ctx.args[1]}")
    ctx.args = ctx.args[1:]
    return await builtin(ctx)


# -- files -------------------------------------------------------------------------------------


async def md5sum(ctx: Context) -> int:
    status = 0
    for path in [a for a in ctx.args[1:] if not a.startswith("-")]:
        try:
            digest = hashlib.md5(ctx.state.fs.read(path)).hexdigest()
        except FSError as exc:
            status = await ctx.fail(str(exc))
            continue
        await ctx.print(f"{digest}  {path}\n")
    return status


async def cat(ctx: Context) -> int:
    paths = ctx.args[1:]
    if not paths:
        await ctx.out(ctx.stdin)
        return 0
    status = 0
    for path in paths:
        try:
            await ctx.out(ctx.state.fs.read(path))
        except FSError as exc:
            status = await ctx.fail(str(exc))
    return status


async def rm(ctx: Context) -> int:
    flags = "".join(a[1:] for a in ctx.args[1:] if a.startswith("-"))
    status = 0
    for path in [a for a in ctx.args[1:] if not a.startswith("-")]:
        try:
            ctx.state.fs.remove(path, recursive="r" in flags.lower())
        except FSError as exc:
            if not ("f" in flags and exc.reason == "No such file or directory"):
                status = await ctx.fail(str(exc))
    return status


async def mkdir(ctx: Context) -> int:
    parents = "-p" in ctx.args[1:]
    status = 0
    for path in [a for a in ctx.args[1:] if not a.startswith("-")]:
        try:
            ctx.state.fs.mkdir(path, parents=parents)
        except FSError as exc:
            status = await ctx.fail(str(exc))
    return status


async def touch(ctx: Context) -> int:
    status = 0
    for path in [a for a in ctx.args[1:] if not a.startswith("-")]:
        try:
            ctx.state.fs.write(path, b"", append=True)
        except FSError as exc:
            status = await ctx.fail(str(exc))
    return status


def _long_line(name: str, mode: int, size: int, mtime: int) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(mtime))
    return f"{stat.filemode(mode)} 1 shell shell {size:>8} {when} {name}\n"


async def ls(ctx: Context) -> int:
    flags = "".join(a[1:] for a in ctx.args[1:] if a.startswith("-"))
    paths = [a for a in ctx.args[1:] if not a.startswith("-")] or ["/"]
    fs = ctx.state.fs
    status = 0
    for path in paths:
        entry = fs.stat(path)
        if entry is None:
            status = await ctx.fail(f"{path}: No such file or directory")
            continue
        rows = fs.listdir(path) if entry.is_dir else [(path, entry)]
        if "a" in flags and entry.is_dir:
            rows = [(".", entry), *rows]
        if len(paths) > 1 and entry.is_dir:
            await ctx.print(f"{path}:\n")
        for name, child in rows:
            if "l" in flags:
                await ctx.print(_long_line(name, child.mode, child.size, child.mtime))
            else:
                await ctx.print(name + "\n")
    return status


# -- text filters (pipes) ----------------------------------------------------------------------


def _input_text(ctx: Context, paths: list[str]) -> str:
    if not paths:
        return ctx.stdin.decode("utf-8", "replace")
    return "".join(ctx.state.fs.read(p).decode("utf-8", "replace") for p in paths)


async def grep(ctx: Context) -> int:
    flags = ""
    rest: list[str] = []
    for arg in ctx.args[1:]:
        if arg.startswith("-") and not rest:
            flags += arg[1:]
        else:
            rest.append(arg)
    if not rest:
        return await ctx.fail("usage: grep [-ivcqEF] PATTERN [FILE...]", 2)
    pattern, paths = rest[0], rest[1:]
    try:
        text = _input_text(ctx, paths)
        regex = re.compile(
            re.escape(pattern) if "F" in flags else pattern, re.I if "i" in flags else 0
        )
    except (FSError, re.error) as exc:
        return await ctx.fail(str(exc), 2)
    hits = [line for line in text.splitlines() if bool(regex.search(line)) != ("v" in flags)]
    if "c" in flags:
        await ctx.print(f"{len(hits)}\n")
    elif "q" not in flags:
        await ctx.print("".join(line + "\n" for line in hits))
    return 0 if hits else 1


def _count_arg(ctx: Context) -> tuple[int, list[str]]:
    count, paths = 10, []
    args = ctx.args[1:]
    i = 0
    while i < len(args):
        if args[i] == "-n" and i + 1 < len(args):
            count = int(args[i + 1])
            i += 2
            continue
        if re.fullmatch(r"-\d+", args[i]):
            count = int(args[i][1:])
        else:
            paths.append(args[i])
        i += 1
    return count, paths


async def head(ctx: Context) -> int:
    try:
        count, paths = _count_arg(ctx)
        lines = _input_text(ctx, paths).splitlines(keepends=True)
    except (ValueError, FSError) as exc:
        return await ctx.fail(str(exc))
    await ctx.print("".join(lines[:count]))
    return 0


async def tail(ctx: Context) -> int:
    try:
        count, paths = _count_arg(ctx)
        lines = _input_text(ctx, paths).splitlines(keepends=True)
    except (ValueError, FSError) as exc:
        return await ctx.fail(str(exc))
    await ctx.print("".join(lines[-count:] if count else []))
    return 0


async def wc(ctx: Context) -> int:
    try:
        text = _input_text(ctx, [a for a in ctx.args[1:] if not a.startswith("-")])
    except FSError as exc:
        return await ctx.fail(str(exc))
    await ctx.print(f"{text.count(chr(10))}\n")
    return 0


# -- screen and input --------------------------------------------------------------------------


async def wm(ctx: Context) -> int:
    screen = ctx.state.screen
    sub = ctx.args[1] if len(ctx.args) > 1 else ""
    if sub == "size" and len(ctx.args) == 2:
        await ctx.print(f"Physical size: {screen.width}x{screen.height}\n")
        return 0
    if sub == "density" and len(ctx.args) == 2:
        await ctx.print(f"Physical density: {screen.density}\n")
        return 0
    return await ctx.fail(f"the sim only supports 'wm size' and 'wm density', not {ctx.args[1:]}")


def _numbers(values: list[str], count: int) -> list[float]:
    if len(values) < count:
        raise ValueError(f"expected {count} numbers")
    return [float(v) for v in values[:count]]


async def input_(ctx: Context) -> int:
    args = ctx.args[1:]
    while args and (
        args[0] in ("touchscreen", "touchpad", "keyboard", "mouse", "dpad") or args[0] == "-d"
    ):
        args = args[2:] if args[0] == "-d" else args[1:]
    if not args:
        return await ctx.fail("usage: input [tap|swipe|text|keyevent|draganddrop] ...")
    screen = ctx.state.screen
    sub, rest = args[0], args[1:]
    try:
        if sub == "tap":
            x, y = _numbers(rest, 2)
            screen.tap(x, y)
        elif sub in ("swipe", "draganddrop"):
            x1, y1, x2, y2 = _numbers(rest, 4)
            if abs(x2 - x1) < 20 and abs(y2 - y1) < 20:
                screen.tap(x1, y1)
            else:
                screen.swipe(x1, y1, x2, y2)
        elif sub == "text":
            if not rest:
                return await ctx.fail("usage: input text TEXT")
            screen.type_text(" ".join(rest).replace("%s", " "))
        elif sub == "keyevent":
            keys = [k for k in rest if k not in ("--longpress", "--doubletap")]
            codes = [parse_keycode(k) for k in keys]
            if not keys or None in codes:
                return await ctx.fail(f"Error: Unknown keycode in {keys}")
            for code in codes:
                assert code is not None
                screen.key(code)
        else:
            return await ctx.fail(f"Error: Unknown command: {sub}")
    except ValueError as exc:
        return await ctx.fail(f"Error: {exc}")
    return 0


async def screencap(ctx: Context) -> int:
    paths = [a for a in ctx.args[1:] if not a.startswith("-") and not a.isdigit()]
    png = ctx.state.screen.png()
    if not paths:
        await ctx.out(png)
        return 0
    try:
        ctx.state.fs.write(paths[0], png)
    except FSError as exc:
        return await ctx.fail(str(exc))
    return 0


async def uiautomator(ctx: Context) -> int:
    if len(ctx.args) < 2 or ctx.args[1] != "dump":
        return await ctx.fail("the sim only supports 'uiautomator dump [FILE]'")
    paths = [a for a in ctx.args[2:] if not a.startswith("-")]
    path = paths[0] if paths else "/sdcard/window_dump.xml"
    try:
        ctx.state.fs.write(path, hierarchy_xml(ctx.state.screen.tree()).encode())
    except FSError as exc:
        return await ctx.fail(f"ERROR: {exc}")
    await ctx.print(f"UI hierchary dumped to: {path}\n")
    return 0


# -- apps --------------------------------------------------------------------------------------


def _full_activity(app: App) -> str:
    return app.package + app.activity if app.activity.startswith(".") else app.activity


async def am(ctx: Context) -> int:
    sub = ctx.args[1] if len(ctx.args) > 1 else ""
    screen = ctx.state.screen
    if sub in ("start", "start-activity"):
        return await _am_start(ctx)
    if sub in ("force-stop", "kill") and len(ctx.args) > 2:
        package = ctx.args[-1]
        if sub == "force-stop" or screen.current.package != package:
            screen.force_stop(package)
        return 0
    if sub == "broadcast":
        action = _option(ctx.args[2:], "-a") or ""
        await ctx.print(
            f"Broadcasting: Intent {{ act={action} flg=0x400000 }}\nBroadcast completed: result=0\n"
        )
        return 0
    return await ctx.fail(f"the sim does not support 'am {sub}'")


def _option(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args[:-1]):
        if arg == name:
            return args[i + 1]
    return None


async def _am_start(ctx: Context) -> int:
    args = ctx.args[2:]
    screen = ctx.state.screen
    component = _option(args, "-n")
    action = _option(args, "-a")
    data = _option(args, "-d")
    if "-S" in args and component:
        screen.force_stop(component.split("/", 1)[0])
    if component:
        package, _, activity = component.partition("/")
        app = screen.apps.get(package)
        if activity.startswith(package + "."):
            activity = activity[len(package) :]
        if app is None or activity not in ("", app.main_activity):
            await ctx.print(f"Starting: Intent {{ cmp={component} }}\n")
            await ctx.err(f"Error: Activity class {{{component}}} does not exist.\n".encode())
            return 1
        screen.launch(package)
        await ctx.print(f"Starting: Intent {{ cmp={package}/{app.main_activity} }}\n")
    elif action == "android.intent.action.VIEW" and data:
        screen.open_url(data)
        await ctx.print(f"Starting: Intent {{ act={action} dat={data} }}\n")
    else:
        await ctx.err(b"Error: the sim starts activities by -n COMPONENT or -a VIEW -d URL\n")
        return 1
    if "-W" in args:
        current = screen.current
        await ctx.print(
            f"Status: ok\nLaunchState: COLD\nActivity: {current.package}/{current.activity}\n"
            "TotalTime: 120\nWaitTime: 125\nComplete\n"
        )
    return 0


async def monkey(ctx: Context) -> int:
    package = _option(ctx.args[1:], "-p")
    screen = ctx.state.screen
    app = screen.apps.get(package or "")
    if app is None or not app.launchable:
        await ctx.err(b"** No activities found to run, monkey aborted.\n")
        return 252
    screen.launch(app.package)
    await ctx.print("  bash arg: -p\n  bash arg: " + app.package + "\nEvents injected: 1\n")
    await ctx.print(
        "## Network stats: elapsed time=12ms (0ms mobile, 0ms wifi, 12ms not connected)\n"
    )
    return 0


def _is_third_party(package: str) -> bool:
    return not package.startswith("com.android.")


async def pm(ctx: Context) -> int:
    sub = ctx.args[1] if len(ctx.args) > 1 else ""
    screen = ctx.state.screen
    rest = ctx.args[2:]
    if sub == "list" and rest[:1] == ["packages"]:
        flags = [a for a in rest[1:] if a.startswith("-")]
        filters = [a for a in rest[1:] if not a.startswith("-")]
        names = screen.packages()
        if "-3" in flags:
            names = [n for n in names if _is_third_party(n)]
        if "-s" in flags:
            names = [n for n in names if not _is_third_party(n)]
        names = [n for n in names if all(f in n for f in filters)]
        await ctx.print("".join(f"package:{n}\n" for n in names))
        return 0
    package = rest[-1] if rest else ""
    if sub in ("clear", "path", "grant", "revoke", "dump") and package not in screen.packages():
        if sub == "clear":
            await ctx.print("Failed\n")
        return 1
    if sub == "clear":
        screen.force_stop(package)
        await ctx.print("Success\n")
        return 0
    if sub == "path":
        where = "data/app" if _is_third_party(package) else "system/priv-app"
        await ctx.print(f"package:/{where}/{package}-1/base.apk\n")
        return 0
    if sub in ("grant", "revoke"):
        return 0
    if sub == "dump":
        await ctx.print(_package_dump(package))
        return 0
    return await ctx.fail(f"the sim does not support 'pm {sub}'")


def _package_dump(package: str) -> str:
    return (
        f"Packages:\n  Package [{package}] (5a1e7c2):\n    versionCode=1 minSdk=24 targetSdk=33\n"
        f"    versionName=1.0\n    firstInstallTime={INSTALL_TIME}\n"
        f"    lastUpdateTime={INSTALL_TIME}\n    pkgFlags=[ HAS_CODE ALLOW_CLEAR_USER_DATA ]\n"
    )


async def dumpsys(ctx: Context) -> int:
    service = ctx.args[1] if len(ctx.args) > 1 else ""
    state = ctx.state
    screen = state.screen
    app = screen.current
    component = f"{app.package}/{_full_activity(app)}"
    pid = screen.running.get(app.package, 0)
    if service == "window":
        await ctx.print(
            "WINDOW MANAGER WINDOWS (dumpsys window windows)\n"
            f"  mCurrentFocus=Window{{5f3c2a1 u0 {component}}}\n"
            f"  mFocusedApp=ActivityRecord{{8e4d1b0 u0 {component} t{pid % 100}}}\n"
        )
    elif service == "activity":
        await ctx.print(
            f"  mResumedActivity: ActivityRecord{{8e4d1b0 u0 {component} t{pid % 100}}}\n"
            f"TASK {app.package} id={pid % 100}\n  ACTIVITY {component} 3b2a1c0 pid={pid}\n"
        )
    elif service == "display":
        w, h = screen.width, screen.height
        await ctx.print(
            "DISPLAY MANAGER (dumpsys display)\n"
            f"  DisplayViewport{{valid=true, type=INTERNAL, orientation=0, "
            f"logicalFrame=Rect(0, 0 - {w}, {h}), deviceWidth={w}, deviceHeight={h}}}\n"
        )
    elif service == "package" and len(ctx.args) > 2:
        if ctx.args[2] in screen.packages():
            await ctx.print(_package_dump(ctx.args[2]))
    elif service == "power":
        on = screen.screen_on
        await ctx.print(
            f"  mWakefulness={'Awake' if on else 'Asleep'}\n"
            f"  mHoldingDisplaySuspendBlocker={'true' if on else 'false'}\n"
        )
    elif service == "battery":
        await ctx.print(
            "Current Battery Service state:\n  AC powered: false\n  USB powered: true\n"
            "  Wireless powered: false\n  status: 2\n  health: 2\n  present: true\n"
            "  level: 100\n  scale: 100\n  voltage: 4200\n  temperature: 250\n"
            "  technology: Li-ion\n"
        )
    else:
        await ctx.print(f"Can't find service: {service}\n")
    return 0


async def ps(ctx: Context) -> int:
    lines = ["USER           PID  PPID     VSZ    RSS WCHAN            ADDR S NAME"]
    system = [
        ("root", 1, 0, "init"),
        ("system", 600, 1, "system_server"),
        ("shell", 900, 1, "adbd"),
    ]
    for user, pid, ppid, name in system:
        lines.append(f"{user:<10} {pid:>5} {ppid:>5} 1000000  10000 0                   0 S {name}")
    for package, pid in sorted(ctx.state.screen.running.items(), key=lambda item: item[1]):
        lines.append(
            f"u0_a{pid % 1000:<6} {pid:>5}   300 1000000  50000 0                   0 S {package}"
        )
    await ctx.print("\n".join(lines) + "\n")
    return 0


async def pidof(ctx: Context) -> int:
    pids = [str(ctx.state.screen.running[n]) for n in ctx.args[1:] if n in ctx.state.screen.running]
    if not pids:
        return 1
    await ctx.print(" ".join(pids) + "\n")
    return 0


async def settings(ctx: Context) -> int:
    args = ctx.args[1:]
    store = ctx.state.settings
    if len(args) == 3 and args[0] == "get":
        await ctx.print(store.get(f"{args[1]}/{args[2]}", "null") + "\n")
        return 0
    if len(args) == 4 and args[0] == "put":
        key = f"{args[1]}/{args[2]}"
        if key == AIRPLANE_SETTING:
            # The sim applies the setting at once (a phone also needs the AIRPLANE_MODE
            # broadcast for its radios to follow; `cmd connectivity` does both).
            ctx.state.set_airplane(args[3] == "1")
        else:
            store[key] = args[3]
        return 0
    if len(args) == 2 and args[0] == "list":
        prefix = args[1] + "/"
        await ctx.print(
            "".join(
                f"{k[len(prefix) :]}={v}\n"
                for k, v in sorted(store.items())
                if k.startswith(prefix)
            )
        )
        return 0
    return await ctx.fail("usage: settings get|put|list NAMESPACE [KEY [VALUE]]")


async def cmd(ctx: Context) -> int:
    """`cmd connectivity airplane-mode [enable|disable]`, the only service call the sim knows."""
    args = ctx.args[1:]
    if args[:1] != ["connectivity"]:
        return await ctx.fail(f"Can't find service: {args[0] if args else ''}", status=20)
    if args[1:] == ["airplane-mode"]:
        await ctx.print("enabled\n" if ctx.state.airplane else "disabled\n")
        return 0
    if args[1:2] == ["airplane-mode"] and args[2:] in (["enable"], ["disable"]):
        ctx.state.set_airplane(args[2] == "enable")
        return 0
    return await ctx.fail("usage: cmd connectivity airplane-mode [enable|disable]", status=255)


async def ime(ctx: Context) -> int:
    args = ctx.args[1:]
    current = ctx.state.settings["secure/default_input_method"]
    if args[:1] == ["list"]:
        await ctx.print(current + "\n")
        return 0
    if args[:1] in (["set"], ["enable"]) and len(args) == 2:
        if args[1] != current:
            return await ctx.fail(f"Unknown input method {args[1]} cannot be selected")
        await ctx.print(f"Input method {current} selected for user #0\n")
        return 0
    return await ctx.fail("usage: ime list|set|enable ID")


# -- the uiautomator2 server -------------------------------------------------------------------


async def app_process(ctx: Context) -> int:
    rest = [a for a in ctx.args[1:] if a != "/"]
    classpath = ctx.env.get("CLASSPATH", "")
    if not rest or rest[0] != U2_MAIN or classpath != U2_JAR:
        await ctx.err(f"Error: Could not find class '{rest[0] if rest else ''}'\n".encode())
        return 1
    if ctx.state.fs.stat(U2_JAR) is None:
        await ctx.err(f"java.lang.ClassNotFoundException: {U2_MAIN} (no {U2_JAR})\n".encode())
        return 1
    port_text = _option(rest, "-p") or "9008"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        await ctx.err(f"bad port {port_text!r}\n".encode())
        return 1
    server = ctx.state.u2
    try:
        if ctx.state.faults.uiautomation_held:
            raise AlreadyRunning("another UiAutomation client holds the service")
        stopped = server.start(int(port_text))
    except AlreadyRunning:
        await ctx.print("[server] INFO: [UiAutomator2Server] Starting Server\n")
        await ctx.err(
            b"java.lang.IllegalStateException: UiAutomationService "
            b"android.accessibilityservice.IAccessibilityServiceClient$Stub$Proxy@5deffd5"
            b"already registered!\n"
        )
        return 1
    try:
        await ctx.print("[server] INFO: [UiAutomator2Server] Starting Server\n")
        await stopped.wait()
    finally:
        # The shell stream closing (host or transport gone) ends the process, as on a phone.
        server.stop()
    return 137


COMMANDS: dict[str, Builtin] = {
    "echo": echo,
    "true": true,
    "false": false,
    "sleep": sleep,
    "id": ident,
    "whoami": whoami,
    "getprop": getprop,
    "toybox": toybox,
    "md5sum": md5sum,
    "md5": md5sum,
    "cat": cat,
    "rm": rm,
    "mkdir": mkdir,
    "touch": touch,
    "ls": ls,
    "grep": grep,
    "head": head,
    "tail": tail,
    "wc": wc,
    "wm": wm,
    "input": input_,
    "screencap": screencap,
    "uiautomator": uiautomator,
    "am": am,
    "monkey": monkey,
    "pm": pm,
    "dumpsys": dumpsys,
    "ps": ps,
    "pidof": pidof,
    "settings": settings,
    "ime": ime,
    "cmd": cmd,
    "app_process": app_process,
}
