"""agent/filenames.py: every hostile name a script could send becomes a plain, bounded base name."""

from __future__ import annotations

import unicodedata

import pytest

from agent.filenames import (
    FALLBACK_NAME,
    MAX_EXTENSION_BYTES,
    MAX_NAME_BYTES,
    file_name,
    safe_extension,
    safe_file_name,
    script_file_name,
)

HOSTILE = [
    "../../etc/passwd",
    "..\\..\\windows\\system32",
    "/absolute/path",
    "a/b/..",
    "..",
    ".",
    "",
    " . ",
    "/",
    "name\x00.jpg",
    "line\nbreak\rand\ttab",
    "rtl\u202eoverride",
    "trailing.",
    "a..b...c",
    "x" * 500,
    "é" * 200,
    "\u3000.\u3000",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_name_becomes_a_plain_bounded_base_name(name: str) -> None:
    safe = safe_file_name(name)
    assert safe
    assert "/" not in safe and "\\" not in safe and ".." not in safe
    assert safe not in (".", "..")
    assert not any(unicodedata.category(c).startswith("C") for c in safe)
    assert len(safe.encode()) <= MAX_NAME_BYTES
    assert safe_file_name(safe) == safe
    full = file_name(name, "/../" + name)
    assert "/" not in full and ".." not in full and not full.endswith(".")


def test_examples_keep_what_is_safe() -> None:
    assert safe_file_name("page") == "page"
    assert safe_file_name(".env") == ".env"
    assert safe_file_name("../../etc/passwd") == "passwd"
    assert safe_file_name("a\x00b") == "a_b"
    assert safe_file_name("..") == FALLBACK_NAME
    assert safe_extension(".jpg") == "jpg"
    assert safe_extension("tar.gz") == "tar.gz"
    assert safe_extension("../..") == ""
    assert len(safe_extension("j" * 50)) == MAX_EXTENSION_BYTES
    assert file_name("report.", ".csv") == "report.csv"
    assert file_name("notes", "") == "notes"


def test_a_job_named_after_its_script_file_gives_the_scripts_name() -> None:
    assert script_file_name("login_flow.py") == "login_flow.py"
    for name in ("demo", "login_flow.py.txt", "../x.py", "a/b.py", "tab\t.py"):
        assert script_file_name(name) is None, name
