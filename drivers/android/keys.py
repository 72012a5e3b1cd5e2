"""Key names a script may give `input_key` and `dpad`, as Android key codes.

Accepted: Android's names (`KEYCODE_ENTER`, `ENTER`, `enter`), the browser driver's names for the
same keys (`Enter`, `Backspace`, `ArrowUp`, `Escape`...) so a script ports between device kinds,
single letters and digits, and plain key codes ("66"). Anything else is refused by name.
"""

from __future__ import annotations

KEYCODES: dict[str, int] = {
    "HOME": 3, "BACK": 4, "CALL": 5, "ENDCALL": 6, "STAR": 17, "POUND": 18,
    "DPAD_UP": 19, "DPAD_DOWN": 20, "DPAD_LEFT": 21, "DPAD_RIGHT": 22, "DPAD_CENTER": 23,
    "VOLUME_UP": 24, "VOLUME_DOWN": 25, "POWER": 26, "CAMERA": 27, "CLEAR": 28,
    "COMMA": 55, "PERIOD": 56, "TAB": 61, "SPACE": 62, "ENTER": 66, "DEL": 67, "GRAVE": 68,
    "MINUS": 69, "EQUALS": 70, "LEFT_BRACKET": 71, "RIGHT_BRACKET": 72, "BACKSLASH": 73,
    "SEMICOLON": 74, "APOSTROPHE": 75, "SLASH": 76, "AT": 77, "MENU": 82, "SEARCH": 84,
    "MEDIA_PLAY_PAUSE": 85, "MEDIA_STOP": 86, "MEDIA_NEXT": 87, "MEDIA_PREVIOUS": 88,
    "PAGE_UP": 92, "PAGE_DOWN": 93, "ESCAPE": 111, "FORWARD_DEL": 112, "CTRL_LEFT": 113,
    "CAPS_LOCK": 115, "MOVE_HOME": 122, "MOVE_END": 123, "INSERT": 124, "VOLUME_MUTE": 164,
    "APP_SWITCH": 187, "SLEEP": 223, "WAKEUP": 224,
    **{chr(c): 29 + c - ord("A") for c in range(ord("A"), ord("Z") + 1)},
    **{str(d): 7 + d for d in range(10)},
    **{f"F{n}": 130 + n for n in range(1, 13)},
}  # fmt: skip

ALIASES: dict[str, str] = {
    "BACKSPACE": "DEL", "DELETE": "FORWARD_DEL", "ARROWUP": "DPAD_UP", "ARROWDOWN": "DPAD_DOWN",
    "ARROWLEFT": "DPAD_LEFT", "ARROWRIGHT": "DPAD_RIGHT", "UP": "DPAD_UP", "DOWN": "DPAD_DOWN",
    "LEFT": "DPAD_LEFT", "RIGHT": "DPAD_RIGHT", "CENTER": "DPAD_CENTER", "PAGEUP": "PAGE_UP",
    "PAGEDOWN": "PAGE_DOWN", "END": "MOVE_END", "RETURN": "ENTER", "RECENTS": "APP_SWITCH",
    "RECENT": "APP_SWITCH", "ESC": "ESCAPE", "CAPSLOCK": "CAPS_LOCK",
}  # fmt: skip

DPAD = {"up": 19, "down": 20, "left": 21, "right": 22, "center": 23}


class UnknownKey(ValueError):
    pass


def keycode(name: str) -> int:
    """The Android key code for a key name or number; UnknownKey (naming it) otherwise."""
    text = name.strip()
    if text.isdigit():
        code = int(text)
        if 0 < code < 400:
            return code
        raise UnknownKey(f"key code {code} is out of range (1-399)")
    key = text.upper().removeprefix("KEYCODE_")
    key = ALIASES.get(key, key)
    if key in KEYCODES:
        return KEYCODES[key]
    raise UnknownKey(
        f"unknown key {name!r}: use an Android key name (ENTER, BACK, DEL, DPAD_UP, A, 5, ...), "
        "a browser key name (Enter, Backspace, ArrowUp, ...) or a key code number"
    )
