"""What /proc says that pyrt needs: a process's start time (to trust a pid), whether pyrt runs in a
user namespace."""

from __future__ import annotations


def start_time(pid: int) -> str | None:
    """The start time of a live (not zombie) process, from /proc/<pid>/stat; None if gone. With
    the pid it names one process for good: a recycled pid has another start time."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
    except OSError:
        return None
    # fields[0] is the state (field 3 of stat(5)); starttime is field 22
    if fields[0] in (b"Z", b"X"):
        return None
    return fields[19].decode()


def in_user_namespace() -> bool:
    """Whether this process is in a user namespace other than the host's (runc's
    RunningInUserNS): the initial one maps every id to itself, in one line. Rootless podman runs
    the runtime as uid 0 of such a namespace (`podman unshare`): root there, not on the host."""
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False
