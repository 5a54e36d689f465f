"""config.json mounts -> mount steps: option words (kernel.FLAGS, exactly runc's) to flags."""

from __future__ import annotations

from pyrt.errors import PyrtError
from pyrt.kernel import FLAGS, MS_BIND, MS_REC, MS_REMOUNT, PROPAGATION, RECURSIVE
from pyrt.spec import Mount
from pyrt.steps import Fd, Step

#: Filesystems whose destination must not contain a symlink (CVE-2019-16884 and kin).
NO_SYMLINK_TYPES = ("proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2")


class Options:
    """A mount's options, split the way mount(2) and mount_setattr(2) take them."""

    __slots__ = ("flags", "propagation", "attr_set", "attr_clr", "data", "copyup", "idmap")

    def __init__(self, options: list[str], where: str) -> None:
        self.flags = self.propagation = self.attr_set = self.attr_clr = 0
        self.copyup = False  # runc's tmpcopyup: the tmpfs starts with what it covers
        self.idmap = ""  # "idmap" or "ridmap" (recursive): an idmapped bind mount
        data = []
        for opt in options:
            if opt in FLAGS:
                set_, clear = FLAGS[opt]
                self.flags = (self.flags | set_) & ~clear
            elif opt in PROPAGATION:
                self.propagation |= PROPAGATION[opt]
            elif opt in RECURSIVE:
                set_, clear = RECURSIVE[opt]
                self.attr_set, self.attr_clr = self.attr_set | set_, self.attr_clr | clear
            elif opt == "tmpcopyup":
                self.copyup = True
            elif opt in ("idmap", "ridmap"):
                self.idmap = opt
            elif not opt:
                raise PyrtError(f"{where}: empty mount option")
            else:
                data.append(opt)
        self.data = ",".join(data)

    @property
    def bind(self) -> bool:
        return bool(self.flags & MS_BIND)


def options(mount: Mount, index: int) -> Options:
    where = f"config.json: mounts[{index}]"
    opts = Options(mount.options, where)
    if mount.type in ("bind", "rbind") and not opts.bind:
        opts.flags |= MS_BIND | (MS_REC if mount.type == "rbind" else 0)
    if opts.bind and opts.data:
        raise PyrtError(f'{where}: unknown mount option "{opts.data.split(",")[0]}" for a bind mount')
    if not opts.bind and not mount.type:
        raise PyrtError(f"{where}: type is required for a mount that is not a bind mount")
    if opts.flags & MS_REMOUNT:
        raise PyrtError(f'{where}: mount option "remount" is not allowed in config.json')
    if opts.copyup and (opts.bind or mount.type != "tmpfs"):
        raise PyrtError(f'{where}: mount option "tmpcopyup" is for tmpfs mounts only')
    return opts


def idmap_slot(index: int) -> str:
    """The fd slot of mounts[index]'s idmapped tree, made by the parent (pyrt/userns.py)."""
    return f"idmap:{index}"


def idmapping(mount: Mount, opts: Options, index: int, uid_maps: list, gid_maps: list) -> tuple | None:
    """An idmapped mount's (uid maps, gid maps, recursive), or None for a mount that is not one. As
    runc 1.2+: mappings on the mount make it idmapped (`idmap` implied); `idmap`/`ridmap` without
    mappings take the container's user namespace's (`uid_maps`, `gid_maps`); only bind mounts;
    `ridmap` maps every mount of an rbind, `idmap` its top one."""
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


def idmapped_step(mount: Mount, opts: Options, index: int, bundle: str) -> Step:
    """Attach mounts[index]'s idmapped tree, which the parent made (the kernel lets only the
    filesystem's owner, the host's root, idmap it: never the container's root)."""
    import os

    source = os.path.normpath(os.path.join(bundle, mount.source))
    return Step("mount-idmapped", Fd(idmap_slot(index)), source, mount.destination, opts.flags & ~(MS_BIND | MS_REC),
                opts.propagation, opts.attr_set, opts.attr_clr)


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
