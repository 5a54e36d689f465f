"""The setup plan: the ordered list of steps pyrt-init (native/init.c) executes in the child.

A plan is data. It is built from a parsed spec without touching the system, so it can be
printed (`pyrt plan BUNDLE`), traced while it runs (`pyrt --debug run`) and unit-tested
without root. Each step is a name and string arguments; init.c has one function per name.
"""

from __future__ import annotations

from pyrt.errors import PyrtError


class Step:
    __slots__ = ("op", "args")

    def __init__(self, op: str, *args: object) -> None:
        self.op = op
        self.args = tuple(str(a) for a in args)

    def __repr__(self) -> str:
        return f"Step({self.op!r}, {', '.join(map(repr, self.args))})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Step) and (self.op, self.args) == (other.op, other.args)

    def describe(self) -> str:
        """One line for people: what this step does, with its arguments."""
        a = self.args
        text = _DESCRIBE.get(self.op)
        if text is None:
            return " ".join((self.op, *a))
        return text(a) if callable(text) else text.format(*a)


def _mount_text(a: tuple[str, ...]) -> str:
    src, dest, fstype, flags, prop, data = a[:6]
    what = f"bind {src}" if not fstype else f"{fstype} ({src})" if src and src != fstype else fstype
    extra = ", ".join(x for x in (_flag_names(int(flags)), data) if x)
    return f"mount {what} on {dest}" + (f" [{extra}]" if extra else "") + (" (no symlinks)" if a[6] == "1" else "")


def _flag_names(flags: int) -> str:
    from pyrt import mounts

    names = [n for n, (set_, _) in mounts.FLAGS.items() if set_ and flags & set_ == set_ and n != "bind"]
    return ",".join(names)


def _propagation_name(flags: str) -> str:
    from pyrt import mounts

    return next((n for n, v in mounts.PROPAGATION.items() if v == int(flags)), flags)


def _namespace_names(flags: str) -> str:
    from pyrt import namespaces

    names = [n for n, bit in namespaces.CLONE.items() if int(flags) & bit]
    return "+".join(names) or flags


def _cap_names(mask: str) -> str:
    from pyrt import capabilities

    bits = int(mask, 16)
    names = [n.removeprefix("CAP_") for n in capabilities.all_names() if bits >> capabilities.number(n) & 1]
    return ",".join(names) or "none"


def _rlimit_name(number: str) -> str:
    from pyrt import process

    return next((n for n, v in process.RLIMITS.items() if v == int(number)), number)


def _rlim(value: str) -> str:
    from pyrt import process

    return "unlimited" if int(value) == process.RLIM_INFINITY else value


def _personality_name(number: str) -> str:
    from pyrt.spec import PERSONALITIES

    return next((n for n, v in PERSONALITIES.items() if v == int(number)), number)


def _exec_text(a: tuple[str, ...]) -> str:
    nenv = int(a[1])
    return f"execve {list(a[2 + nenv:])} with {nenv} environment variables"


_DESCRIBE: dict = {
    "trace": "send a message to the parent before each step",
    "setns": lambda a: f"join the {_namespace_names(a[1])} namespace(s) behind fd {a[0]}",
    "unshare": lambda a: f"unshare the {_namespace_names(a[0])} namespace (now that we are in our cgroups)",
    "fork": "fork into the joined pid namespace; the child goes on",
    "propagation": lambda a: f"make the mount holding {a[0]}" + (" and all below it" if int(a[1]) & 0x4000 else "")
    + f" {_propagation_name(str(int(a[1]) & ~0x4000))}",
    "root": "bind {0} onto itself: the new root must be a mount point",
    "mount": _mount_text,
    "mount-copyup": lambda a: _mount_text(a) + ", starting with a copy of what it covers (tmpcopyup)",
    "remount": lambda a: f"remount {a[0]} {_flag_names(int(a[1])) or 'with flags ' + a[1]}",
    "mkdir": "create directory {0} inside the root",
    "mknod": "mknod {0} ({1} {2}:{3}, mode {4:s}, owner {5}:{6})",
    "symlink": "symlink {1} -> {0}",
    "mask": "mask {0} (the container's /dev/null or an empty read-only tmpfs)",
    "readonly": "make {0} read-only",
    "console": "allocate the terminal, send it to console socket fd {0}, bind it on /dev/console",
    "pty": "allocate a terminal for this process, send it to console socket fd {0}",
    "enter-root": "keep the joined mount namespace's root as the container's root",
    "join-cgroups": "move into the container's cgroup v1 hierarchies (write 0 to tasks fds {0})",
    "hook-sync": "stop for the runtime's prestart and createRuntime hooks; receive the state for ours",
    "hook": lambda a: f"run the {a[0]} hook {a[2]}" + (f" (timeout {a[1]} s)" if a[1] != "0" else ""),
    "pivot-root": "pivot_root into the rootfs and detach the old root",
    "move-root": "move the rootfs onto / and chroot (--no-pivot)",
    "lo-up": "bring up lo in the new network namespace",
    "hostname": "set hostname {0}",
    "domainname": "set domainname {0}",
    "personality": lambda a: f"set the execution domain {_personality_name(a[0])} (personality(2))",
    "sysctl": "write {1} to {0}",
    "oom-score-adj": "set oom_score_adj {0}",
    "rlimit": lambda a: f"setrlimit {_rlimit_name(a[0])} soft={_rlim(a[1])} hard={_rlim(a[2])}",
    "session-keyring": "join a new session keyring {0}",
    "umask": "set umask {0}",
    "resolve-exec": "look up {0} in the container (PATH={1}, cwd {2})",
    "home": "no HOME in env: take uid {0}'s home from the container's /etc/passwd (or /)",
    "ready": "tell the parent set-up is done",
    "wait-start": "wait on the exec fifo (fd {0}) for `pyrt start`",
    "cap-bounding": lambda a: f"keep only capabilities {_cap_names(a[0])} in the bounding set",
    "chown-stdio": "give uid {0} the stdio pipes, sockets and container terminal (not host files)",
    "user": "set groups [{2}], gid {1}, uid {0}",
    "caps": lambda a: "set capabilities " + " ".join(
        f"{k}={_cap_names(v)}" for k, v in zip(("effective", "permitted", "inheritable", "ambient"), a, strict=True)),
    "no-new-privileges": "set no_new_privs",
    "seccomp": "load the seccomp filter from fd {0}",
    "chdir": "chdir to {0}",
    "close-fds": "mark every fd from {0} up close-on-exec",
    "exec": _exec_text,
}


def encode(steps: list[Step]) -> bytes:
    """The wire format init.c parses: per step, NUL-terminated name, argument count, arguments."""
    out = []
    for s in steps:
        for a in (s.op, *s.args):
            if "\0" in a:
                raise PyrtError(f"{s.op}: argument contains a NUL byte")
        out.append("\0".join((s.op, str(len(s.args)), *s.args)) + "\0")
    return "".join(out).encode()


def render(steps: list[Step]) -> str:
    """The plan for people, one numbered step per line."""
    return "\n".join(f"{i:3d}  {s.describe()}" for i, s in enumerate(steps))
