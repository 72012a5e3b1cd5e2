"""The sim through the real adb server: connect, shell (raw and v2), sync, screencap, input."""

from __future__ import annotations

import io
import stat
from pathlib import Path

from PIL import Image

from tests.sim.conftest import AdbServer, SimHandle


def test_connected_phone_is_listed_as_device(adb_server: AdbServer, sim_phone: SimHandle) -> None:
    assert adb_server.devices()[sim_phone.serial] == "device"
    out = adb_server.run("-s", sim_phone.serial, "shell", "getprop", "ro.product.model")
    assert out.stdout.strip() == "Sim"


def test_shell_raw_v1_exit_codes_and_v2_streams(
    adb_server: AdbServer, sim_phone: SimHandle
) -> None:
    device = adb_server.client().device(sim_phone.serial)
    assert device.shell("echo 'a  b' \"$?\"; echo done") == "a  b 0\ndone"
    assert device.shell2("false").returncode == 1
    missing = device.shell2("nosuchcmd --flag")
    assert missing.returncode == 127
    assert "nosuchcmd: not found" in missing.output
    assert device.shell2("true && echo yes || echo no").output == "yes\n"
    v2 = device.shell2("echo out; ls /nowhere", v2=True)
    assert v2.returncode == 1
    assert v2.stdout == "out\n"
    assert "No such file or directory" in v2.stderr
    assert device.shell2("dumpsys window | grep -c mCurrentFocus").output.strip() == "1"
    # The adb command line uses shell v2 and passes the exit status through.
    assert adb_server.run("-s", sim_phone.serial, "shell", "false").returncode == 1


def test_sync_push_pull_list_stat(
    adb_server: AdbServer, sim_phone: SimHandle, tmp_path: Path
) -> None:
    device = adb_server.client().device(sim_phone.serial)
    payload = bytes(range(256)) * 1000  # several adb packets and sync DATA chunks
    assert device.sync.push(payload, "/sdcard/Download/blob.bin", check=True) == len(payload)
    info = device.sync.stat("/sdcard/Download/blob.bin")
    assert info.size == len(payload) and stat.S_ISREG(info.mode)
    names = [entry.path for entry in device.sync.list("/sdcard/Download")]
    assert "blob.bin" in names
    assert device.sync.read_bytes("/sdcard/Download/blob.bin") == payload
    assert device.shell("toybox md5sum /sdcard/Download/blob.bin").startswith(
        __import__("hashlib").md5(payload).hexdigest()
    )
    # The adb command line's own sync client.
    local = tmp_path / "up.txt"
    local.write_text("hello sim\n")
    assert (
        adb_server.run(
            "-s", sim_phone.serial, "push", str(local), "/data/local/tmp/up.txt"
        ).returncode
        == 0
    )
    back = tmp_path / "down.txt"
    assert (
        adb_server.run(
            "-s", sim_phone.serial, "pull", "/data/local/tmp/up.txt", str(back)
        ).returncode
        == 0
    )
    assert back.read_text() == "hello sim\n"
    device.shell("rm /data/local/tmp/up.txt")
    assert device.sync.stat("/data/local/tmp/up.txt").mtime is None


def test_screencap_and_input_change_the_screen(adb_server: AdbServer, sim_phone: SimHandle) -> None:
    device = adb_server.client().device(sim_phone.serial)
    shot = device.screenshot(error_ok=False)
    assert shot.size == (720, 1280)
    assert device.window_size() == (720, 1280)
    assert device.app_current().package == "com.android.launcher3"
    device.app_start("com.example.login")
    assert device.app_current().package == "com.example.login"
    device.click(360, 290)  # the username field
    device.send_keys("demo")
    device.shell("input tap 360 430; input text secret; input keyevent KEYCODE_ENTER")
    xml = device.shell("uiautomator dump /sdcard/ui.xml && cat /sdcard/ui.xml")
    assert 'text="Welcome, demo"' in xml
    png = device.shell("screencap -p", encoding=None)
    assert Image.open(io.BytesIO(png)).size == (720, 1280)
    device.keyevent("HOME")
    assert device.app_current().package == "com.android.launcher3"
