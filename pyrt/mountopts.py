"""Mount options, checked at the gate: config.json's option names -> mount(2) flags,
propagation, mount_setattr(2) attributes and filesystem data, exactly the names runc accepts."""

from __future__ import annotations

from pyrt.errors import PyrtError
from pyrt.kernel import FLAGS, MS_BIND, MS_REC, MS_REMOUNT, PROPAGATION, RECURSIVE


class Options:
    """A mount's options, split the way mount(2) and mount_setattr(2) take them."""

    __slots__ = ("flags", "propagation", "attr_set", "attr_clr", "data", "copyup", "idmap", "cleared")

    def __init__(self, options: list[str] | tuple, where: str) -> None:
        self.flags = self.propagation = self.attr_set = self.attr_clr = 0
        self.cleared = 0  # flags an option clears (rw, suid, dev, exec, atime, ...)
        self.copyup = False  # runc's tmpcopyup: the tmpfs starts with what it covers
        self.idmap = ""  # "idmap" or "ridmap" (recursive): an idmapped bind mount (mounts.idmapping)
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
                self.idmap = opt
            elif not opt:
                raise PyrtError(f"{where}: empty mount option")
            else:
                data.append(opt)
        self.data = ",".join(data)

    @property
    def bind(self) -> bool:
        return bool(self.flags & MS_BIND)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Options) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    __hash__ = None


def parse(kind: str, options: list[str] | tuple, where: str) -> Options:
    """The options of a mount of type `kind`; errors name `where` (config.json: mounts[N])."""
    opts = Options(options, where)
    if kind in ("bind", "rbind") and not opts.bind:
        opts.flags |= MS_BIND | (MS_REC if kind == "rbind" else 0)
    if opts.bind and opts.data:
        raise PyrtError(f'{where}: unknown mount option "{opts.data.split(",")[0]}" for a bind mount')
    if not opts.bind and not kind:
        raise PyrtError(f"{where}: type is required for a mount that is not a bind mount")
    if opts.flags & MS_REMOUNT:
        raise PyrtError(f'{where}: mount option "remount" is not allowed in config.json')
    if opts.copyup and (opts.bind or kind != "tmpfs"):
        raise PyrtError(f'{where}: mount option "tmpcopyup" is for tmpfs mounts only')
    return opts
