"""config.json mounts -> mount steps (their options were parsed at the gate: mountopts.py)."""

from __future__ import annotations

from pyrt.spec import Mount
from pyrt.steps import Step

TYPE_CHECKING = False  # `typing` costs an import on the start path; type checkers know the name
if TYPE_CHECKING:
    from pyrt.mountopts import Options

#: Filesystems whose destination must not contain a symlink (CVE-2019-16884 and kin).
NO_SYMLINK_TYPES = ("proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2")


def mount_step(mount: Mount, opts: Options, bundle: str) -> Step:
    """The step that performs one mounts[] entry. Bind sources are host paths (relative to the
    bundle); the destination is always resolved inside the rootfs."""
    source = mount.source
    if opts.bind:
        import os

        source = os.path.normpath(os.path.join(bundle, source))
    nosymlinks = mount.type in NO_SYMLINK_TYPES or mount.destination in ("/dev", "/proc", "/sys")
    return Step(
        "mount-copyup" if opts.copyup else "mount", source, mount.destination, "" if opts.bind else mount.type,
        opts.flags, opts.propagation, opts.data, nosymlinks, opts.attr_set, opts.attr_clr,
    )
