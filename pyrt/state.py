"""Container state on disk: `<root>/<id>/state.json`, written atomically, guarded by a lock.

`Record` is state.json: runc's state fields (what `pyrt state` prints) plus what later commands
need to act without the bundle: the init's start time (to tell a recycled pid from our init),
the cgroup, the hooks and exec's defaults (the container's process, namespaces, keyring,
personality, seccomp flags). Only `Container.save` writes it. `Status` is the status a command
finds, and `require` refuses an operation the status does not allow, in runc's words.
"""

from __future__ import annotations

import fcntl
import os

from pyrt import jsonio
from pyrt.errors import PyrtError
from pyrt.procfs import start_time

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+.-")


def validate_id(container_id: str) -> None:
    # a leading dot is refused too: <root>/.network is the IPAM's, and `list` skips dot names
    if not container_id or not set(container_id) <= _ID_CHARS or container_id.startswith(".") or ".." in container_id:
        raise PyrtError(f'invalid container id "{container_id}": use letters, digits and _+.- only, no leading .')


# ----------------------------------------------------------------------------- status


class Status:
    """A container's status as a command finds it: created, running, paused or stopped."""

    __slots__ = ("name", "container_id")

    #: operation -> status -> runc's words refusing it there (a status not listed allows it)
    REFUSED = {
        "start": {"stopped": "cannot start a container that has stopped",
                  "running": "cannot start an already running container",
                  "paused": "cannot start a container in the paused state"},
        "kill": {"stopped": "container not running"},
        "delete": {"running": "cannot delete container {id} that is not stopped: running",
                   "paused": "cannot delete container {id} that is not stopped: paused"},
        "delete --force": {},
        "exec": {"stopped": "cannot exec in a stopped container",
                 "paused": "cannot exec in a paused container (use --ignore-paused to override)"},
        "exec --ignore-paused": {"stopped": "cannot exec in a stopped container"},
        "pause": {"stopped": "container not running", "paused": "container already paused"},
        "resume": {"created": "container not paused", "running": "container not paused",
                   "stopped": "container not paused"},
        "update": {"stopped": "container not running"},
        "events": {"stopped": "container with id {id} is not running"},
    }

    def __init__(self, name: str, container_id: str) -> None:
        self.name, self.container_id = name, container_id

    def require(self, op: str) -> None:
        """Refuse `op` (a key of REFUSED) if this status does not allow it."""
        why = self.REFUSED[op].get(self.name)
        if why:
            raise PyrtError(why.format(id=self.container_id))

    def __eq__(self, other: object) -> bool:
        return self.name == (other.name if isinstance(other, Status) else other)

    __hash__ = None

    def __str__(self) -> str:
        return self.name


# ----------------------------------------------------------------------------- the record


class Record:
    """state.json, field by field. `cgroup` is Cgroup.to_state(); `hooks` hooks.to_record();
    `process` the container's process as config.json writes it (config.process_json), for
    exec; `namespaces` the container's namespace types (exec joins them all)."""

    __slots__ = ("oci_version", "id", "pid", "bundle", "rootfs", "created", "owner", "annotations", "init_start",
                 "cgroup", "hooks", "process", "namespaces", "no_new_keyring", "personality", "seccomp_flags",
                 "memory_policy")

    def __init__(self, oci_version: str, id: str, pid: int, bundle: str, rootfs: str, created: str,
                 annotations: dict, init_start: str | None, cgroup: dict, hooks: dict, process: dict | None,
                 namespaces: list[str], no_new_keyring: bool = False, personality: int | None = None,
                 seccomp_flags: int | None = None, owner: str = "", memory_policy: list | None = None) -> None:
        self.oci_version, self.id, self.pid, self.bundle, self.rootfs = oci_version, id, pid, bundle, rootfs
        self.created, self.owner, self.annotations, self.init_start = created, owner, annotations, init_start
        self.cgroup, self.hooks, self.process, self.namespaces = cgroup, hooks, process, namespaces
        self.no_new_keyring, self.personality, self.seccomp_flags = no_new_keyring, personality, seccomp_flags
        self.memory_policy = memory_policy  # linux.memoryPolicy (mode, flags, nodes): exec's too, as runc

    def to_json(self) -> dict:
        out = {"ociVersion": self.oci_version, "id": self.id, "pid": self.pid, "bundle": self.bundle,
               "rootfs": self.rootfs, "created": self.created, "owner": self.owner, "annotations": self.annotations,
               "init_start": self.init_start, "cgroup": self.cgroup, "hooks": self.hooks}
        if self.process is not None:
            out["exec"] = {"namespaces": self.namespaces, "process": self.process,
                           "noNewKeyring": self.no_new_keyring, "personality": self.personality}
            if self.memory_policy is not None:
                out["exec"]["memoryPolicy"] = self.memory_policy
        if self.seccomp_flags is not None:
            out["seccomp_flags"] = self.seccomp_flags  # for exec, with <state dir>/seccomp.bpf
        return out

    @classmethod
    def from_json(cls, obj: dict) -> Record:
        """The record of a state.json this pyrt wrote (KeyError, TypeError: it did not)."""
        ex = obj.get("exec") or {}
        return cls(obj["ociVersion"], obj["id"], obj["pid"], obj["bundle"], obj["rootfs"], obj["created"],
                   obj.get("annotations") or {}, obj.get("init_start"), obj["cgroup"], obj.get("hooks") or {},
                   ex.get("process"), ex.get("namespaces", []), ex.get("noNewKeyring", False), ex.get("personality"),
                   obj.get("seccomp_flags"), obj.get("owner", ""), ex.get("memoryPolicy"))


class Container:
    """An open (and, to act on it, locked) state directory, and its record (None while a
    create is in progress or was killed: there is no state.json yet)."""

    def __init__(self, root: str, container_id: str, dir_fd: int, record: Record | None = None) -> None:
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
        return cls(root, container_id, fd)

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
                record = Record.from_json(jsonio.loads(jsonio.read("state.json", dir_fd=fd)))
            except FileNotFoundError:
                raise PyrtError("container does not exist") from None  # a create still in progress
            except ValueError as e:
                raise PyrtError(f"{path}/state.json: {e}") from None
            except (KeyError, TypeError, AttributeError):
                raise PyrtError(f"{path}/state.json: not a state record of this pyrt's") from None
        except BaseException:
            os.close(fd)
            raise
        return cls(root, container_id, fd, record)

    def close(self) -> None:
        if self.dir_fd >= 0:
            # unlocked explicitly: a child cloned meanwhile may hold a copy of the fd until its
            # execve closes it (or for long: exec's pyrt-init cloned into a frozen cgroup)
            fcntl.flock(self.dir_fd, fcntl.LOCK_UN)
            os.close(self.dir_fd)
            self.dir_fd = -1

    # -- the record ---------------------------------------------------------------------------

    def save(self) -> None:
        """Write state.json atomically: a reader sees the old or the new record, never half."""
        try:
            jsonio.write_atomic("state.json", jsonio.dumps(self.record.to_json()).encode(), dir_fd=self.dir_fd)
        except OSError as e:
            raise PyrtError(f"write {self.dir}/state.json: {os.strerror(e.errno).lower()}") from None

    def init_alive(self) -> bool:
        pid = self.record.pid
        return bool(pid) and start_time(pid) == self.record.init_start

    def status(self) -> Status:
        if not self.init_alive():
            name = "stopped"
        elif self.cgroup().frozen():  # a created container can be paused too (runc 1.5)
            name = "paused"
        elif os.path.exists(self.fifo):
            name = "created"
        else:
            name = "running"
        return Status(name, self.id)

    def cgroup(self):
        """The container's cgroup, knowing its init while that lives (see Cgroup.processes())."""
        if self.record.cgroup.get("none"):  # rootless, without one
            from pyrt.rootless import from_state
        else:
            from pyrt.cgroups import Cgroup

            from_state = Cgroup.from_state
        cg = from_state(self.record.cgroup)
        if self.init_alive():
            cg.init_pid = self.record.pid
        return cg

    def oci_state(self, owner: str = "") -> dict:
        """runc's state object: status computed now, pid 0 once stopped, `ociVersion` the
        runtime-spec version pyrt implements (as runc; the config's is in the record)."""
        from pyrt import SPEC_VERSION

        status = self.status().name
        r = self.record
        out = {"ociVersion": SPEC_VERSION, "id": r.id, "pid": 0 if status == "stopped" else r.pid,
               "status": status, "bundle": r.bundle, "rootfs": r.rootfs, "created": r.created, "owner": owner}
        if r.annotations:
            out["annotations"] = r.annotations
        return out

    def kill_and_wait(self) -> None:
        """SIGKILL the init and the container's other processes, and wait until the init has
        exited (`delete --force`, and `start` after a failed poststart hook)."""
        import _signal as signal  # the C module: `signal` only adds enums
        import select

        try:
            pidfd = os.pidfd_open(self.record.pid)
        except ProcessLookupError:
            return
        try:
            if self.init_alive():
                cg = self.cgroup()
                if cg.frozen():
                    cg.kill(signal.SIGKILL)
                    cg.freeze(False)
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                cg.kill(signal.SIGKILL)
                select.select([pidfd], [], [], 10)
        except ProcessLookupError:
            pass
        finally:
            os.close(pidfd)

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
    """The ids under `root`; as runc 1.5, a root that does not exist (yet) is an error."""
    try:
        return sorted(n for n in os.listdir(root) if not n.startswith("."))
    except OSError as e:
        raise PyrtError(f"open {os.path.abspath(root)}: {os.strerror(e.errno).lower()}") from None
