"""The container's /dev: the default device nodes, runc's symlinks, and linux.devices."""

from __future__ import annotations

from pyrt.kernel import MS_BIND
from pyrt.spec import Device, Spec
from pyrt.steps import Step

#: The devices every container gets (the OCI spec's list), as (path, major, minor).
DEFAULT = (("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7), ("/dev/random", 1, 8),
           ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0))
SYMLINKS = (("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
            ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
            ("pts/ptmx", "/dev/ptmx"))


def needs_setup(spec: Spec) -> bool:
    """runc's rule: with /dev bind-mounted from the host, pyrt makes nothing in it (making or
    chowning a node there would change the host's /dev)."""
    return not any(m.destination == "/dev" and ("bind" in m.options or "rbind" in m.options
                                                or m.type in ("bind", "rbind"))
                   for m in spec.mounts)


def devices(spec: Spec) -> list[Device]:
    given = {d.path for d in spec.devices}
    default = [Device(p, "c", ma, mi, 0o666, 0, 0) for p, ma, mi in DEFAULT if p not in given]
    return [*default, *spec.devices]


def steps(spec: Spec, bind: bool) -> list[Step]:
    """/dev's nodes and links; `bind`: in a user namespace, where only the host's root may mknod,
    the host's nodes are bound instead, as runc."""
    if not needs_setup(spec):
        return []
    # as runc: /dev/ptmx is always the pts/ptmx symlink (podman --privileged lists the host's
    # /dev/ptmx node among its devices), and a node given for another link's path stays
    nodes = [d for d in devices(spec) if d.path != "/dev/ptmx"]
    if bind:
        out = [Step("mount", d.path, d.path, "", MS_BIND, 0, "", True, 0, 0) for d in nodes]
    else:
        out = [Step("mknod", d.path, d.type, d.major, d.minor, d.file_mode, d.uid, d.gid) for d in nodes]
    given = {d.path for d in nodes}
    return out + [Step("symlink", target, link) for target, link in SYMLINKS if link not in given]
