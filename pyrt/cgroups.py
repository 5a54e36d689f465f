"""The container's cgroup: where it lives, creating and removing it, its processes.

pyrt works on pure cgroup v2 hosts and on hybrid hosts (controllers on v1 hierarchies, plus a
cgroup2 tree at /sys/fs/cgroup/unified used for membership, freezing and killing). On a hybrid
host the container gets a cgroup of the same path in every v1 hierarchy too, so each limit is
driven where its controller lives. pyrt only ever creates and removes cgroups it made itself
(they carry the xattr CREATED_MARK); a cgroup named by linux.cgroupsPath that already exists
(and is empty) is joined, given the config's limits, and left in place.
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
#: The v1 controllers pyrt knows (other mount options of a v1 hierarchy are not controllers).
V1_CONTROLLERS = frozenset(("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
                            "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc"))
#: Writable cgroup2 core files a config may set through linux.resources.unified.
UNIFIED_CORE = ("cgroup.max.depth", "cgroup.max.descendants")


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


def v1_hierarchies() -> dict[str, str]:
    """controller (or `name=NAME`) -> mount point, for every cgroup v1 hierarchy mounted with
    its root at / (from /proc/self/mountinfo; the first mount of a hierarchy wins)."""
    found: dict[str, str] = {}
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split()
            sep = fields.index(b"-")
            if fields[sep + 1] != b"cgroup" or fields[3] != b"/":
                continue
            mount_point = fields[4].decode()
            for opt in fields[sep + 3].decode().split(","):
                if opt in V1_CONTROLLERS or opt.startswith("name="):
                    found.setdefault(opt, mount_point)
    return found


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
    if not parts or any(p in (".", "..") or "\n" in p for p in parts):
        raise PyrtError(f'config.json: linux.cgroupsPath: "{cgroups_path}" must name a cgroup below the root')
    return "/".join(parts)


class Cgroup:
    """One container's cgroup. Its state (where it is) is saved with the container."""

    def __init__(self, root: str, path: str, v1: dict[str, str] | None = None) -> None:
        self.root = root  # the cgroup2 mount
        self.path = path  # relative to root (and to each v1 mount)
        self.v1 = v1 or {}  # controller -> v1 mount point (hybrid hosts)
        self._v2_controllers: set[str] | None = None

    @property
    def dir(self) -> str:
        """The container's cgroup2 directory: its membership, freezer and kill switch."""
        return os.path.join(self.root, self.path)

    @classmethod
    def for_spec(cls, cgroups_path: str | None, container_id: str) -> Cgroup:
        root = unified_root()
        return cls(root, resolve_path(cgroups_path, container_id), v1_hierarchies() if root != ROOT else None)

    def to_state(self) -> dict:
        out = {"root": self.root, "path": self.path}
        if self.v1:
            out["v1"] = self.v1
        return out

    @classmethod
    def from_state(cls, state: dict) -> Cgroup:
        return cls(state["root"], state["path"], state.get("v1"))

    # -- where things are ------------------------------------------------------------------

    def bases(self) -> list[str]:
        """The cgroup2 mount, then each v1 hierarchy's mount once."""
        return [self.root, *dict.fromkeys(self.v1.values())]

    def dirs(self) -> list[str]:
        return [os.path.join(base, self.path) for base in self.bases()]

    def v2_controllers(self) -> set[str]:
        """The controllers of the cgroup2 hierarchy (its root's cgroup.controllers)."""
        if self._v2_controllers is None:
            self._v2_controllers = set(_read(os.path.join(self.root, "cgroup.controllers")).split())
        return self._v2_controllers

    def version(self, v1_name: str, v2_name: str | None) -> int:
        """Where a controller is driven here: 1 (a v1 hierarchy), 2 (cgroup2), 0 (nowhere).
        `devices` on cgroup2 is a BPF program, which needs no controller."""
        if v1_name in self.v1:
            return 1
        if v2_name and (v2_name == "devices" or v2_name in self.v2_controllers()):
            return 2
        return 0

    def controller_dir(self, v1_name: str) -> str:
        """The container's directory for a controller: its v1 hierarchy, or the cgroup2 one."""
        base = self.v1.get(v1_name)
        return os.path.join(base, self.path) if base else self.dir

    # -- lifecycle -------------------------------------------------------------------------

    def create(self, resources: dict, device_nodes: list | tuple = ()) -> None:
        """Make the cgroup (joining it if it exists) and apply linux.resources. `device_nodes`
        are the linux.devices pyrt-init will mknod (the device rules must let it)."""
        from pyrt import resources as res

        writes = res.plan(resources, self, "config.json: linux.resources", device_nodes=device_nodes)
        if self.pids():
            raise PyrtError(f"cgroup {self.dir} is not empty: it belongs to a running container")
        try:
            self._make(writes)
            res.apply(self, writes, "config.json: linux.resources")
        except BaseException:
            self.destroy()
            raise

    def _make(self, writes: list) -> None:
        """mkdir the path in every hierarchy (parents too) and enable the cgroup2 controllers
        down the parents pyrt made. Retried when a parent vanishes under us (the last
        container of a shared parent was deleted at that moment)."""
        for attempt in range(5):
            try:
                for base in self.bases():
                    self._make_in(base)
                break
            except FileNotFoundError:
                if attempt == 4:
                    raise PyrtError(f"create cgroup {self.path}: a parent keeps disappearing") from None
        have = set(_read(os.path.join(self.dir, "cgroup.controllers")).split())
        for w in writes:
            if w.version == 2 and w.controller not in ("devices", "cgroup") and w.controller not in have:
                raise PyrtError(f"{w.where}.{w.field}: the {w.controller} controller is not enabled for "
                                f"{self.dir} (cgroup.subtree_control of its parent)")

    def _make_in(self, base: str) -> None:
        parts = self.path.split("/")
        for i in range(1, len(parts) + 1):
            path = os.path.join(base, *parts[:i])
            try:
                os.mkdir(path, 0o755)
            except FileExistsError:
                if base == self.v1.get("cpuset"):
                    _await_cpuset(path)
            except FileNotFoundError:
                raise  # a parent vanished: _make retries
            except OSError as e:
                raise PyrtError(f"create cgroup {path}: {os.strerror(e.errno).lower()}") from None
            else:
                os.setxattr(path, CREATED_MARK, b"1")
                if base == self.v1.get("cpuset"):
                    _inherit_cpuset(path)
            if base == self.root and i < len(parts) and _created_by_pyrt(path):
                _enable_controllers(path)

    def open_dir(self) -> int:
        """An fd of the cgroup2 directory, for clone3(CLONE_INTO_CGROUP)."""
        return os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def open_v1_tasks(self) -> list[int]:
        """Write-only fds of the `tasks` file of each v1 hierarchy (hybrid hosts; none on v2).
        pyrt-init writes "0" into them first thing (step join-cgroups): a thread moving itself
        skips the kernel's global threadgroup lock and the RCU grace period behind it, ~10 ms
        each time a parent writes a pid into cgroup.procs instead."""
        fds: list[int] = []
        try:
            for d in self.dirs()[1:]:
                fds.append(os.open(os.path.join(d, "tasks"), os.O_WRONLY | os.O_CLOEXEC))
        except OSError as e:
            for fd in fds:
                os.close(fd)
            raise PyrtError(f"open {d}/tasks: {os.strerror(e.errno).lower()}") from None
        return fds

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

    def _v1_freezer(self) -> str | None:
        """freezer.state of the v1 freezer, when cgroup2 has no cgroup.freeze (kernels < 5.2)."""
        if os.path.exists(os.path.join(self.dir, "cgroup.freeze")) or "freezer" not in self.v1:
            return None
        return os.path.join(self.controller_dir("freezer"), "freezer.state")

    def freeze(self, frozen: bool) -> None:
        """Freeze or thaw, and wait until the kernel says it is done: cgroup.events on v2,
        freezer.state on the v1 freezer."""
        state = self._v1_freezer()
        if state is not None:
            path, want = state, b"FROZEN" if frozen else b"THAWED"
            _write(path, want.decode())
        else:
            _write(os.path.join(self.dir, "cgroup.freeze"), "1" if frozen else "0")
            path, want = os.path.join(self.dir, "cgroup.events"), b"frozen 1" if frozen else b"frozen 0"
        for _ in range(2500):
            with open(path, "rb") as f:
                if want in f.read():
                    return
            time.sleep(0.002)
        raise PyrtError(f"cgroup {self.dir} did not {'freeze' if frozen else 'thaw'} in time")

    def frozen(self) -> bool:
        state = self._v1_freezer()
        try:
            if state is not None:
                return _read(state).strip() != "THAWED"
            with open(os.path.join(self.dir, "cgroup.freeze"), "rb") as f:
                return f.read().strip() == b"1"
        except OSError:
            return False

    def destroy(self) -> None:
        """Kill what is left, then remove the cgroup and the parents pyrt created, in every
        hierarchy. A cgroup pyrt did not create (joined by path) stays."""
        if self.exists() and self.pids():
            self.kill(9)
            if self.frozen():
                self.freeze(False)
        parts = self.path.split("/")
        for base in self.bases():
            for i in range(len(parts), 0, -1):
                path = os.path.join(base, *parts[:i])
                if not _created_by_pyrt(path) or not _rmdir(path, wait=i == len(parts)):
                    break


def mount_steps(cg: Cgroup, dest: str, opts, cgroupns: bool, fstype: str = "cgroup") -> list:
    """The steps for a `cgroup`/`cgroup2` mount in config.json, right for this host: the
    container's own cgroup, seen as the root; read-only unless the options say otherwise.
    `cgroup2` on a hybrid host is its cgroup2 tree alone."""
    from pyrt import mounts
    from pyrt.plan import Step

    flags = opts.flags & ~mounts.MS_BIND
    if cg.root == ROOT or fstype == "cgroup2":
        if cgroupns:
            return [Step("mount", "cgroup2", dest, "cgroup2", flags, 0, "", 1, 0, 0)]
        return [Step("mount", cg.dir, dest, "", flags | mounts.MS_BIND, 0, "", 1, 0, 0)]
    # hybrid: a tmpfs holding the container's own directory of each hierarchy, as the host
    # lays them out (/sys/fs/cgroup/memory, .../unified, ...; co-mounted ones get symlinks)
    steps = [Step("mount", "cgroup", dest, "tmpfs", flags & ~mounts.MS_RDONLY, 0, "mode=755", 1, 0, 0)]
    for base in cg.bases():
        name = os.path.basename(base)
        steps.append(Step("mount", os.path.join(base, cg.path), f"{dest}/{name}", "", flags | mounts.MS_BIND,
                          0, "", 1, 0, 0))
    for controller, base in cg.v1.items():
        name = controller.removeprefix("name=")
        if name != os.path.basename(base) and "," in os.path.basename(base):
            steps.append(Step("symlink", os.path.basename(base), f"{dest}/{name}"))
    if flags & mounts.MS_RDONLY:
        steps.append(Step("remount", dest, mounts.MS_RDONLY))
    return steps


def _read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read().decode()


def _write(path: str, value: str) -> None:
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


def _enable_controllers(path: str) -> None:
    """Let the children of a cgroup pyrt made use every controller it has (limits, and the
    statistics `events` reads)."""
    have = _read(os.path.join(path, "cgroup.controllers")).split()
    enabled = set(_read(os.path.join(path, "cgroup.subtree_control")).split())
    missing = [c for c in have if c not in enabled]
    if missing:
        _write(os.path.join(path, "cgroup.subtree_control"), " ".join("+" + c for c in missing))


def _inherit_cpuset(path: str) -> None:
    """A new v1 cpuset starts with no CPUs and no memory nodes (no task may join it): give it
    its parent's."""
    parent = os.path.dirname(path)
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not _read(os.path.join(path, name)).strip():
            _write(os.path.join(path, name), _read(os.path.join(parent, name)).strip() or "\n")


def _await_cpuset(path: str) -> None:
    """A parent cpuset that another `create` made a moment ago may not have its CPUs yet (its
    children could not take any): wait for its creator to fill it, or fill it ourselves if pyrt
    made it and its creator is gone."""
    for _ in range(250):
        if all(_read(os.path.join(path, name)).strip() for name in ("cpuset.cpus", "cpuset.mems")):
            return
        time.sleep(0.002)
    if _created_by_pyrt(path):
        _inherit_cpuset(path)


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
