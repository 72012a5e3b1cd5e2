"""Safe file names: whatever a script calls a file is reduced to a plain base name before use.

Applied where names enter (the SDK's and the daemon's file model, agent/scriptrpc.py), where the
coordinator stores and serves files, and where the local runner saves them, so a name can never
lead outside the folder it is written to. A reduced name has no folder part (`/`, `\\`), no
`..`, no NUL or other control or format character, is at most MAX_NAME_BYTES of UTF-8, and is
never empty or `.` (FALLBACK_NAME instead). Reducing a reduced name changes nothing.
"""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_BYTES = 120
"""Longest name in UTF-8 bytes: with an extension and the local runner's `dump-<id>-` prefix a
file name stays well under the usual 255-byte limit of file systems."""
MAX_EXTENSION_BYTES = 20
FALLBACK_NAME = "file"
SCRIPT_SUFFIX = ".py"

_FOLDER_SEPARATORS = re.compile(r"[/\\]")
_DOT_RUNS = re.compile(r"\.{2,}")
_ONLY_BLANKS_AND_DOTS = re.compile(r"[\s.]*")
_LEADING_BLANKS_AND_DOTS = re.compile(r"\A[\s.]+")
_TRAILING_BLANKS_AND_DOTS = re.compile(r"[\s.]+\Z")


def _without_controls(text: str) -> str:
    # Category C* is control, format (bidi overrides, zero-width), surrogate, private, unassigned.
    return "".join("_" if unicodedata.category(c).startswith("C") else c for c in text)


def _truncate(text: str, max_bytes: int) -> str:
    return text.encode()[:max_bytes].decode(errors="ignore")


def _reduce(text: str, max_bytes: int) -> str:
    """The last folder component that is more than blanks and dots, dot runs made single."""
    parts = _FOLDER_SEPARATORS.split(_without_controls(text))
    kept = [part for part in parts if not _ONLY_BLANKS_AND_DOTS.fullmatch(part)]
    if not kept:
        return ""
    base = _TRAILING_BLANKS_AND_DOTS.sub("", _DOT_RUNS.sub(".", kept[-1].strip()))
    # A trailing dot would meet the extension's dot as `..`: strip again after the cut.
    return _TRAILING_BLANKS_AND_DOTS.sub("", _truncate(base, max_bytes))


def safe_file_name(name: str) -> str:
    """`name` as a plain base name (see the module docstring), FALLBACK_NAME if nothing is left."""
    return _reduce(name, MAX_NAME_BYTES) or FALLBACK_NAME


def safe_extension(extension: str) -> str:
    """`extension` without leading dots, reduced like a name; may be empty (no extension)."""
    return _LEADING_BLANKS_AND_DOTS.sub("", _reduce(extension, MAX_EXTENSION_BYTES))


def file_name(name: str, extension: str) -> str:
    """The safe `name.extension` (just the name when the extension is empty)."""
    ext = safe_extension(extension)
    return f"{safe_file_name(name)}.{ext}" if ext else safe_file_name(name)


def script_file_name(job_name: str) -> str | None:
    """The file name a job's script is shown under (tracebacks, errors): the job's name when it
    is a plain file name ending in `.py` (`device-agent script run FILE` names its job after
    FILE), else None (the script is then `script.py`)."""
    if job_name.endswith(SCRIPT_SUFFIX) and safe_file_name(job_name) == job_name:
        return job_name
    return None
