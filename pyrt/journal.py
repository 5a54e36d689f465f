"""The journal: what a container changes on the host, written down *before* it changes it.

A SIGKILL can stop `pyrt create` between any two system calls. So every step that makes
something outside the state directory (a cgroup directory, the init process, bridge mode's
address, veth and ports, a temporary file beside the pid file) first appends a record of what it is
about to make to `<state dir>/journal`, and only then makes it. Whatever instant the kill
comes, the journal names everything that may exist, and `undo()` removes it: `delete` (forced
or not) and a failed `create` call it, newest record first. Ownership never depends on a second
step (a mark set after a mkdir, a record saved after the fact) having happened.

The price is that a record means "maybe": the thing may never have been made, may be gone
already, or may (after a race) be someone else's. Each kind's undo checks before it removes,
and must be safe to run twice (a `delete --force` killed in turn is simply run again).

Records are JSON objects, one per line, each appended with a single write() on an O_APPEND
descriptor. A kill inside that write can leave a torn last line: undo() skips it, since the step
it announced never started. No fsync: a killed process loses nothing it wrote, and what the
journal describes (cgroups, processes) does not survive a reboot either.

Adding a kind: call `record(dir_fd, "kind", ...fields)` before the side effect and add
`"kind": "module:function"` to UNDO; the function gets the record (a dict) and the state
directory's fd.
"""

from __future__ import annotations

import os

from pyrt.errors import PyrtError

NAME = "journal"

#: kind -> the function undoing one record ("module:function", imported only when needed).
UNDO = {
    "cgroup": "pyrt.cgroups:undo",
    "process": "pyrt.journal:undo_process",
    "file": "pyrt.journal:undo_file",
    "network": "pyrt.network:undo",
    "netdev": "pyrt.netdevices:undo",
}


def record(dir_fd: int, kind: str, **fields) -> None:
    """Append one record: call it before making what it names."""
    from pyrt import jsonio

    line = (jsonio.dumps({"kind": kind, **fields}) + "\n").encode()
    try:
        fd = os.open(NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        try:
            if os.write(fd, line) != len(line):
                raise OSError(28, os.strerror(28))  # a short write on a full filesystem
        finally:
            os.close(fd)
    except OSError as e:
        where = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), NAME)
        raise PyrtError(f"write {where}: {os.strerror(e.errno).lower()}") from None


def records(dir_fd: int) -> list[dict]:
    """The whole records, oldest first (none if there is no journal)."""
    from pyrt import jsonio

    try:
        data = jsonio.read(NAME, dir_fd=dir_fd)
    except FileNotFoundError:
        return []
    out = []
    for line in data.split(b"\n")[:-1]:  # the part after the last newline is torn (or empty)
        try:
            item = jsonio.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and item.get("kind") in UNDO:
            out.append(item)
    return out


def undo(dir_fd: int, only: str | None = None) -> None:
    """Undo every record (or those of kind `only`), newest first. Each undo is tried even if an
    earlier one failed (the first failure is raised at the end): a delete removes all it can."""
    failure = None
    for item in reversed(records(dir_fd)):
        if only and item["kind"] != only:
            continue
        module, _, func = UNDO[item["kind"]].partition(":")
        try:
            getattr(__import__(module, fromlist=[func]), func)(item, dir_fd)
        except PyrtError as e:
            failure = failure or e
    if failure:
        raise failure


# ----------------------------------------------------------------------------- the general kinds


def undo_process(item: dict, dir_fd: int) -> None:
    """{"pid", "start"}: a process create started (the init). SIGKILL it if it is still that
    process (same start time: not a recycled pid), and wait until it is gone."""
    import _signal as signal  # the C module: `signal` only adds enums, ~5 ms of imports
    import select

    from pyrt.procfs import start_time

    try:
        pidfd = os.pidfd_open(item["pid"])
    except ProcessLookupError:
        return
    try:
        if start_time(item["pid"]) == item["start"]:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            select.select([pidfd], [], [], 10)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)


def undo_file(item: dict, dir_fd: int) -> None:
    """{"path"}: a file create was about to write (a temporary file beside the pid file)."""
    try:
        os.unlink(item["path"])
    except FileNotFoundError:
        pass
    except OSError as e:
        raise PyrtError(f"remove {item['path']}: {os.strerror(e.errno).lower()}") from None
