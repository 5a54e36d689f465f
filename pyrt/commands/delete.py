"""`pyrt delete ID`: kill what is left of the container (with --force also while it runs),
undo its journal (the init, its cgroup, pyrt's network, ...), run the poststop hooks, remove
its state directory. `delete --force` of a create that was killed undoes what it made."""

from __future__ import annotations

import os

from pyrt.errors import PyrtError


def main(g, opts: dict, args: list[str]) -> int:
    delete(g.root, args[0], opts["force"])
    return 0


def delete(root: str, container_id: str, force: bool = False) -> None:
    from pyrt import hooks, journal
    from pyrt.state import Container

    try:
        c = Container.load(root, container_id)
    except PyrtError as e:
        if force and str(e) == "container does not exist":
            _delete_killed_create(root, container_id)
            return
        raise
    try:
        status = c.status()
        status.require("delete --force" if force else "delete")
        if status != "stopped":
            _devices_back(c.dir_fd)
            c.kill_and_wait()
        journal.undo(c.dir_fd)  # its cgroup, its network (and whatever else create made)
        hooks.poststop(c.record)
        c.remove()
    finally:
        c.close()


def _devices_back(dir_fd: int) -> None:
    """linux.netDevices back to the host while their namespace lives (before the kill); what
    cannot go back (its name taken on the host meanwhile) is said, and dies with the namespace."""
    from pyrt import journal, log

    try:
        journal.undo(dir_fd, only="netdev")
    except PyrtError as e:
        log.warning(str(e))


def _delete_killed_create(root: str, container_id: str) -> None:
    """`delete --force` of a directory without state.json: a create that was killed (one in
    progress holds the lock). Undo what its journal says it was making (its init, its cgroup,
    its network, ...), then the directory."""
    import fcntl

    from pyrt import journal
    from pyrt.state import Container

    try:
        fd = os.open(os.path.join(root, container_id), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return  # no such container: nothing to do, as runc
    c = Container(root, container_id, fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink == 0 or "state.json" in os.listdir(fd):
            return  # deleted meanwhile, or created after all
        journal.undo(fd)
        c.remove()
    finally:
        c.close()
