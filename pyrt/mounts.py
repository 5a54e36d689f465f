"""config.json mounts -> mount steps (their options were parsed at the gate: mountopts.py)."""

from __future__ import annotations

from pyrt.kernel import MS_REMOUNT
from pyrt.spec import Mount
from pyrt.steps import Step

TYPE_CHECKING = False  # `typing` costs an import on the start path; type checkers know the name
if TYPE_CHECKING:
    from pyrt.mountopts import Options

#: Filesystems whose destination must not contain a symlink (CVE-2019-16884 and kin).
NO_SYMLINK_TYPES = ("proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2")


def mount_step(mount: Mount, opts: Options, bundle: str, dest: str | None = None, clear: int = 0) -> Step:
    """The step that performs one mounts[] entry on `dest` (see in_root; by default its
    destination), without the flags `clear`. Bind sources are host paths (relative to the
    bundle); the destination is always resolved inside the rootfs."""
    source = mount.source
    if opts.bind:
        import os

        source = os.path.normpath(os.path.join(bundle, source))
    dest = dest or mount.destination
    nosymlinks = mount.type in NO_SYMLINK_TYPES or dest in ("/dev", "/proc", "/sys")
    flags = opts.flags & ~clear
    if opts.bind and opts.cleared:  # as runc: the bind is remounted without the source's flags
        flags |= MS_REMOUNT
    return Step(
        "mount-copyup" if opts.copyup else "mount", source, dest, "" if opts.bind else mount.type,
        flags, opts.propagation, opts.data, nosymlinks, opts.attr_set, opts.attr_clr,
    )


def in_root(destination: str, root: str) -> str:
    """As runc: a destination given as a path inside the rootfs on the host (`<rootfs>/mnt/p`)
    means the path in the container (`/mnt/p`)."""
    root = root.rstrip("/")
    return destination[len(root):] if destination.startswith(root + "/") else destination
