"""Every file renamed into a folder, and by which process, as the kernel reports it (inotify).

The reporter writes each report file under a temporary name that carries its
process id (``.{name}.{pid}.tmp``) and renames it into place; inotify pairs the
two names of a rename by a cookie, so each write is seen once, with its writer,
however fast they come (no polling of final files that could miss a rewrite).
Linux only, through libc (no package needed).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
IN_Q_OVERFLOW = 0x00004000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name


@dataclass(frozen=True)
class Write:
    name: str  # the final name
    temporary: str  # the name it was written under


@dataclass
class FolderWrites:
    """Watch ``folder`` (it must exist); ``writes()`` are the renames into it so far."""

    folder: Path
    _fd: int = -1
    _from: dict[int, str] = field(default_factory=dict)
    _writes: list[Write] = field(default_factory=list)

    def __post_init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        mask = IN_MOVED_FROM | IN_MOVED_TO
        if libc.inotify_add_watch(self._fd, os.fsencode(self.folder), mask) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {self.folder}")

    def writes(self) -> list[Write]:
        """Every rename into the folder seen until now, in order."""
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return list(self._writes)
            self._parse(data)

    def writers_pid(self, write: Write) -> int:
        """The process that wrote it, from its temporary name ``.{name}.{pid}.tmp``."""
        return int(write.temporary.rsplit(".", 2)[-2])

    def close(self) -> None:
        os.close(self._fd)

    def _parse(self, data: bytes) -> None:
        offset = 0
        while offset < len(data):
            _, mask, cookie, length = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size
            name = data[offset : offset + length].rstrip(b"\0").decode()
            offset += length
            assert not mask & IN_Q_OVERFLOW, "inotify dropped events: the record is incomplete"
            if mask & IN_MOVED_FROM:
                self._from[cookie] = name
            elif mask & IN_MOVED_TO:
                self._writes.append(Write(name, self._from.pop(cookie, "")))
