"""config.json mounts -> mount steps (their options were parsed at the gate: mountopts.py)."""

from __future__ import annotations

from pyrt.errors import PyrtError
from pyrt.kernel import MS_BIND, MS_REC, MS_REMOUNT
from pyrt.spec import Mount
from pyrt.steps import Fd, Step

TYPE_CHECKING = False  # `typing` costs an import on the start path; type checkers know the name
if TYPE_CHECKING:
    from pyrt.mountopts import Options

#: Filesystems whose destination must not contain a symlink (CVE-2019-16884 and kin).
NO_SYMLINK_TYPES = ("proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2")


def idmap_slot(index: int) -> str:
    """The fd slot of mounts[index]'s idmapped tree, made by the parent (pyrt/userns.py)."""
    return f"idmap:{index}"


def idmapping(mount: Mount, index: int, uid_maps: tuple, gid_maps: tuple) -> tuple | None:
    """An idmapped mount's (uid maps, gid maps, recursive), or None for a mount that is not one. As
    runc 1.2+: mappings on the mount make it idmapped (`idmap` implied); `idmap`/`ridmap` without
    mappings take the container's user namespace's (`uid_maps`, `gid_maps`); only bind mounts;
    `ridmap` maps every mount of an rbind, `idmap` its top one."""
    opts = mount.opts
    if not opts.idmap and not mount.uid_mappings:
        return None
    where = f"config.json: mounts[{index}]"
    if not opts.bind:
        raise PyrtError(f"{where}: idmapped mounts are only supported for bind mounts")
    if mount.uid_mappings:
        return mount.uid_mappings, mount.gid_mappings, opts.idmap == "ridmap"
    if not uid_maps or not gid_maps:
        raise PyrtError(f'{where}: mount option "{opts.idmap}" without uidMappings and gidMappings takes those of '
                        "the container's user namespace, and it has none")
    return uid_maps, gid_maps, opts.idmap == "ridmap"


def idmapped_step(mount: Mount, index: int, bundle: str, dest: str | None = None) -> Step:
    """Attach mounts[index]'s idmapped tree, which the parent made (the kernel lets only the
    filesystem's owner, the host's root, idmap it: never the container's root)."""
    import os

    opts = mount.opts
    source = os.path.normpath(os.path.join(bundle, mount.source))
    return Step("mount-idmapped", Fd(idmap_slot(index)), source, dest or mount.destination,
                opts.flags & ~(MS_BIND | MS_REC),
                opts.propagation, opts.attr_set, opts.attr_clr)


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
