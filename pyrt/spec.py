"""The validated container, as everything after the gate reads it: immutable, typed values.

config.py builds a Spec from config.json (and the command line's overrides) once, having
checked everything; from then on nothing changes it: the planners, the cgroup code, hooks and
networking read these objects, never the JSON. Arrays are tuples, objects FrozenDicts, and an
attribute cannot be set again (Frozen), so a Spec that was valid stays the one that was checked.
"""

from __future__ import annotations

NAMESPACES = ("pid", "network", "mount", "ipc", "uts", "cgroup", "user", "time")
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
#: personality(2) domains the runtime spec names
PERSONALITIES = {"LINUX": 0x0000, "LINUX32": 0x0008}


class FrozenDict(dict):
    """A dict that cannot change (still a dict: JSON encodes it, lookups cost nothing extra)."""

    __slots__ = ()

    def _immutable(self, *args, **kwargs):
        raise TypeError("a validated spec cannot change")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _immutable


class Frozen:
    """Attributes given once, to __init__ (through _init), and never again."""

    __slots__ = ()

    def _init(self, **fields: object) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__}.{name}: a validated spec cannot change")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    __hash__ = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)!r}' for k in self.__slots__)})"


class Mount(Frozen):
    """One mounts[] entry; `opts` its options as mount(2) and mount_setattr(2) take them
    (mountopts.Options; None only where a test builds a Mount by hand); `uid_mappings`,
    `gid_mappings`: an idmapped mount's own, (containerID, hostID, size) triples."""

    __slots__ = ("destination", "type", "source", "options", "opts", "uid_mappings", "gid_mappings")

    def __init__(self, destination: str, type: str, source: str, options: tuple | list, opts=None,
                 uid_mappings: tuple = (), gid_mappings: tuple = ()) -> None:
        self._init(destination=destination, type=type, source=source, options=tuple(options), opts=opts,
                   uid_mappings=tuple(uid_mappings), gid_mappings=tuple(gid_mappings))


class Device(Frozen):
    __slots__ = ("path", "type", "major", "minor", "file_mode", "uid", "gid")

    def __init__(self, path: str, type: str, major: int, minor: int, file_mode: int, uid: int, gid: int) -> None:
        self._init(path=path, type=type, major=major, minor=minor, file_mode=file_mode, uid=uid, gid=gid)


class Hook(Frozen):
    __slots__ = ("path", "args", "env", "timeout")

    def __init__(self, path: str, args: tuple | list, env: tuple | list, timeout: int | None) -> None:
        self._init(path=path, args=tuple(args), env=tuple(env), timeout=timeout)


class Process(Frozen):
    """process (or exec's process.json). `capabilities`: set name ("bounding", ...) -> names
    (an absent set is empty); `rlimits`: (name, soft, hard), soft never above hard;
    `console_size`: (rows, columns); `scheduler` (sched.Scheduler), `io_priority`, `cpu_affinity`
    (execCPUAffinity's initial and final CPUs): pyrt.sched's reading, `sched_json` those fields
    as given (exec takes them from the container's process)."""

    __slots__ = ("terminal", "console_size", "args", "env", "cwd", "uid", "gid", "umask", "additional_gids",
                 "capabilities", "rlimits", "no_new_privileges", "oom_score_adj", "scheduler", "io_priority",
                 "cpu_affinity", "sched_json")

    def __init__(self, args: tuple | list, cwd: str = "/", env: tuple | list = (), terminal: bool = False,
                 console_size: tuple[int, int] = (0, 0), uid: int = 0, gid: int = 0, umask: int | None = None,
                 additional_gids: tuple | list = (), capabilities: dict | None = None,
                 rlimits: tuple | list = (), no_new_privileges: bool = False, oom_score_adj: int | None = None,
                 scheduler=None, io_priority: int | None = None, cpu_affinity: tuple = (None, None),
                 sched_json: dict | None = None) -> None:
        self._init(terminal=terminal, console_size=tuple(console_size), args=tuple(args), env=tuple(env), cwd=cwd,
                   uid=uid, gid=gid, umask=umask, additional_gids=tuple(additional_gids),
                   capabilities=FrozenDict((k, tuple(v)) for k, v in (capabilities or {}).items()),
                   rlimits=tuple(tuple(r) for r in rlimits), no_new_privileges=no_new_privileges,
                   oom_score_adj=oom_score_adj, scheduler=scheduler, io_priority=io_priority,
                   cpu_affinity=tuple(cpu_affinity), sched_json=FrozenDict(sched_json or {}))


class Spec(Frozen):
    """A validated config.json. Paths are absolute (root.path resolved against the bundle).

    namespaces      type -> the path to join, or None for a new one
    resources       limits.Resources: linux.resources checked, in no host's dialect yet
    seccomp         seccomp.Profile, or None for no filter
    network         netspec.Request for pyrt's bridge mode, or None
    annotations     final: the command line's --network/-p are in them already
    personality     linux.personality's domain as personality(2) takes it, or None
    time_offsets    linux.timeOffsets: clock ("monotonic", "boottime") -> (seconds, nanoseconds)
    memory_policy   linux.memoryPolicy as pyrt.sched reads it, (mode, flags, nodes), or None
    net_devices     linux.netDevices: (host link, name in the container) pairs
    """

    __slots__ = ("bundle", "oci_version", "root", "root_readonly", "hostname", "domainname", "process",
                 "mounts", "hooks", "annotations", "namespaces", "uid_mappings", "gid_mappings", "devices",
                 "cgroups_path", "resources", "rootfs_propagation", "masked_paths", "readonly_paths",
                 "sysctl", "seccomp", "personality", "network", "time_offsets", "memory_policy",
                 "net_devices")

    def __init__(self, **fields: object) -> None:
        missing = set(self.__slots__) - fields.keys()
        if missing:
            raise TypeError(f"Spec: missing {', '.join(sorted(missing))}")
        self._init(**fields)
