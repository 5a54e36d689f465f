"""The host as a plan depends on it: where cgroup2 is mounted, the cgroup v1 hierarchies of a
hybrid host, the cgroup2 controllers. `probe()` reads them once; the planner and cgroups.py take
the result as a value, so a plan is a function of (spec, host layout, options) alone, and tests
make layouts up instead of reading this machine's.
"""

from __future__ import annotations

import os

from pyrt.errors import PyrtError

ROOT = "/sys/fs/cgroup"
#: The v1 controllers pyrt knows (other mount options of a v1 hierarchy are not controllers).
V1_CONTROLLERS = frozenset(("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
                            "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc"))


class HostLayout:
    """`cgroup2`: the cgroup2 mount (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host);
    `v1`: controller (or `name=NAME`) -> mount point of each v1 hierarchy (hybrid hosts only);
    `v2_controllers`: the controllers of the cgroup2 root (None: not read)."""

    __slots__ = ("cgroup2", "v1", "v2_controllers")

    def __init__(self, cgroup2: str = ROOT, v1: dict[str, str] | None = None,
                 v2_controllers: frozenset[str] | None = None) -> None:
        self.cgroup2, self.v1, self.v2_controllers = cgroup2, dict(v1 or {}), v2_controllers

    def v1_slots(self) -> dict[str, str]:
        """fd slot name -> mount point, one per v1 hierarchy (co-mounted controllers share one):
        the `tasks` files pyrt-init writes itself into (see steps.py, "cgroup-v1:<name>")."""
        return v1_slots(self.v1)


def v1_slots(v1: dict[str, str]) -> dict[str, str]:
    """The slots of the v1 hierarchies `v1` (controller -> mount point), in their order."""
    out: dict[str, str] = {}
    for mount_point in dict.fromkeys(v1.values()):
        name = f"cgroup-v1:{os.path.basename(mount_point)}"
        out[name if name not in out else f"{name}#{len(out)}"] = mount_point
    return out


def probe() -> HostLayout:
    """Read this host's layout (the cgroup mounts; the cgroup2 controllers)."""
    cgroup2 = unified_root()
    try:
        with open(os.path.join(cgroup2, "cgroup.controllers"), "rb") as f:
            controllers = frozenset(f.read().decode().split())
    except OSError:
        controllers = None
    return HostLayout(cgroup2, v1_hierarchies() if cgroup2 != ROOT else None, controllers)


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
