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
    all its cgroups (v1 ones: join-cgroups), so the namespace's root is the container's cgroup,
    and those it unshares after joining others (late()). A new user namespace comes with clone3:
    the kernel makes it first and the other new namespaces its own."""
    flags, skip = 0, late(spec)
    for kind, path in spec.namespaces.items():
        if path is None and kind != "cgroup" and kind not in skip:
            flags |= CLONE[kind]
    return flags


def late(spec: Spec) -> list[str]:
    """New namespaces pyrt-init unshares itself, after the setns steps, rather than clone3: all of
    them under a joined user namespace (they must be owned by it, as runc makes them; clone3 would
    make them the host's); a new time namespace, whose offsets must be written before its first
    process enters it (unshare, write, then a fork enters it), and with it a new pid namespace, so
    that the forked process is its init. (A new user namespace with other namespaces joined by path
    is refused at the gate.)"""
    new = [k for k, path in spec.namespaces.items() if path is None and k != "cgroup"]
    if spec.namespaces.get("user"):
        return new
    return [k for k in new if k in ("time", "pid")] if "time" in new else []


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


def steps(spec: Spec) -> list[Step]:
    """Join the namespaces given by path (the user namespace first, then its root: it grants the
    rights to join and make the others), unshare the late() ones (a new time namespace's offsets
    written then), and fork if the process must be inside a pid or time namespace it joined or
    made by unshare (only children enter those)."""
    kinds = joined(spec)
    out = [Step("setns", Fd(slot(k)), CLONE[k]) for k in kinds]
    if "user" in kinds:
        out.insert(1, Step("ns-root"))
    new = late(spec)
    if new:
        out.append(Step("unshare", sum(CLONE[k] for k in new)))
    if "time" in new:
        (mono_s, mono_ns), (boot_s, boot_ns) = (spec.time_offsets.get(c, (0, 0)) for c in ("monotonic", "boottime"))
        out.append(Step("time-offsets", mono_s, mono_ns, boot_s, boot_ns))
    if "pid" in kinds or "pid" in new or "time" in new:
        out.append(Step("fork"))
    return out
