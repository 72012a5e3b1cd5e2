"""`File`: one file for `submit_task`, with helpers that build it from bytes or from a path.

`agent.files` is this class, so a script needs no import:
`agent.files.from_bytes("page", "jpg", data)` or `agent.files.from_path("out/report.csv")`.
A plain dict `{"name", "extension", "base64Data"}` is accepted wherever a File is.
"""

from __future__ import annotations

import base64
from pathlib import Path

from agent.scriptrpc import FileParam


class File(FileParam):
    @classmethod
    def from_bytes(cls, name: str, extension: str, data: bytes) -> File:
        """A file named `name.extension` holding `data` (extension with or without its dot);
        ValueError if `data` is empty."""
        if not data:
            raise ValueError(f"files.from_bytes: data for {name!r} is empty: a file needs bytes")
        return cls(name=name, extension=extension, base64Data=base64.b64encode(data).decode())

    @classmethod
    def from_path(
        cls, path: str | Path, name: str | None = None, extension: str | None = None
    ) -> File:
        """The file at `path`; name and extension default to the path's stem and suffix."""
        p = Path(path)
        ext = p.suffix if extension is None else extension
        return cls.from_bytes(p.stem if name is None else name, ext, p.read_bytes())
