"""The simulated phone's small in-memory filesystem: what sync and the shell read and write."""

from __future__ import annotations

import posixpath
import stat
import time
from dataclasses import dataclass, field

DEFAULT_DIRS = (
    "/sdcard",
    "/sdcard/Download",
    "/sdcard/Pictures",
    "/data",
    "/data/local",
    "/data/local/tmp",
    "/system",
    "/system/bin",
)


class FSError(Exception):
    """A failed file operation; the message reads like the phone's (`path: reason`)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass
class Entry:
    mode: int
    mtime: int
    data: bytearray | None = field(default=None)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else 4096


def normalize(path: str, cwd: str = "/") -> str:
    return posixpath.normpath(posixpath.join(cwd, path)).replace("//", "/")


class MemoryFS:
    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {"/": self._new_dir()}
        for path in DEFAULT_DIRS:
            self.mkdir(path, parents=True)

    @staticmethod
    def _new_dir() -> Entry:
        return Entry(mode=stat.S_IFDIR | 0o771, mtime=int(time.time()))

    def stat(self, path: str) -> Entry | None:
        return self._entries.get(normalize(path))

    def _require(self, path: str) -> Entry:
        entry = self.stat(path)
        if entry is None:
            raise FSError(path, "No such file or directory")
        return entry

    def listdir(self, path: str) -> list[tuple[str, Entry]]:
        """Entries of a directory, sorted by name, without `.` and `..`."""
        norm = normalize(path)
        if not self._require(path).is_dir:
            raise FSError(path, "Not a directory")
        prefix = norm.rstrip("/") + "/"
        children = [
            (name[len(prefix) :], entry)
            for name, entry in self._entries.items()
            if name.startswith(prefix) and "/" not in name[len(prefix) :] and name != prefix
        ]
        return sorted(children)

    def read(self, path: str) -> bytes:
        entry = self._require(path)
        if entry.data is None:
            raise FSError(path, "Is a directory")
        return bytes(entry.data)

    def write(
        self,
        path: str,
        data: bytes,
        *,
        mode: int = 0o644,
        mtime: int | None = None,
        append: bool = False,
        make_parents: bool = False,
    ) -> None:
        norm = normalize(path)
        parent = posixpath.dirname(norm)
        if make_parents:
            self.mkdir(parent, parents=True)
        parent_entry = self.stat(parent)
        if parent_entry is None:
            raise FSError(path, "No such file or directory")
        if not parent_entry.is_dir:
            raise FSError(path, "Not a directory")
        existing = self._entries.get(norm)
        if existing is not None and existing.data is None:
            raise FSError(path, "Is a directory")
        now = int(time.time()) if mtime is None else mtime
        if append and existing is not None and existing.data is not None:
            existing.data.extend(data)
            existing.mtime = now
            return
        self._entries[norm] = Entry(
            mode=stat.S_IFREG | (mode & 0o7777), mtime=now, data=bytearray(data)
        )

    def mkdir(self, path: str, *, parents: bool = False) -> None:
        norm = normalize(path)
        existing = self._entries.get(norm)
        if existing is not None:
            if existing.is_dir and parents:
                return
            raise FSError(path, "File exists")
        parent = posixpath.dirname(norm)
        if parent not in self._entries:
            if not parents:
                raise FSError(path, "No such file or directory")
            self.mkdir(parent, parents=True)
        elif not self._entries[parent].is_dir:
            raise FSError(path, "Not a directory")
        self._entries[norm] = self._new_dir()

    def remove(self, path: str, *, recursive: bool = False) -> None:
        norm = normalize(path)
        entry = self._require(path)
        if norm == "/":
            raise FSError(path, "Permission denied")
        if entry.is_dir:
            if not recursive:
                raise FSError(path, "Is a directory")
            prefix = norm + "/"
            for name in [n for n in self._entries if n.startswith(prefix)]:
                del self._entries[name]
        del self._entries[norm]
