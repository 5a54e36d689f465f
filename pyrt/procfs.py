"""What /proc says about a process that pyrt needs to trust a pid: its start time."""

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
