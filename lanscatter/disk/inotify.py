"""Linux inotify, asked only for what changes a folder's content.

watchfiles (Rust notify) also asks for open and close-after-read events: a master's first scan of
100,000 small files opens and closes each one, and handling those events took a third of that
scan's time (docs/benchmarks.md). The master rescans the whole folder on any change, so this
watcher only says *that* something changed, never what. It keeps a watch on every folder, adding
those created or moved in; paths are bytes, so a name that is not UTF-8 is watched like any other.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import struct
from pathlib import Path

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_ISDIR = 0x40000000

# What changes content, names or metadata (no IN_OPEN, IN_ACCESS or IN_CLOSE_NOWRITE: reading is
# no change). IN_MODIFY as well as IN_CLOSE_WRITE: a file written for a long time is changing all
# along, and an on-change source waits for it to settle.
CHANGES = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
           | IN_DELETE_SELF | IN_MOVE_SELF)
_EVENT = struct.Struct("iIII")          # wd, mask, cookie, length of the name that follows
_READ = 256 * 1024                      # (thousands of events a read: a watcher reads them in batches)


class _Libc:
    """inotify_init1 and inotify_add_watch, loaded on first use (this module is imported on any
    POSIX host; only Linux has them)."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.init1 = libc.inotify_init1
        self.init1.argtypes, self.init1.restype = [ctypes.c_int], ctypes.c_int
        self.add_watch = libc.inotify_add_watch
        self.add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self.add_watch.restype = ctypes.c_int
        self.rm_watch = libc.inotify_rm_watch
        self.rm_watch.argtypes, self.rm_watch.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int


_libc: _Libc | None = None


def _lib() -> _Libc:
    global _libc
    if _libc is None:
        _libc = _Libc()
    return _libc


class FolderInotify:
    """Watches on `root` and every folder below it (symlinks not followed, but for `root`).
    OSError: `root` cannot be watched, or the system's limit on watches was reached."""

    def __init__(self, root: Path) -> None:
        lib = _lib()
        self._root = os.fsencode(root)
        fd = lib.init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise _error(ctypes.get_errno(), "cannot start a file watcher", self._root)
        self.fd = fd
        self._dirs: dict[int, bytes] = {}       # watch -> the folder's path, to join new names to
        self._root_wd = -1
        try:
            self._add_tree(self._root, root=True)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def watching(self) -> int:
        return len(self._dirs)

    def read(self) -> bool:
        """Take what events are queued; whether any is a change. Folders made or moved in get
        their watches here (a file written into one before its watch is in place is still within
        the change its folder's creation is). RuntimeError: `root` itself is gone."""
        try:
            data = os.read(self.fd, _READ)
        except BlockingIOError:
            return False
        changed = False
        pos = 0
        while pos + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, pos)
            name = data[pos + _EVENT.size:pos + _EVENT.size + length].rstrip(b"\0")
            pos += _EVENT.size + length
            if mask & IN_Q_OVERFLOW:                # events were lost, folders made among them
                self._add_tree(self._root, root=True)
                changed = True
                continue
            if wd == self._root_wd and mask & (IN_IGNORED | IN_MOVE_SELF):
                # (moved away, its watch would follow it: watched again by its path, by the caller)
                raise RuntimeError(f"the watched folder {os.fsdecode(self._root)} was moved or deleted")
            if mask & IN_IGNORED:                   # a folder went (or was unmounted)
                self._dirs.pop(wd, None)
                continue
            if mask & IN_ISDIR and (parent := self._dirs.get(wd)) is not None:
                if mask & IN_MOVED_FROM:            # (moved within, it is watched again as it arrives)
                    self._forget_tree(os.path.join(parent, name))
                elif mask & (IN_CREATE | IN_MOVED_TO):
                    self._add_tree(os.path.join(parent, name))
            changed = changed or bool(mask & CHANGES)
        return changed

    def _add_tree(self, top: bytes, *, root: bool = False) -> None:
        """Watch `top` and every folder below it; `root` is followed if a symlink, and must be
        watched."""
        wd = self._add(top, follow=root, required=root)
        if root:
            self._root_wd = wd
        for dirpath, dirnames, _ in os.walk(top, followlinks=False):
            for d in dirnames:
                self._add(os.path.join(dirpath, d), follow=False, required=False)

    def _forget_tree(self, top: bytes) -> None:
        """Stop watching `top` and the folders below it: moved out of the tree, their watches
        would follow them, and a folder still written to elsewhere would keep the source from
        ever settling."""
        below = top + b"/"
        for wd, path in list(self._dirs.items()):
            if path == top or path.startswith(below):
                del self._dirs[wd]
                _lib().rm_watch(self.fd, wd)

    def _add(self, path: bytes, *, follow: bool, required: bool) -> int:
        """The watch of `path`, -1 where there is none."""
        mask = CHANGES | IN_ONLYDIR | (0 if follow else IN_DONT_FOLLOW)
        wd = _lib().add_watch(self.fd, path, mask)
        if wd >= 0:
            self._dirs[wd] = path             # (a folder watched again, moved: its new path)
            return wd
        err = ctypes.get_errno()
        if err == errno.ENOSPC:
            raise _error(err, "the system's limit on inotify watches was reached (raise the sysctl "
                              "fs.inotify.max_user_watches) while watching", path)
        if required:
            raise _error(err, "cannot watch", path)
        # A folder gone again since it was listed, a symlink (IN_DONT_FOLLOW|IN_ONLYDIR), one not
        # readable: not watched; the periodic rescan still sees it.
        return -1


def _error(err: int, what: str, path: bytes) -> OSError:
    return OSError(err, f"{what} {os.fsdecode(path)}: {os.strerror(err)}")


def wait_readable(fd: int, timeout_s: float) -> bool:
    """Whether `fd` has events within `timeout_s` (poll: no limit on the descriptor's number)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0, int(timeout_s * 1000))))
