"""The container's cgroup: where it lives, creating and removing it, its processes.

pyrt works on pure cgroup v2 hosts and on hybrid hosts (controllers on v1 hierarchies, plus a
cgroup2 tree at /sys/fs/cgroup/unified used for membership, freezing and killing). On a hybrid
host the container gets a cgroup of the same path in every v1 hierarchy too, so each limit is
driven where its controller lives.

Whose is what: pyrt removes only directories it made (journaled before the mkdir, marked with
the xattr CREATED_MARK after it), and signals, freezes or limits a whole subtree only where it
made the leaf for this very container (the mark names the container). A cgroup named by
linux.cgroupsPath that already exists is *joined*, as runc does, only if it holds no process
and is not frozen; it gets the config's limits and stays. In a joined cgroup the container's
processes are those of its own pid namespace (or, without one, the cgroup's direct members):
kill and delete signal only them, and pause and update refuse while other processes are in it.
"""

from __future__ import annotations

import os

from pyrt import cgfs, journal
from pyrt.cgfs import SHARED
from pyrt.errors import PyrtError
from pyrt.host import ROOT, HostLayout, probe, v1_slots

#: Where containers without linux.cgroupsPath (and relative paths) go.
DEFAULT_PARENT = "pyrt"


def root_tag(root: str) -> str:
    """The default parent of one --root's containers: `pyrt/<tag>`, 8 hex digits of the state
    root's absolute path, so the same id under two roots never lands in one cgroup."""
    import zlib

    return f"{zlib.crc32(os.path.abspath(root).encode()):08x}"


def resolve_path(cgroups_path: str | None, container_id: str, root: str) -> str:
    """linux.cgroupsPath (checked at the gate: below the root, not systemd's) -> a path
    relative to the cgroup root. Without one (or with a relative one) the path is below
    `pyrt/<root_tag(root)>`."""
    if cgroups_path is None:
        return f"{DEFAULT_PARENT}/{root_tag(root)}/{container_id}"
    parts = [p for p in cgroups_path.split("/") if p]
    if cgroups_path.startswith("/"):
        return "/".join(parts)
    return "/".join((DEFAULT_PARENT, root_tag(root), *parts))


class Cgroup:
    """One container's cgroup. Its state (where it is, whose it is) is saved with the container.

    `owner` names the container (its state directory): the leaf directories pyrt made for it
    carry it as their mark. Only in those does the whole subtree belong to the container; in a
    joined cgroup (one that existed) its processes are those of its own pid namespace, or,
    without one, the cgroup's direct members (see processes())."""

    def __init__(self, root: str, path: str, v1: dict[str, str] | None = None, owner: str = "",
                 own_pidns: bool = False) -> None:
        self.root = root  # the cgroup2 mount
        self.path = path  # relative to root (and to each v1 mount)
        self.v1 = v1 or {}  # controller -> v1 mount point (hybrid hosts)
        self.owner = owner  # the container's state directory: the mark of the leaves made for it
        self.own_pidns = own_pidns  # the container has a pid namespace of its own
        self.init_pid = 0  # its live init, if known (Container.cgroup() sets it)
        self._v2_controllers: set[str] | None = None

    @property
    def dir(self) -> str:
        """The container's cgroup2 directory: its membership, freezer and kill switch."""
        return os.path.join(self.root, self.path)

    @classmethod
    def for_spec(cls, cgroups_path: str | None, container_id: str, root: str = "/run/pyrt",
                 own_pidns: bool = False, host: HostLayout | None = None) -> Cgroup:
        """The cgroup of container `container_id` under state root `root`, on `host` (this
        host's layout, read now, if not given)."""
        if host is None:
            host = probe()
        cg = cls(host.cgroup2, resolve_path(cgroups_path, container_id, root), host.v1,
                 os.path.join(os.path.abspath(root), container_id), own_pidns)
        if host.v2_controllers is not None:
            cg._v2_controllers = set(host.v2_controllers)
        return cg

    def to_state(self) -> dict:
        out = {"root": self.root, "path": self.path, "owner": self.owner, "own_pidns": self.own_pidns}
        if self.v1:
            out["v1"] = self.v1
        return out

    @classmethod
    def from_state(cls, state: dict) -> Cgroup:
        return cls(state["root"], state["path"], state.get("v1"), state.get("owner", ""), state.get("own_pidns", False))

    # -- where things are ------------------------------------------------------------------

    def bases(self) -> list[str]:
        """The cgroup2 mount, then each v1 hierarchy's mount once."""
        return [self.root, *dict.fromkeys(self.v1.values())]

    def dirs(self) -> list[str]:
        return [os.path.join(base, self.path) for base in self.bases()]

    def v2_controllers(self) -> set[str]:
        """The controllers of the cgroup2 hierarchy (its root's cgroup.controllers)."""
        if self._v2_controllers is None:
            self._v2_controllers = set(cgfs.read(os.path.join(self.root, "cgroup.controllers")).split())
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

    # -- whose it is -----------------------------------------------------------------------

    def owned(self, path: str | None = None) -> bool:
        """Whether pyrt made this leaf directory (the cgroup2 one by default) for this container."""
        return bool(self.owner) and cgfs.mark(path or self.dir) == self.owner.encode()

    def processes(self) -> list[int]:
        """The container's processes: the whole subtree of a leaf made for it; in a joined
        cgroup, the processes in its subtree that are in the container's own pid namespace
        (while its init lives: the namespace dies with it), or without one the cgroup's direct
        members (it was empty when joined)."""
        mine = self._is_mine()
        return [pid for pid in cgfs.subtree_procs(self.dir) if mine(pid)]

    def _is_mine(self):
        """A test of whether a process is the container's (processes()), by its cgroup and
        pid namespace as /proc says now."""
        leaf = "/" + self.path
        if self.owned():
            return lambda pid: cgfs.within(cgfs.cgroup2_path(pid), leaf)
        if not self.own_pidns:
            return lambda pid: cgfs.cgroup2_path(pid) == leaf
        ns = cgfs.pidns(self.init_pid) if self.init_pid else None
        return lambda pid: ns is not None and cgfs.pidns(pid) == ns and cgfs.within(cgfs.cgroup2_path(pid), leaf)

    def foreign(self, path: str) -> list[int]:
        """Processes in the subtree of one of the container's directories that are not its own
        (none where pyrt made the directory for it)."""
        if self.owned(path):
            return []
        mine = set(self.processes())
        return [pid for pid in cgfs.subtree_procs(path) if pid not in mine]

    def check_alone(self, what: str, paths: list[str] | None = None) -> None:
        """Refuse to act on a joined cgroup whose subtree also holds other processes (a freeze,
        a limit would reach them too)."""
        for path in paths or self.dirs():
            others = self.foreign(path)
            if others:
                raise PyrtError(f"{what}: cgroup {path} also holds processes that are not the container's "
                                f"(pid {', '.join(map(str, others[:5]))}); pyrt acts only on its own")

    # -- lifecycle -------------------------------------------------------------------------

    def make(self, state_dir_fd: int) -> None:
        """Make the cgroup in every hierarchy (joining a leaf that exists and is empty). What it
        makes is journaled first in the state directory: the caller's journal.undo() removes
        it, after a failure as after a kill."""
        with cgfs.Lock(self.root):
            made = self._check_and_list()
            journal.record(state_dir_fd, "cgroup", cgroup=self.to_state(), made=made)
            self._prepare_parents(cpuset=True)  # a half-made one first: what is made below inherits from it
            for path in made:
                self._make_dir(path)
            self._prepare_parents(cpuset=False)
            for base, leaf in zip(self.bases(), self.dirs(), strict=True):
                if base in (self.root, self.v1.get("freezer")):
                    self._check_not_frozen(leaf, base)

    def limit(self, writes: list) -> None:
        """Apply linux.resources (cgwrites.writes(): checked against this host already)."""
        from pyrt import cgwrites

        have = set(cgfs.read(os.path.join(self.dir, "cgroup.controllers")).split())
        for w in writes:
            if w.version == 2 and w.controller not in ("devices", "cgroup") and w.controller not in have:
                raise PyrtError(f"{w.where}: the {w.controller} controller is not enabled for {self.dir} "
                                "(cgroup.subtree_control of its parent)")
        cgwrites.apply(self, writes)

    def _check_and_list(self) -> list[str]:
        """Check what exists of the path in every hierarchy (nothing of another container's; a
        leaf to join empty); the directories to make, parents first."""
        parts = self.path.split("/")
        made = []
        for base in self.bases():
            for i in range(1, len(parts) + 1):
                path = os.path.join(base, *parts[:i])
                if not os.path.isdir(path):
                    made += [os.path.join(base, *parts[:j]) for j in range(i, len(parts) + 1)]
                    break
                mark = cgfs.mark(path)
                if mark not in (None, SHARED, self.owner.encode()):  # the leaf of another (or below it)
                    raise PyrtError(f"cgroup {path} is the cgroup of container {mark.decode(errors='replace')}: "
                                    "a container's cgroup is never shared")
                if i == len(parts):
                    self._check_joinable(path, base)
        return made

    def _check_joinable(self, path: str, base: str) -> None:
        """A leaf that exists already: as runc, only an empty one (frozen: see make)."""
        pids = cgfs.subtree_procs(path)
        if pids:
            raise PyrtError(f"container's cgroup is not empty: {len(pids)} process(es) found in {path}")

    def _check_not_frozen(self, path: str, base: str) -> None:
        """A frozen leaf (joined frozen, or made below a frozen parent) would freeze the init and
        hang create: refused in runc's words (runc 1.5 refuses a frozen leaf it joins, and hangs
        below a frozen parent)."""
        if base == self.root:
            events = cgfs.read_or(os.path.join(path, "cgroup.events"))
            frozen = "frozen 1" in events
        else:
            frozen = cgfs.read_or(os.path.join(path, "freezer.state")).strip() not in ("", "THAWED")
        if frozen:
            raise PyrtError(f"container's cgroup unexpectedly frozen: {path}")

    def _make_dir(self, path: str) -> None:
        """mkdir one directory and mark it: a leaf with its owner, a parent as shared."""
        try:
            os.mkdir(path, 0o755)
        except OSError as e:
            raise PyrtError(f"create cgroup {path}: {os.strerror(e.errno).lower()}") from None
        cgfs.set_mark(path, self.owner.encode() if path in self.dirs() else SHARED)
        if "cpuset" in self.v1 and path.startswith(self.v1["cpuset"] + "/"):
            cgfs.inherit_cpuset(path)

    def _prepare_parents(self, cpuset: bool) -> None:
        """Down the parents pyrt made (shared mark): give each v1 cpuset parent whose creator was
        killed before it did its CPUs and memory nodes (`cpuset`), or enable every cgroup2
        controller for their children (limits, and the statistics `events` reads)."""
        base = self.v1.get("cpuset") if cpuset else self.root
        if base is None:
            return
        parts = self.path.split("/")
        for i in range(1, len(parts)):
            path = os.path.join(base, *parts[:i])
            if cgfs.mark(path) != SHARED:
                continue
            if cpuset:
                cgfs.inherit_cpuset(path)
            else:
                cgfs.enable_controllers(path)

    def open_dir(self) -> int:
        """An fd of the cgroup2 directory, for clone3(CLONE_INTO_CGROUP)."""
        return os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def open_v1_tasks(self) -> dict[str, int]:
        """Write-only fds of the `tasks` file of each v1 hierarchy (hybrid hosts; none on v2), by
        fd slot (host.v1_slots). pyrt-init writes "0" into them first thing (step join-cgroups):
        a thread moving itself skips the kernel's global threadgroup lock and the RCU grace
        period behind it, ~10 ms each time a parent writes a pid into cgroup.procs instead."""
        fds: dict[str, int] = {}
        try:
            for slot, base in v1_slots(self.v1).items():
                d = os.path.join(base, self.path)
                fds[slot] = os.open(os.path.join(d, "tasks"), os.O_WRONLY | os.O_CLOEXEC)
        except OSError as e:
            for fd in fds.values():
                os.close(fd)
            raise PyrtError(f"open {d}/tasks: {os.strerror(e.errno).lower()}") from None
        return fds

    def kill(self, sig: int) -> None:
        """Signal every process of the container (processes()): SIGKILL through cgroup.kill
        where the whole subtree is the container's (no pid races), else one by one, each
        checked again once a pidfd holds it (its pid cannot be recycled then)."""
        if sig == 9 and self.owned() and os.path.exists(os.path.join(self.dir, "cgroup.kill")):
            cgfs.write(os.path.join(self.dir, "cgroup.kill"), "1")
            return
        mine = self._is_mine()
        for pid in cgfs.subtree_procs(self.dir):
            cgfs.signal(pid, sig, mine)

    def _v1_freezer(self) -> str | None:
        """freezer.state of the v1 freezer, when cgroup2 has no cgroup.freeze (kernels < 5.2)."""
        if os.path.exists(os.path.join(self.dir, "cgroup.freeze")) or "freezer" not in self.v1:
            return None
        return os.path.join(self.controller_dir("freezer"), "freezer.state")

    def freeze(self, frozen: bool) -> None:
        """Freeze or thaw, and wait until the kernel says it is done: cgroup.events on v2,
        freezer.state on the v1 freezer. A joined cgroup is frozen only while it holds the
        container's processes alone (checked again once frozen: one may have joined meanwhile)."""
        state = self._v1_freezer()
        where = os.path.dirname(state) if state else self.dir
        if frozen:
            self.check_alone("pause", [where])
        self._set_frozen(frozen, state)
        if frozen and self.foreign(where):
            self._set_frozen(False, state)
            self.check_alone("pause", [where])

    def _set_frozen(self, frozen: bool, state: str | None) -> None:
        if state is not None:
            path, want = state, b"FROZEN" if frozen else b"THAWED"
            cgfs.write(path, want.decode())
        else:
            cgfs.write(os.path.join(self.dir, "cgroup.freeze"), "1" if frozen else "0")
            path, want = os.path.join(self.dir, "cgroup.events"), b"frozen 1" if frozen else b"frozen 0"
        if not cgfs.wait_for(path, want):
            raise PyrtError(f"cgroup {self.dir} did not {'freeze' if frozen else 'thaw'} in time")

    def frozen(self) -> bool:
        state = self._v1_freezer()
        if state is not None:
            return cgfs.read_or(state).strip() not in ("", "THAWED")
        return cgfs.read_or(os.path.join(self.dir, "cgroup.freeze")).strip() == "1"


def undo(item: dict, dir_fd: int) -> None:
    """Undo a journal record of Cgroup.make: {"cgroup": its state, "made": the directories it
    was about to make}. What is left of the container is killed (processes()); then in every
    hierarchy the leaf goes if it is the container's: its mark, or no mark yet where this create
    made it (killed between mkdir and mark). Then the parents pyrt made, while empty."""
    cg, made = Cgroup.from_state(item["cgroup"]), set(item["made"])
    mine = [d for d in cg.dirs() if cg.owned(d) or (d in made and cgfs.mark(d) is None)]
    cg.kill(9)
    for d in mine:  # frozen processes cannot die (v1 freezer): thaw
        if d == cg.dir and cgfs.read_or(os.path.join(d, "cgroup.freeze")).strip() == "1":
            cgfs.write(os.path.join(d, "cgroup.freeze"), "0")
        elif cgfs.read_or(os.path.join(d, "freezer.state")).strip() not in ("", "THAWED"):
            cgfs.write(os.path.join(d, "freezer.state"), "THAWED")
    parts = cg.path.split("/")
    for base, leaf in zip(cg.bases(), cg.dirs(), strict=True):
        if leaf in mine:
            cgfs.remove_tree(leaf)
        with cgfs.Lock(cg.root):
            _remove_parents([os.path.join(base, *parts[:i]) for i in range(len(parts) - 1, 0, -1)], made)


def _remove_parents(parents: list[str], made: set[str]) -> None:
    """Up from the leaf's parent, remove each parent pyrt made (marked shared, or unmarked where
    this create was making it) while it is empty. One that is gone already is passed: the ones
    above may be pyrt's and empty now. The walk stops at a parent that is not pyrt's, or that
    other containers use: that one keeps or gets the shared mark, so the last one out removes it."""
    for parent in parents:
        if not os.path.isdir(parent):
            continue
        mark = cgfs.mark(parent)
        if mark != SHARED and not (mark is None and parent in made):
            return
        if not cgfs.rmdir(parent, wait=False):
            if mark is None and os.path.isdir(parent):
                cgfs.set_mark(parent, SHARED)
            return


def mount_steps(cg: Cgroup, dest: str, opts, cgroupns: bool, fstype: str = "cgroup") -> list:
    """The steps for a `cgroup`/`cgroup2` mount in config.json, right for this host: the
    container's own cgroup, seen as the root; read-only unless the options say otherwise.
    `cgroup2` on a hybrid host is its cgroup2 tree alone."""
    from pyrt import kernel
    from pyrt.steps import Step

    flags = opts.flags & ~kernel.MS_BIND
    if cg.root == ROOT or fstype == "cgroup2":
        if cgroupns:
            return [Step("mount", "cgroup2", dest, "cgroup2", flags, 0, "", True, 0, 0)]
        return [Step("mount", cg.dir, dest, "", flags | kernel.MS_BIND, 0, "", True, 0, 0)]
    # hybrid: a tmpfs holding the container's own directory of each hierarchy, as the host
    # lays them out (/sys/fs/cgroup/memory, .../unified, ...; co-mounted ones get symlinks)
    steps = [Step("mount", "cgroup", dest, "tmpfs", flags & ~kernel.MS_RDONLY, 0, "mode=755", True, 0, 0)]
    for base in cg.bases():
        name = os.path.basename(base)
        steps.append(Step("mount", os.path.join(base, cg.path), f"{dest}/{name}", "", flags | kernel.MS_BIND,
                          0, "", True, 0, 0))
    for controller, base in cg.v1.items():
        name = controller.removeprefix("name=")
        if name != os.path.basename(base) and "," in os.path.basename(base):
            steps.append(Step("symlink", os.path.basename(base), f"{dest}/{name}"))
    if flags & kernel.MS_RDONLY:
        steps.append(Step("remount", dest, kernel.MS_RDONLY))
    return steps


