"""cgroup directories on disk: their files, pyrt's mark, the lock, the processes of a subtree,
and removal. The vocabulary cgroups.py (whose cgroup, its life) is written in.

Whose is what: pyrt removes only directories it made, marked with the xattr CREATED_MARK right
after the mkdir (and journaled before it: journal.py). A container's leaf carries its owner
(the state directory, e.g. b"/run/pyrt/web"); a parent carries SHARED: whoever finds it empty
removes it, so a parent shared by several containers goes with the last of them.
"""

from __future__ import annotations

import errno
import os
import time

from pyrt.errors import PyrtError

CREATED_MARK = "trusted.pyrt.created"
SHARED = b"1"


def read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read().decode()


def read_or(path: str) -> str:
    """A cgroup file's text, or "" where it does not exist (the cgroup is gone)."""
    try:
        return read(path)
    except OSError:
        return ""


def write(path: str, value: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        raise PyrtError(f"open {path}: {os.strerror(e.errno).lower()}") from None
    try:
        os.write(fd, value.encode())
    except OSError as e:
        raise PyrtError(f"write {value!r} to {path}: {os.strerror(e.errno).lower()}") from None
    finally:
        os.close(fd)


def enable_controllers(path: str) -> None:
    """Let the children of a cgroup pyrt made use every controller it has (limits, and the
    statistics `events` reads)."""
    have = read(os.path.join(path, "cgroup.controllers")).split()
    enabled = set(read(os.path.join(path, "cgroup.subtree_control")).split())
    missing = [c for c in have if c not in enabled]
    if missing:
        write(os.path.join(path, "cgroup.subtree_control"), " ".join("+" + c for c in missing))


def inherit_cpuset(path: str) -> None:
    """A new v1 cpuset starts with no CPUs and no memory nodes (no task may join it): give it
    its parent's. Also for a parent pyrt made whose creator was killed before it did this."""
    parent = os.path.dirname(path)
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not read(os.path.join(path, name)).strip():
            write(os.path.join(path, name), read(os.path.join(parent, name)).strip() or "\n")


def mark(path: str) -> bytes | None:
    """The pyrt mark of a cgroup directory: SHARED, a container's state directory, or None."""
    try:
        return os.getxattr(path, CREATED_MARK)
    except OSError:
        return None


def set_mark(path: str, value: bytes) -> None:
    try:
        os.setxattr(path, CREATED_MARK, value)
    except OSError as e:
        raise PyrtError(f"mark cgroup {path} as pyrt's: {os.strerror(e.errno).lower()}") from None


class Lock:
    """pyrt's cgroup lock: an flock on the cgroup2 root directory (no file on the host). A
    create checks what exists, then makes and marks what is missing, as one step for every
    other pyrt; a delete removes empty parents under it too."""

    def __init__(self, root: str) -> None:
        self.root = root

    def __enter__(self) -> None:
        import fcntl

        self.fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc) -> None:
        os.close(self.fd)


def wait_for(path: str, text: bytes, timeout: float = 5.0) -> bool:
    """Poll a cgroup file (cgroup.events, freezer.state) until it holds `text`; False on timeout."""
    for _ in range(int(timeout / 0.002)):
        if text in read_or(path).encode():
            return True
        time.sleep(0.002)
    return False


def procs(path: str) -> list[int]:
    """The pids in one cgroup directory (none if it is gone)."""
    return [int(x) for x in read_or(os.path.join(path, "cgroup.procs")).split()]


def children(path: str) -> list[str]:
    """The cgroup directories right below one (none if it is gone)."""
    try:
        return [e.path for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def subtree_procs(path: str) -> list[int]:
    """The pids in a cgroup directory and every cgroup below it."""
    pids = procs(path)
    for child in children(path):
        pids += subtree_procs(child)
    return pids


def within(path: str, leaf: str) -> bool:
    return path == leaf or path.startswith(leaf + "/")


def pidns(pid: int) -> tuple[int, int] | None:
    """The identity of a process's pid namespace (None once it is gone)."""
    try:
        st = os.stat(f"/proc/{pid}/ns/pid")
    except OSError:
        return None
    return st.st_dev, st.st_ino


def cgroup2_path(pid: int) -> str:
    """A process's cgroup2 path, as /proc/PID/cgroup says ("" once it is gone)."""
    for line in read_or(f"/proc/{pid}/cgroup").splitlines():
        if line.startswith("0::"):
            return line[3:]
    return ""


def signal(pid: int, sig: int, still_mine) -> None:
    """Signal a process through a pidfd, if `still_mine(pid)` once the pidfd holds it: a pid
    listed a moment ago may have been recycled by an unrelated process since."""
    import _signal

    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if still_mine(pid):
            _signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)


def remove_tree(path: str) -> None:
    """Remove a leaf pyrt made for the container and the cgroups the container made in it."""
    for child in children(path):
        remove_tree(child)
    rmdir(path, wait=True)


def rmdir(path: str, wait: bool) -> bool:
    """rmdir a cgroup; False if it is still in use (a parent with other containers). The leaf
    may stay busy for a moment while its last processes exit: `wait` retries then fails."""
    for attempt in range(200 if wait else 1):
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            if e.errno not in (errno.EBUSY, errno.ENOTEMPTY) or not wait:
                return False
            time.sleep(0.005 * min(attempt + 1, 10))
    raise PyrtError(f"remove cgroup {path}: device or resource busy")
