"""Namespaces: which are new (clone3 flags), which are joined (setns steps on fds opened here)."""

from __future__ import annotations

import os

from pyrt.errors import PyrtError
from pyrt.kernel import CLONE
from pyrt.spec import Spec
from pyrt.steps import Fd, Step

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
    """Open each namespace given by path, checking it is of the type it claims to be; by fd
    slot (`ns:<type>`)."""
    import fcntl

    fds: dict[str, int] = {}
    try:
        for kind in joined(spec):
            path = spec.namespaces[kind]
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise PyrtError(f"config.json: linux.namespaces: open {path}: {os.strerror(e.errno).lower()}") from None
            fds[slot(kind)] = fd
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


def joined(spec: Spec) -> list[str]:
    """The namespaces config.json gives by path, in JOIN_ORDER."""
    return [k for k in JOIN_ORDER if spec.namespaces.get(k)]


def slot(kind: str) -> str:
    """The fd slot of a joined namespace (open_joined's keys)."""
    return f"ns:{kind}"


def join_steps(kinds: list[str]) -> list[Step]:
    steps = [Step("setns", Fd(slot(k)), CLONE[k]) for k in kinds]
    if "pid" in kinds:
        steps.append(Step("fork"))
    return steps
