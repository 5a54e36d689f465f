"""config.json mounts -> mount steps: option words (kernel.FLAGS, exactly runc's) to flags."""

from __future__ import annotations

from pyrt.errors import PyrtError
from pyrt.kernel import FLAGS, MS_BIND, MS_REC, MS_REMOUNT, PROPAGATION, RECURSIVE
from pyrt.spec import Mount
from pyrt.steps import Step

#: Filesystems whose destination must not contain a symlink (CVE-2019-16884 and kin).
NO_SYMLINK_TYPES = ("proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2")


class Options:
    """A mount's options, split the way mount(2) and mount_setattr(2) take them."""

    __slots__ = ("flags", "propagation", "attr_set", "attr_clr", "data", "copyup", "cleared")

    def __init__(self, options: list[str], where: str) -> None:
        self.flags = self.propagation = self.attr_set = self.attr_clr = 0
        self.cleared = 0  # flags an option clears (rw, suid, dev, exec, atime, ...)
        self.copyup = False  # runc's tmpcopyup: the tmpfs starts with what it covers
        data = []
        for opt in options:
            if opt in FLAGS:
                set_, clear = FLAGS[opt]
                self.flags = (self.flags | set_) & ~clear
                self.cleared = (self.cleared | clear) & ~set_
            elif opt in PROPAGATION:
                self.propagation |= PROPAGATION[opt]
            elif opt in RECURSIVE:
                set_, clear = RECURSIVE[opt]
                self.attr_set, self.attr_clr = self.attr_set | set_, self.attr_clr | clear
            elif opt == "tmpcopyup":
                self.copyup = True
            elif opt in ("idmap", "ridmap"):
                raise PyrtError(f'{where}: mount option "{opt}" is not supported by pyrt')
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


def mount_step(mount: Mount, opts: Options, bundle: str) -> Step:
    """The step that performs one mounts[] entry. Bind sources are host paths (relative to the
    bundle); the destination is always resolved inside the rootfs."""
    source = mount.source
    if opts.bind:
        import os

        source = os.path.normpath(os.path.join(bundle, source))
    nosymlinks = mount.type in NO_SYMLINK_TYPES or mount.destination in ("/dev", "/proc", "/sys")
    flags = opts.flags
    if opts.bind and opts.cleared:  # as runc: the bind is remounted without the source's flags
        flags |= MS_REMOUNT
    return Step(
        "mount-copyup" if opts.copyup else "mount", source, mount.destination, "" if opts.bind else mount.type,
        flags, opts.propagation, opts.data, nosymlinks, opts.attr_set, opts.attr_clr,
    )


def in_root(mount: Mount, root: str) -> Mount:
    """As runc: a destination given as a path inside the rootfs on the host (`<rootfs>/mnt/p`)
    means the path in the container (`/mnt/p`)."""
    if mount.destination.startswith(root.rstrip("/") + "/"):
        return Mount(mount.destination[len(root.rstrip("/")):], mount.type, mount.source, mount.options)
    return mount
