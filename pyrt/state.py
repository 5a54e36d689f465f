"""Container state on disk: `<root>/<id>/state.json`, written atomically, guarded by a lock.

The record holds runc's state fields (what `pyrt state` prints) plus what later commands need
to act without the bundle: the init's start time (to tell a recycled pid from our init), the
cgroup, and the pieces of config used after `create`.
"""

from __future__ import annotations

import fcntl
import os

from pyrt import jsonio
from pyrt.errors import PyrtError

#: The fields of runc's `state` output, in runc's order.
OCI_FIELDS = ("ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner")
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+.-")


def validate_id(container_id: str) -> None:
    # a leading dot is refused too: <root>/.network is the IPAM's, and `list` skips dot names
    if not container_id or not set(container_id) <= _ID_CHARS or container_id.startswith(".") or ".." in container_id:
        raise PyrtError(f'invalid container id "{container_id}": use letters, digits and _+.- only, no leading .')


def proc_start_time(pid: int) -> str | None:
    """The start time of a live (not zombie) process, from /proc/<pid>/stat; None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
    except OSError:
        return None
    # fields[0] is the state (field 3 of stat(5)); starttime is field 22
    if fields[0] in (b"Z", b"X"):
        return None
    return fields[19].decode()


class Container:
    """An open, locked state directory."""

    def __init__(self, root: str, container_id: str, dir_fd: int, record: dict) -> None:
        self.root, self.id, self.dir_fd, self.record = root, container_id, dir_fd, record

    @property
    def dir(self) -> str:
        return os.path.join(self.root, self.id)

    @property
    def fifo(self) -> str:
        return os.path.join(self.dir, "exec.fifo")

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def new(cls, root: str, container_id: str) -> Container:
        """Make the state directory of a new container, locked. Fails if the id is taken."""
        validate_id(container_id)
        try:
            os.makedirs(root, 0o700, exist_ok=True)
            os.mkdir(os.path.join(root, container_id), 0o711)
        except FileExistsError:
            raise PyrtError(f"container with id exists: {container_id}") from None
        except OSError as e:
            raise PyrtError(f"create state directory in {root}: {os.strerror(e.errno).lower()}") from None
        fd = os.open(os.path.join(root, container_id), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return cls(root, container_id, fd, {})

    @classmethod
    def load(cls, root: str, container_id: str, lock: bool = True) -> Container:
        """Open an existing container; with `lock`, wait for other commands on it to finish."""
        validate_id(container_id)
        path = os.path.join(root, container_id)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            raise PyrtError("container does not exist") from None
        try:
            if lock:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if os.fstat(fd).st_nlink == 0:  # deleted while we waited
                    raise PyrtError("container does not exist")
            try:
                record = jsonio.loads(jsonio.read("state.json", dir_fd=fd))
            except FileNotFoundError:
                raise PyrtError("container does not exist") from None  # a create still in progress
            except ValueError as e:
                raise PyrtError(f"{path}/state.json: {e}") from None
        except BaseException:
            os.close(fd)
            raise
        return cls(root, container_id, fd, record)

    def close(self) -> None:
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    # -- the record ---------------------------------------------------------------------------

    def save(self, name: str = "state.json") -> None:
        """Write state.json (or `name`) atomically: a reader sees the old or the new record, never half."""
        try:
            jsonio.write_atomic(name, jsonio.dumps(self.record).encode(), dir_fd=self.dir_fd)
        except OSError as e:
            raise PyrtError(f"write {self.dir}/{name}: {os.strerror(e.errno).lower()}") from None

    def init_alive(self) -> bool:
        pid = self.record.get("pid", 0)
        return bool(pid) and proc_start_time(pid) == self.record.get("init_start")

    def status(self) -> str:
        if not self.init_alive():
            return "stopped"
        if os.path.exists(self.fifo):
            return "created"
        if self.cgroup().frozen():
            return "paused"
        return "running"

    def cgroup(self):
        """The container's cgroup, knowing its init while that lives (see Cgroup.processes())."""
        from pyrt.cgroups import Cgroup

        cg = Cgroup.from_state(self.record["cgroup"])
        if self.init_alive():
            cg.init_pid = self.record["pid"]
        return cg

    def oci_state(self, owner: str = "") -> dict:
        """runc's state object: status computed now, pid 0 once stopped."""
        status = self.status()
        out = {k: self.record.get(k) for k in OCI_FIELDS}
        out["status"] = status
        out["owner"] = owner
        if status == "stopped":
            out["pid"] = 0
        if self.record.get("annotations"):
            out["annotations"] = self.record["annotations"]
        return out

    def remove(self) -> None:
        """Remove the state directory (the lock goes with it)."""
        try:
            for name in os.listdir(self.dir_fd):
                os.unlink(name, dir_fd=self.dir_fd)
            os.rmdir(self.dir)
        except OSError as e:
            raise PyrtError(f"remove {self.dir}: {os.strerror(e.errno).lower()}") from None
        self.close()


def list_ids(root: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(root) if not n.startswith("."))
    except FileNotFoundError:
        return []
