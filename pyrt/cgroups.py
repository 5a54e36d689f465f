"""The container's cgroup: where it lives, creating and removing it, its processes.

pyrt works on pure cgroup v2 hosts and on hybrid hosts (v1 controllers, plus a cgroup2 tree at
/sys/fs/cgroup/unified used for membership, freezing and killing). It only ever creates,
changes and removes cgroups it made itself.
"""

from __future__ import annotations

import errno
import os
import time

from pyrt.errors import PyrtError

ROOT = "/sys/fs/cgroup"
#: Where containers without linux.cgroupsPath (and relative paths) go.
DEFAULT_PARENT = "pyrt"
#: An xattr on every cgroup directory pyrt made: only those are ever removed (parents too,
#: once empty, so a parent shared by several containers goes with the last of them).
CREATED_MARK = "trusted.pyrt.created"
CGROUP2_SUPER_MAGIC = 0x63677270


def _is_cgroup2(path: str) -> bool:
    try:
        with open(os.path.join(path, "cgroup.controllers"), "rb"):
            pass
    except OSError:
        return False
    return not os.path.exists(os.path.join(path, "cgroup.clone_children"))


def unified_root() -> str:
    """The cgroup2 mount: /sys/fs/cgroup on v2 hosts, /sys/fs/cgroup/unified on hybrid ones."""
    if _is_cgroup2(ROOT):
        return ROOT
    unified = os.path.join(ROOT, "unified")
    if _is_cgroup2(unified):
        return unified
    raise PyrtError("no cgroup2 hierarchy found at /sys/fs/cgroup or /sys/fs/cgroup/unified")


def resolve_path(cgroups_path: str | None, container_id: str) -> str:
    """linux.cgroupsPath -> a path relative to the cgroup root, checked not to escape it."""
    if cgroups_path is None:
        rel = f"{DEFAULT_PARENT}/{container_id}"
    elif ":" in cgroups_path and not cgroups_path.startswith("/"):
        raise PyrtError(f'config.json: linux.cgroupsPath: "{cgroups_path}" is a systemd path; '
                        "pyrt has no systemd cgroup driver")
    elif cgroups_path.startswith("/"):
        rel = cgroups_path.strip("/")
    else:
        rel = f"{DEFAULT_PARENT}/{cgroups_path.strip('/')}"
    parts = [p for p in rel.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise PyrtError(f'config.json: linux.cgroupsPath: "{cgroups_path}" must name a cgroup below the root')
    return "/".join(parts)


class Cgroup:
    """One container's cgroup. Its state (what pyrt created) is saved with the container."""

    def __init__(self, root: str, path: str) -> None:
        self.root = root  # the cgroup2 mount
        self.path = path  # relative to root

    @property
    def dir(self) -> str:
        return os.path.join(self.root, self.path)

    @classmethod
    def for_spec(cls, cgroups_path: str | None, container_id: str) -> Cgroup:
        return cls(unified_root(), resolve_path(cgroups_path, container_id))

    def to_state(self) -> dict:
        return {"root": self.root, "path": self.path}

    @classmethod
    def from_state(cls, state: dict) -> Cgroup:
        return cls(state["root"], state["path"])

    # -- lifecycle -------------------------------------------------------------------------

    def create(self, resources: dict) -> None:
        """Make the cgroup (joining it if it exists) and apply linux.resources."""
        check_resources(resources)
        parts = self.path.split("/")
        for i in range(1, len(parts) + 1):
            path = os.path.join(self.root, *parts[:i])
            try:
                os.mkdir(path, 0o755)
                os.setxattr(path, CREATED_MARK, b"1")
            except FileExistsError:
                pass
            except OSError as e:
                self.destroy()
                raise PyrtError(f"create cgroup {path}: {os.strerror(e.errno).lower()}") from None

    def open_dir(self) -> int:
        """An fd of the cgroup's directory, for clone3(CLONE_INTO_CGROUP)."""
        return os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def attach(self, pid: int) -> None:
        """Place a process that clone3 already put in the unified cgroup in the rest of its
        cgroups (the v1 hierarchies of a hybrid host). Nothing to do on a pure v2 host."""

    def add(self, pid: int) -> None:
        """Place `pid` in the cgroup (for processes not cloned into it)."""
        _write(os.path.join(self.dir, "cgroup.procs"), str(pid))

    def pids(self) -> list[int]:
        try:
            with open(os.path.join(self.dir, "cgroup.procs"), "rb") as f:
                return [int(x) for x in f.read().split()]
        except FileNotFoundError:
            return []

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    def kill(self, sig: int) -> None:
        """Signal every process in the cgroup; SIGKILL through cgroup.kill (no pid races)."""
        if sig == 9 and os.path.exists(os.path.join(self.dir, "cgroup.kill")):
            _write(os.path.join(self.dir, "cgroup.kill"), "1")
            return
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def freeze(self, frozen: bool) -> None:
        """Freeze or thaw, and wait until the kernel says it is done (cgroup.events)."""
        _write(os.path.join(self.dir, "cgroup.freeze"), "1" if frozen else "0")
        want = b"frozen 1" if frozen else b"frozen 0"
        for _ in range(1000):
            with open(os.path.join(self.dir, "cgroup.events"), "rb") as f:
                if want in f.read():
                    return
            time.sleep(0.002)
        raise PyrtError(f"cgroup {self.dir} did not {'freeze' if frozen else 'thaw'} in time")

    def frozen(self) -> bool:
        try:
            with open(os.path.join(self.dir, "cgroup.freeze"), "rb") as f:
                return f.read().strip() == b"1"
        except OSError:
            return False

    def destroy(self) -> None:
        """Kill what is left, then remove the cgroup and the parents this container created."""
        if self.exists() and self.pids():
            self.kill(9)
            if self.frozen():
                self.freeze(False)
        parts = self.path.split("/")
        for i in range(len(parts), 0, -1):
            path = os.path.join(self.root, *parts[:i])
            if not _created_by_pyrt(path) or not _rmdir(path, wait=i == len(parts)):
                return


def mount_steps(cg: Cgroup, dest: str, opts, cgroupns: bool) -> list:
    """The steps for a `cgroup`/`cgroup2` mount in config.json, right for this host: the
    container's own cgroup, seen as the root; read-only unless the options say otherwise."""
    from pyrt import mounts
    from pyrt.plan import Step

    flags = opts.flags & ~mounts.MS_BIND
    if cg.root == ROOT:  # pure cgroup v2
        if cgroupns:
            return [Step("mount", "cgroup2", dest, "cgroup2", flags, 0, "", 1, 0, 0)]
        return [Step("mount", cg.dir, dest, "", flags | mounts.MS_BIND, 0, "", 1, 0, 0)]
    # hybrid: a tmpfs holding the container's part of each hierarchy
    steps = [Step("mount", "cgroup", dest, "tmpfs", flags & ~mounts.MS_RDONLY, 0, "mode=755", 1, 0, 0),
             Step("mount", cg.dir, dest + "/unified", "", flags | mounts.MS_BIND, 0, "", 1, 0, 0)]
    if flags & mounts.MS_RDONLY:
        steps.append(Step("remount", dest, mounts.MS_RDONLY))
    return steps


def check_resources(resources: dict) -> None:
    """Refuse limits this build cannot apply: a limit silently dropped weakens isolation."""
    for key, value in resources.items():
        if key == "devices" and all(not r.get("allow") and r.get("access", "rwm") == "rwm" and
                                    r.get("type", "a") == "a" for r in value):
            continue  # "deny everything" first: the devices we create are the only ones
        if value not in (None, {}, []):
            raise PyrtError(f"config.json: linux.resources.{key}: cgroup limits are not supported yet")


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    except OSError as e:
        raise PyrtError(f"write {value!r} to {path}: {os.strerror(e.errno).lower()}") from None
    finally:
        os.close(fd)


def _created_by_pyrt(path: str) -> bool:
    try:
        return os.getxattr(path, CREATED_MARK) == b"1"
    except OSError:
        return False


def _rmdir(path: str, wait: bool) -> bool:
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
