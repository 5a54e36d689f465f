"""Applying image layers to a root directory, in order, without ever leaving it.

A layer is a tar of changes (OCI image-spec "layer"): entries to create or replace, `.wh.NAME`
whiteouts deleting NAME from the layers below, and `.wh..wh..opq` markers making a directory
opaque (what lies below is hidden). The archive is hostile until proven otherwise, so:

- every path is relative and free of `..` (else refused), and its parent directory is opened with
  openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): a symlink an earlier entry or layer planted is
  never followed, it is refused (the symlink-then-write attack image unpackers keep being fixed for);
- every entry is created with O_EXCL/mkdirat/symlinkat/mknodat/linkat relative to that parent fd:
  an existing name (a symlink, a FIFO, a device node) is unlinked first, never opened or written
  through; hard link targets are resolved the same way, so they can only name files of the root;
- owners, modes (setuid bits included: chown first, then chmod, then xattrs, since chown clears
  both) and xattrs are set on the open fd or with AT_SYMLINK_NOFOLLOW.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import stat
from collections.abc import Iterable

from pyrt import tarstream
from pyrt.errors import PyrtError

RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, RESOLVE_BENEATH, RESOLVE_IN_ROOT = 0x02, 0x04, 0x08, 0x10
_SYS_OPENAT2 = 437
_NO_SYMLINKS = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS  # for every parent directory of an entry
WHITEOUT, OPAQUE = ".wh.", ".wh..wh..opq"
_DEVICE_TYPES = {tarstream.CHAR: stat.S_IFCHR, tarstream.BLOCKDEV: stat.S_IFBLK, tarstream.FIFO: stat.S_IFIFO}
# SELinux labels belong to the host's policy; overlayfs keeps its own bookkeeping in these
_SKIPPED_XATTRS = ("security.selinux", "trusted.overlay.", "user.overlay.")


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)


def openat2(dir_fd: int, path: str, flags: int, resolve: int) -> int:
    """openat2(2): open `path` below `dir_fd` under the RESOLVE_* rules (OSError on failure)."""
    how = _OpenHow(flags | os.O_CLOEXEC, 0, resolve)
    fd = _libc.syscall(_SYS_OPENAT2, dir_fd, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return fd


class Refused(PyrtError):
    """An entry that would leave the root or write through something it must not."""


def split(name: str, what: str = "the path") -> list[str]:
    """The components of a relative archive path (`./` and `//` tolerated, `..` and `/x` refused)."""
    if name.startswith("/"):
        raise Refused(f"{what} is absolute")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Refused(f"{what} leaves the root ('..')")
    return parts


class Applier:
    """Applies layers, one after another, to the directory open as `root_fd` (O_DIRECTORY)."""

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self._cached: tuple[str, int] | None = None  # the last parent directory opened: entries come in runs
        self._mine: set[str] = set()  # paths this layer created: its own whiteouts must spare them
        self._ancestors: set[str] = set()
        self._dir_times: dict[str, int] = {}

    def apply(self, reader: tarstream.TarReader) -> None:
        self._mine, self._ancestors, self._dir_times = set(), set(), {}
        try:
            for entry in reader:
                try:
                    self._entry(entry, reader)
                except OSError as e:
                    raise PyrtError(f"entry {entry.name!r}: {os.strerror(e.errno).lower()}") from None
                except Refused as e:
                    raise Refused(f"entry {entry.name!r}: {e}") from None
            # directory times last: creating their children changed them
            for path, ns in self._dir_times.items():
                parts = path.split("/") if path else []
                self._set_time(parts, ns)
        finally:
            self._forget()

    # ---------------------------------------------------------------- parents, by fd

    def _forget(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None

    def _parent(self, parts: list[str], create: bool) -> int | None:
        """An O_PATH fd of the directory `parts` (created 0755 root:root where missing, like tar;
        None if missing and not `create`); refuses a path through a symlink or a non-directory."""
        key = "/".join(parts)
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        self._forget()
        try:
            fd = openat2(self.root_fd, key or ".", os.O_PATH | os.O_DIRECTORY, _NO_SYMLINKS)
        except FileNotFoundError:
            if not create:
                return None
            fd = self._make_dirs(parts)
        except OSError as e:
            raise _bad_parent(key, e) from None
        self._cached = (key, fd)
        return fd

    def _make_dirs(self, parts: list[str]) -> int:
        """Create the missing directories of `parts` one by one, each below a verified fd."""
        fd = os.dup(self.root_fd)
        try:
            for i, part in enumerate(parts):
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                    self._mine.add("/".join(parts[:i + 1]))
                except FileExistsError:
                    pass
                try:
                    sub = openat2(fd, part, os.O_PATH | os.O_DIRECTORY, _NO_SYMLINKS)
                except OSError as e:
                    raise _bad_parent("/".join(parts[:i + 1]), e) from None
                os.close(fd)
                fd = sub
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _remove(self, parent: int, name: str) -> None:
        try:
            os.unlink(name, dir_fd=parent)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            self._forget_unless(parent)
            shutil.rmtree(name, dir_fd=parent)  # fd-based: never follows a symlink

    def _forget_unless(self, parent: int) -> None:
        """A directory below the cached parent is going away: the cache may hold a descendant."""
        if self._cached is not None and self._cached[1] != parent:
            self._forget()

    # ---------------------------------------------------------------- entries

    def _entry(self, entry: tarstream.Entry, reader: tarstream.TarReader) -> None:
        parts = split(entry.name)
        base = parts[-1] if parts else ""
        if base.startswith(WHITEOUT):
            self._whiteout(parts)
            return
        if not parts:  # the root itself ("./"): only its metadata
            if entry.kind != tarstream.DIR:
                raise Refused("replaces the root with a non-directory")
            self._meta_fd(self.root_fd, entry)
            self._dir_times[""] = entry.mtime_ns
            return
        path = "/".join(parts)
        parent = self._parent(parts[:-1], create=True)
        self._mine.add(path)
        self._ancestors.update("/".join(parts[:i]) for i in range(1, len(parts)))
        self._dir_times.pop(path, None)
        kind = entry.kind
        if kind == tarstream.DIR:
            self._directory(parent, base, path, entry)
        elif kind == tarstream.REGULAR:
            fd = self._create(parent, base, lambda: os.open(
                base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent))
            try:
                _write_all(fd, reader.data())
                self._meta_fd(fd, entry)
                os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
            finally:
                os.close(fd)
        elif kind == tarstream.LINK:
            self._hardlink(parent, base, entry)
        else:
            if kind == tarstream.SYMLINK:
                self._create(parent, base, lambda: os.symlink(entry.linkname, base, dir_fd=parent))
            else:
                dev = os.makedev(entry.major, entry.minor) if kind != tarstream.FIFO else 0
                self._create(parent, base, lambda: os.mknod(base, _DEVICE_TYPES[kind] | entry.mode, dev,
                                                            dir_fd=parent))
            os.chown(base, entry.uid, entry.gid, dir_fd=parent, follow_symlinks=False)
            for key, value in _xattrs(entry):
                os.setxattr(f"/proc/self/fd/{parent}/{base}", key, value, follow_symlinks=False)
            os.utime(base, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=parent, follow_symlinks=False)

    def _create(self, parent: int, name: str, make):
        """make() the entry; if the name exists (whatever it is) remove it and make it again."""
        try:
            return make()
        except FileExistsError:
            self._remove(parent, name)
            return make()

    def _directory(self, parent: int, name: str, path: str, entry: tarstream.Entry) -> None:
        try:
            os.mkdir(name, 0o700, dir_fd=parent)
        except FileExistsError:
            if not stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
                self._remove(parent, name)  # a file or a symlink: the directory replaces it
                os.mkdir(name, 0o700, dir_fd=parent)
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        try:
            self._meta_fd(fd, entry)
        finally:
            os.close(fd)
        self._dir_times[path] = entry.mtime_ns

    def _hardlink(self, parent: int, name: str, entry: tarstream.Entry) -> None:
        target = split(entry.linkname, f"the hard link target {entry.linkname!r}")
        if not target:
            raise Refused("a hard link to the root")
        # the target's parent by the same rules (never through a symlink), in an fd of its own
        try:
            src = openat2(self.root_fd, "/".join(target[:-1]) or ".", os.O_PATH | os.O_DIRECTORY, _NO_SYMLINKS)
        except OSError as e:
            raise _bad_parent("/".join(target[:-1]), e) from None
        try:
            self._create(parent, name, lambda: os.link(target[-1], name, src_dir_fd=src, dst_dir_fd=parent,
                                                       follow_symlinks=False))
        except FileNotFoundError:
            raise Refused(f"the hard link target {entry.linkname!r} does not exist") from None
        finally:
            os.close(src)

    def _meta_fd(self, fd: int, entry: tarstream.Entry) -> None:
        os.fchown(fd, entry.uid, entry.gid)  # first: it clears setuid bits and file capabilities
        os.fchmod(fd, entry.mode)
        for key, value in _xattrs(entry):
            os.setxattr(fd, key, value)

    def _set_time(self, parts: list[str], ns: int) -> None:
        if not parts:
            os.utime(self.root_fd, ns=(ns, ns))
            return
        try:
            parent = self._parent(parts[:-1], create=False)
            if parent is not None:
                os.utime(parts[-1], ns=(ns, ns), dir_fd=parent, follow_symlinks=False)
        except (FileNotFoundError, PyrtError):
            pass  # removed, or replaced by a symlink, later in the layer: nothing to date

    # ---------------------------------------------------------------- whiteouts

    def _whiteout(self, parts: list[str]) -> None:
        base = parts[-1]
        parent = self._parent(parts[:-1], create=False)
        if parent is None:
            return  # nothing below to hide
        dir_path = "/".join(parts[:-1])
        if base == OPAQUE:
            self._clear(parent, dir_path)
            return
        if base.startswith(WHITEOUT + WHITEOUT):
            return  # other AUFS metadata (.wh..wh.plnk, ...): not part of the tree
        victim = base[len(WHITEOUT):]
        if victim in ("", ".", ".."):
            raise Refused("the whiteout names no file of its directory")
        path = f"{dir_path}/{victim}" if dir_path else victim
        if path not in self._mine and path not in self._ancestors:  # a layer's whiteouts hide only lower layers
            self._remove(parent, victim)

    def _clear(self, dir_fd: int, dir_path: str) -> None:
        """Opaque directory: remove what the layers below put in it; this layer's own entries stay."""
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            with os.scandir(fd) as it:
                children = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
            for child, is_dir in children:
                path = f"{dir_path}/{child}" if dir_path else child
                if path in self._mine or path in self._ancestors:
                    if is_dir:
                        sub = openat2(fd, child, os.O_PATH | os.O_DIRECTORY, _NO_SYMLINKS)
                        try:
                            self._clear(sub, path)
                        finally:
                            os.close(sub)
                else:
                    self._remove(fd, child)
        finally:
            os.close(fd)


def _bad_parent(path: str, e: OSError) -> Exception:
    if e.errno == errno.ELOOP:  # RESOLVE_NO_SYMLINKS met a symlink
        return Refused(f"{path!r} is a symlink (or goes through one): refused")
    if e.errno == errno.ENOTDIR:
        return Refused(f"{path!r} is not a directory")
    return PyrtError(f"{path!r}: {os.strerror(e.errno).lower()}")


def _xattrs(entry: tarstream.Entry) -> list[tuple[str, bytes]]:
    return [(k, v) for k, v in entry.xattrs.items() if not k.startswith(_SKIPPED_XATTRS)]


def _write_all(fd: int, chunks: Iterable[memoryview]) -> None:
    for chunk in chunks:
        while chunk:
            chunk = chunk[os.write(fd, chunk):]


def open_in_root(root_fd: int, path: str, limit: int) -> bytes | None:
    """A regular file of the root as the container would see it (symlinks resolved inside the
    root), at most `limit` bytes; None if missing. Never blocks on a FIFO or reads a device."""
    try:
        fd = openat2(root_fd, path.lstrip("/"), os.O_RDONLY | os.O_NONBLOCK, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    except OSError:
        return None  # missing, or not reachable inside the root: as if there were none
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, limit + 1)
        if len(data) > limit:
            raise PyrtError(f"rootfs {path}: larger than {limit} bytes")
        return data
    finally:
        os.close(fd)
