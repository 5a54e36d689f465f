"""Namespaces: which are new (clone3 flags), which are joined (setns steps on fds opened here)."""

from __future__ import annotations

import os

from pyrt.errors import PyrtError
from pyrt.plan import Step
from pyrt.spec import Spec

CLONE = {
    "mount": 0x00020000, "uts": 0x04000000, "ipc": 0x08000000, "user": 0x10000000,
    "pid": 0x20000000, "network": 0x40000000, "cgroup": 0x02000000, "time": 0x00000080,
}
# Joining order: the user namespace first (it grants the rights to join the others), the mount
# namespace late (afterwards host paths may be gone).
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")
NS_GET_NSTYPE = 0xB703


def clone_flags(spec: Spec) -> int:
    """Flags for clone3: every new namespace but cgroup, which init unshares once it is in
    all its cgroups (v1 ones: join-cgroups), so the namespace's root is the container's cgroup."""
    flags = 0
    for kind, path in spec.namespaces.items():
        if path is None and kind != "cgroup":
            flags |= CLONE[kind]
    return flags


def open_joined(spec: Spec) -> dict[str, int]:
    """Open each namespace given by path, checking it is of the type it claims to be."""
    import fcntl

    fds: dict[str, int] = {}
    try:
        for kind in JOIN_ORDER:
            path = spec.namespaces.get(kind)
            if not path:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise PyrtError(f"config.json: linux.namespaces: open {path}: {os.strerror(e.errno).lower()}") from None
            fds[kind] = fd
            try:
                nstype = fcntl.ioctl(fd, NS_GET_NSTYPE)
            except OSError:
                nstype = -1
            if nstype != CLONE[kind]:
                raise PyrtError(f'config.json: linux.namespaces: {path} is not a "{kind}" namespace')
        return fds
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise


def join_steps(fds: dict[str, int]) -> list[Step]:
    steps = [Step("setns", fds[k], CLONE[k]) for k in JOIN_ORDER if k in fds]
    if "pid" in fds:
        steps.append(Step("fork"))
    return steps
