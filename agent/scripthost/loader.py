"""Loading the user's script and describing its errors in terms of the script alone."""

from __future__ import annotations

import contextlib
import inspect
import io
import linecache
import sys
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_ERROR_CHARS = 20_000
"""Errors are cut to this length: a script's exception message can be arbitrarily long."""


class LoadError(Exception):
    """The script cannot be run; the message says where and why."""


def load_main(path: Path, name: str) -> Callable[..., Any]:
    """Execute the script at `path` as module `script`, its file named `name` in tracebacks and
    errors (the author's file name); its `main`, checked to take one argument."""
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadError(f"{name}: cannot read the script: {exc}") from None
    # The script's frames are told apart from ours by this file name; linecache gets the source
    # so traceback lines show even if the script changes directory.
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    try:
        code = compile(source, name, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise LoadError(f"{name} line {exc.lineno}: {type(exc).__name__}: {exc.msg}") from None
    module = types.ModuleType("script")
    module.__file__ = str(path)
    sys.modules["script"] = module
    try:
        exec(code, module.__dict__)
    except BaseException as exc:
        frames = _script_frames(exc, name)
        where = f"{name} line {frames[-1].lineno}" if frames else name
        raise LoadError(_cut(f"{where}: {_headline(exc)}")) from None
    main: Callable[..., Any] | None = module.__dict__.get("main")
    if not callable(main):
        raise LoadError(f"{name} defines no main(agent)")
    try:
        signature = inspect.signature(main)
    except (TypeError, ValueError):
        return main  # a callable without a signature (a C function): let the call decide
    try:
        signature.bind(None)
    except TypeError:
        raise LoadError(
            f"{name}: main must take one argument (agent), it is main{signature}"
        ) from None
    return main


def describe_exception(exc: BaseException, script_name: str) -> str:
    """`Type: message` and the traceback frames that belong to the script, none of ours."""
    text = _headline(exc)
    frames = _script_frames(exc, script_name)
    if frames:
        text += "\nTraceback (script frames, most recent call last):\n"
        text += "".join(traceback.format_list(frames)).rstrip("\n")
    return _cut(text)


def _headline(exc: BaseException) -> str:
    message = str(exc)
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text + _suggestion(exc, message)


def _suggestion(exc: BaseException, message: str) -> str:
    """Python's `. Did you mean: 'tap'?` for a misspelt name or attribute, else "".

    Python computes it (from the exception's `name` and `obj`, or the names its frame sees) only
    as it prints an exception: before 3.12 in C, with no Python interface. So the exception is
    printed, as the interpreter would, into a buffer, and what follows its message is kept.
    """
    if not isinstance(exc, NameError | AttributeError | ImportError) or not message:
        return ""
    if getattr(exc, "name", None) is None:
        return ""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):
            sys.__excepthook__(type(exc), exc, exc.__traceback__)
    except Exception:
        return ""
    _, found, after = printed.getvalue().rpartition(message)
    hint = after.partition("\n")[0]
    return hint if found and hint.startswith(". Did you ") else ""


def _script_frames(exc: BaseException, script_name: str) -> list[traceback.FrameSummary]:
    return [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == script_name]


def _cut(text: str) -> str:
    if len(text) <= MAX_ERROR_CHARS:
        return text
    return text[:MAX_ERROR_CHARS] + f"... ({len(text) - MAX_ERROR_CHARS} more characters)"
