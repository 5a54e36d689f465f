"""The plan's vocabulary: every step pyrt-init can execute, declared once, with typed fields.

A plan is data: an ordered list of Steps built from a validated spec without touching the host,
so it can be printed (`pyrt plan BUNDLE`), traced while it runs (`pyrt --debug run`) and tested
without root. Each StepType below names a step, its fields and a sentence for people. A Step is
checked against its type when it is built (a wrong value is a bug of pyrt's: it fails here, in
the parent). `python -m pyrt.cheader > native/init/steps.h` writes the C side (step ids, each
step's field kinds and names, the sync messages of pyrt/protocol.py); pyrt-init checks a whole
plan against that table before it runs the first step, and hands each step function its fields
already typed.

Field kinds:
    i  signed 64-bit int       u  unsigned 64-bit int      b  bool
    s  string (no NUL byte)    f  fd slot (an Fd)
    S  list of strings         I  list of signed ints      F  list of fd slots

An fd slot is a name, resolved to an fd number only when the plan is encoded for pyrt-init (by
whoever opened the fds, right before the clone); no fd the plan does not name is passed:
    fifo              the exec fifo (create)
    console           the console socket (process.terminal)
    seccomp           a memfd holding the seccomp BPF program
    pidfd             the container init's pidfd (exec joins its namespaces through it)
    ns:<type>         a namespace config.json gives by path (ns:network, ns:pid, ...)
    idmap:<index>     the idmapped tree of mounts[index] (open_tree + mount_setattr by the parent)
    cgroup-v1:<name>  the container's `tasks` file in a cgroup v1 hierarchy (hybrid hosts), by
                      the hierarchy's mount point name (cgroup-v1:memory, cgroup-v1:cpu,cpuacct)

Wire format (a memfd pyrt-init reads): per step its name, then each field in order, a list as
its count followed by its items; every token a NUL-terminated string, numbers in decimal.
"""

from __future__ import annotations

from pyrt import sentences as say

KINDS = "iusbfSIF"


class StepError(ValueError):
    """A step built with values its type does not take: a bug of pyrt's, not bad input (the
    gate refuses bad input before any plan is made)."""


class Fd:
    """A symbolic fd: `Fd("fifo")`. The number is known only to whoever opens it (see encode)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fd) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"Fd({self.name!r})"

    def __str__(self) -> str:
        return f"<{self.name}>"


class StepType:
    """One step of pyrt-init: its name, its fields ("name:kind ...") and how to say it: a
    str.format template over the fields, or a function of the Step; `calls`, the system calls it
    becomes in native/init/, and `why` it is there (`pyrt plan --explain`)."""

    __slots__ = ("name", "fields", "kinds", "text", "lists", "fds", "calls", "why")

    def __init__(self, name: str, fields: str, text, calls: str = "", why: str = "") -> None:
        pairs = [f.split(":") for f in fields.split()]
        self.name, self.text = name, text
        self.calls, self.why = calls, why  # `pyrt plan --explain`: the system calls it becomes, and why
        self.fields = tuple(n for n, _ in pairs)
        self.kinds = "".join(k for _, k in pairs)
        self.lists = any(k in "SIF" for k in self.kinds)  # values to freeze as tuples
        self.fds = "f" in self.kinds or "F" in self.kinds  # fd slots to name


_LOW, _HIGH = {"i": -(1 << 63), "u": 0}, {"i": (1 << 63) - 1, "u": (1 << 64) - 1}


def _check(kind: str, value: object) -> str:
    """Why `value` is not of `kind` ("" if it is). On every field of every plan: kept cheap."""
    if kind == "s":
        if type(value) is not str:
            return "not a string"
        return "contains a NUL byte" if "\0" in value else ""
    if kind == "u" or kind == "i":
        if type(value) is not int:
            return "not an int"
        return "" if _LOW[kind] <= value <= _HIGH[kind] else "out of range"
    if kind == "b":
        return "" if type(value) is bool else "not a bool"
    if kind == "f":
        return "" if type(value) is Fd else "not an Fd"
    if type(value) not in (list, tuple):
        return "not a list"
    item = kind.lower()
    for i, v in enumerate(value):
        why = _check(item, v)
        if why:
            return f"item {i}: {why}"
    return ""


class Step:
    """One step of a plan: `Step("mount", source, dest, ...)`, values in the order of the fields."""

    __slots__ = ("type", "values")

    def __init__(self, name: str, *values: object) -> None:
        t = TYPES.get(name)
        if t is None:
            raise StepError(f"unknown step {name!r}")
        if len(values) != len(t.kinds):
            raise StepError(f"step {name}: {len(values)} values for the fields ({', '.join(t.fields)})")
        for i, kind in enumerate(t.kinds):
            why = _check(kind, values[i])
            if why:
                raise StepError(f"step {name}: field {t.fields[i]}: {why}: {values[i]!r}")
        self.type = t
        self.values = tuple(tuple(v) if type(v) is list else v for v in values) if t.lists else values

    @property
    def name(self) -> str:
        return self.type.name

    def __getitem__(self, field: str):
        return self.values[self.type.fields.index(field)]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Step) and (self.type, self.values) == (other.type, other.values)

    def __repr__(self) -> str:
        return f"Step({', '.join(map(repr, (self.name, *self.values)))})"

    def slots(self) -> list[str]:
        """The names of the fd slots this step uses."""
        if not self.type.fds:
            return []
        out = []
        for kind, value in zip(self.type.kinds, self.values, strict=True):
            if kind == "f":
                out.append(value.name)
            elif kind == "F":
                out += [fd.name for fd in value]
        return out

    def describe(self) -> str:
        """One line for people: what this step does, with its values."""
        text = self.type.text
        if callable(text):
            return text(self)
        return text.format(**dict(zip(self.type.fields, self.values, strict=True)))


class Plan:
    """What `create` or `exec` does: the parent's own steps (data too, printed by `pyrt plan`) and
    the steps pyrt-init executes in the child."""

    __slots__ = ("parent", "child")

    def __init__(self, child: list[Step], parent: list | None = None) -> None:
        self.child, self.parent = child, parent or []

    def slots(self) -> list[str]:
        """Every fd slot the child's steps use, once, in order: the fds to open for it."""
        return list(dict.fromkeys(name for step in self.child for name in step.slots()))


def encode(steps: list[Step], fds: dict[str, int]) -> bytes:
    """The plan in the wire format pyrt-init reads, each fd slot replaced by its number in `fds`."""
    out = []
    for step in steps:
        out.append(step.type.name)
        for kind, value in zip(step.type.kinds, step.values, strict=True):
            if kind == "s":
                out.append(value)
            elif kind in "iu":
                out.append(str(value))
            elif kind == "b":
                out.append("1" if value else "0")
            elif kind == "f":
                out.append(str(_number(fds, value, step)))
            else:
                out.append(str(len(value)))
                out += (v if kind == "S" else str(_number(fds, v, step) if kind == "F" else v) for v in value)
    out.append("")
    return "\0".join(out).encode("utf-8", "surrogateescape")


def _number(fds: dict[str, int], fd: Fd, step: Step) -> int:
    try:
        return fds[fd.name]
    except KeyError:
        raise StepError(f"step {step.name}: fd slot {fd.name} was not opened") from None


def render(steps: list) -> str:
    """Steps for people, one numbered step per line."""
    return "\n".join(f"{i:3d}  {s.describe()}" for i, s in enumerate(steps))


# ----------------------------------------------------------------------------- the vocabulary


TYPES = {t.name: t for t in (
    StepType("trace", "", "send a message to the parent before each step",
             calls='clock_gettime(2) (vDSO), sendmsg(2)',
             why="only with --trace or --debug: pyrt-init reports each step's start on the sync socket, timed with its"
                 " own clock"),
    StepType("setns", "fd:f nstype:u",
             lambda s: f"join the {say.namespace_names(s['nstype'])} namespace(s) behind {s['fd']}",
             calls='setns(2)',
             why="config.json names a namespace by path (or exec joins the init's through its pidfd): the process "
                 "enters it before it builds anything"),
    StepType("unshare", "flags:u",
             lambda s: f"unshare the {say.namespace_names(s['flags'])} namespace(s)",
             calls='unshare(2)',
             why="namespaces made after clone3: the cgroup one once the cgroups are joined (the container's cgroup "
                 "becomes its root), the time one after its offsets are known"),
    StepType("time-offsets", "monotonic_s:i monotonic_ns:i boottime_s:i boottime_ns:i",
             "set the new time namespace's offsets: monotonic {monotonic_s}s {monotonic_ns}ns, boottime "
             "{boottime_s}s {boottime_ns}ns (before its first process, the fork below, enters it)",
             calls='write(2) to /proc/self/timens_offsets',
             why="linux.timeOffsets: a time namespace's clocks can be offset only before a process enters it"),
    StepType("ns-root", "", "become root of the joined user namespace (its uid and gid 0, no groups)",
             calls='setgroups(2), setresgid(2), setresuid(2)',
             why="after setns into a user namespace the process keeps its ids: it takes the namespace's root to "
                 "act in it"),
    StepType("join-cgroups", "tasks:F", lambda s: "move into the container's cgroup v1 hierarchies (write 0 to "
             f"the tasks files {', '.join(map(str, s['tasks']))})",
             calls='write(2) to each v1 tasks file',
             why="clone3's CLONE_INTO_CGROUP reaches only cgroup2: on a hybrid host the v1 hierarchies are joined by "
                 "hand"),
    StepType("fork", "", "fork into the pid (or time) namespace joined or unshared; the child goes on",
             calls='fork(2)',
             why="a pid or time namespace joined or unshared applies to children only: the process forks to be "
                 "inside it"),
    StepType("oom-score-adj", "value:i", "set oom_score_adj {value}",
             calls='write(2) to /proc/self/oom_score_adj',
             why='process.oomScoreAdj: done before the credentials drop, which can forbid lowering it'),
    StepType("cpu-affinity", "cpus:I",
             lambda s: f"run on CPUs {say.cpus(s['cpus'])} (sched_setaffinity)",
             calls='sched_setaffinity(2)',
             why="process.execCPUAffinity, or all the CPUs the cgroup allows: an affinity inherited from the caller "
                 "(taskset) must not pin the container"),
    StepType("mempolicy", "mode:u flags:u nodes:I", say.mempolicy,
             calls='set_mempolicy(2)',
             why='linux.memoryPolicy: the NUMA policy the process and its children allocate under'),
    StepType("scheduler", "policy:u nice:i priority:u flags:u runtime:u deadline:u period:u", say.scheduler,
             calls='sched_setattr(2)',
             why='process.scheduler: the policy (deadline too), nice value and priority, set while still root'),
    StepType("ioprio", "value:u", lambda s: f"set the I/O priority class {s['value'] >> 13} level "
             f"{s['value'] & 7} (ioprio_set)",
             calls='ioprio_set(2) IOPRIO_WHO_PROCESS',
             why='process.ioPriority: the I/O scheduling class and level'),
    StepType("propagation", "target:s flags:u", say.propagation,
             calls='mount(2) MS_REC|MS_SLAVE or MS_PRIVATE',
             why="nothing mounted in the container may propagate back to the host's mount namespace"),
    StepType("root", "path:s", "bind {path} onto itself: the new root must be a mount point",
             calls='open_tree(2) OPEN_TREE_CLONE, move_mount(2)',
             why='pivot_root(2) needs the new root to be a mount point: the rootfs is bound onto itself'),
    StepType("mount", "source:s dest:s fstype:s flags:u propagation:u data:s nosymlinks:b attr_set:u attr_clr:u",
             say.mount,
             calls="openat2(2) RESOLVE_IN_ROOT, open_tree(2)/fsopen(2)+fsmount(2) or mount(2), move_mount(2), "
                   "mount_setattr(2)",
             why="one entry of config.json's mounts, made on an fd resolved inside the rootfs, so a symlink cannot "
                 "send it to the host"),
    StepType("mount-copyup", "source:s dest:s fstype:s flags:u propagation:u data:s nosymlinks:b attr_set:u "
             "attr_clr:u", lambda s: say.mount(s) + ", starting with a copy of what it covers (tmpcopyup)",
             calls='fsopen(2)+fsmount(2) tmpfs, copies, move_mount(2)',
             why='a tmpfs with tmpcopyup: filled with what it covers before it is attached'),
    StepType("mount-idmapped", "tree:f source:s dest:s flags:u propagation:u attr_set:u attr_clr:u",
             lambda s: f"attach the idmapped bind of {s['source']} ({s['tree']}, made by the parent) on {s['dest']}"
             + (f" [{say.flag_names(s['flags'])}]" if s["flags"] else ""),
             calls='openat2(2) RESOLVE_IN_ROOT, move_mount(2), mount_setattr(2)',
             why="an idmapped mount: the parent made the tree with mount_setattr(MOUNT_ATTR_IDMAP) on the host; "
                 "the child attaches it inside the root"),
    StepType("remount", "dest:s flags:u",
             lambda s: f"remount {s['dest']} {say.flag_names(s['flags']) or 'with flags ' + str(s['flags'])}",
             calls='mount(2) MS_REMOUNT|MS_BIND',
             why='flags such as ro apply to a bind mount only by remounting it'),
    StepType("mkdir", "path:s", "create directory {path} inside the root",
             calls='mkdirat(2) on an fd inside the root',
             why='a mount point the image lacks'),
    StepType("mknod", "path:s type:s major:u minor:u mode:u uid:u gid:u",
             "mknod {path} ({type} {major}:{minor}, mode 0{mode:o}, owner {uid}:{gid})",
             calls='mknodat(2), fchownat(2)',
             why="a device node of linux.devices, made only on the container's own mounts (never in a host directory)"),
    StepType("symlink", "target:s link:s", "symlink {link} -> {target}",
             calls='symlinkat(2)',
             why='the /dev links every program expects (/dev/fd, /dev/stdin, /dev/ptmx ...)'),
    StepType("console", "socket:f rows:u cols:u",
             "allocate the terminal, send it to the console socket {socket}, bind it on /dev/console",
             calls='open(/dev/pts/ptmx), ioctl(2) TIOCSPTLCK/TIOCGPTPEER, sendmsg(2) SCM_RIGHTS, mount(2) bind',
             why='process.terminal: the pty master goes to the console socket, the slave becomes /dev/console'),
    StepType("pty", "socket:f rows:u cols:u", "allocate a terminal for this process, send it to the console "
             "socket {socket}",
             calls='open(/dev/pts/ptmx), ioctl(2), sendmsg(2) SCM_RIGHTS',
             why='exec -t: a terminal for the new process, its master sent to the console socket'),
    StepType("lo-up", "", "bring up lo in the new network namespace",
             calls='socket(2) AF_INET, ioctl(2) SIOCSIFFLAGS',
             why='a new network namespace starts with lo down'),
    StepType("hook-sync", "", "stop for the runtime's prestart and createRuntime hooks; receive the state for ours",
             calls='send(2)/recv(2) on the sync socket',
             why="prestart and createRuntime hooks run on the host between the namespaces' creation and pivot_root"),
    StepType("hook", "kind:s timeout:u path:s env:S args:S index:u", say.hook,
             calls='fork(2), execve(2), waitpid(2)',
             why="createContainer and startContainer hooks run in the container's namespaces, by pyrt-init"),
    StepType("sysctl", "path:s value:s", "write {value} to {path}",
             calls='openat2(2) under /proc/sys, fstatfs(2), write(2)',
             why='linux.sysctl: only of namespaces the container owns, checked to be procfs'),
    StepType("readonly", "path:s", "make {path} read-only",
             calls='open_tree(2), move_mount(2), mount(2) MS_REMOUNT|MS_BIND|MS_RDONLY',
             why='linux.readonlyPaths: /proc files that could change the host stay read-only'),
    StepType("mask", "path:s", "mask {path} (the container's /dev/null or an empty read-only tmpfs)",
             calls='mount(2) bind of /dev/null or a read-only tmpfs',
             why='linux.maskedPaths: /proc and /sys files that leak host information are hidden'),
    StepType("pivot-root", "", "pivot_root into the rootfs and detach the old root",
             calls='pivot_root(2), umount2(2) MNT_DETACH',
             why="the rootfs becomes / and the old root is detached, so the host's files are unreachable (chroot(2) "
                 "alone is escapable)"),
    StepType("move-root", "", "move the rootfs onto / and chroot (--no-pivot)",
             calls='mount(2) MS_MOVE, chroot(2)',
             why='--no-pivot (a ramfs root cannot be pivoted): weaker than pivot_root, as in runc'),
    StepType("enter-root", "", "keep the joined mount namespace's root as the container's root",
             calls='fchdir(2)',
             why="exec: the joined mount namespace already has the container's root"),
    StepType("hostname", "name:s", "set hostname {name}",
             calls='sethostname(2)',
             why="config.json's hostname, in the container's UTS ns (its own or a joined one, not the host's)"),
    StepType("domainname", "name:s", "set domainname {name}",
             calls='setdomainname(2)',
             why="config.json's domainname, in the container's UTS ns (its own or a joined one, not the host's)"),
    StepType("personality", "domain:u", say.personality,
             calls='personality(2)',
             why='linux.personality (LINUX32: uname says i686)'),
    StepType("rlimit", "resource:u soft:u hard:u", say.rlimit,
             calls='setrlimit(2)',
             why='process.rlimits: set before the credentials drop, which cannot raise a hard limit'),
    StepType("session-keyring", "name:s", "join a new session keyring {name}",
             calls='keyctl(2) KEYCTL_JOIN_SESSION_KEYRING',
             why="the host's session keyring must not be shared with the container"),
    StepType("home", "uid:u", "no HOME in env: take uid {uid}'s home from the container's /etc/passwd (or /)",
             calls='openat2(2) RESOLVE_IN_ROOT, read(2) of /etc/passwd',
             why="no HOME in process.env: set it from the container's /etc/passwd, as runc does"),
    StepType("resolve-exec", "arg0:s path:s cwd:s", "look up {arg0} in the container (PATH={path}, cwd {cwd})",
             calls='openat2(2) RESOLVE_IN_ROOT, faccessat(2) along PATH',
             why='a missing program must fail create, not start, as in runc'),
    StepType("chown-stdio", "uid:u",
             "give uid {uid} the stdio pipes, sockets and container terminal (not host files)",
             calls='fstatfs(2), fchown(2)',
             why='a non-root process must be able to reopen its stdio pipes and terminal'),
    StepType("seccomp", "program:f flags:u", "load the seccomp filter from {program}",
             calls='pread(2) of the program, seccomp(2) SECCOMP_SET_MODE_FILTER',
             why="linux.seccomp: loaded late, so pyrt-init's own system calls are not filtered"),
    StepType("cap-bounding", "keep:u",
             lambda s: f"keep only capabilities {say.cap_names(s['keep'])} in the bounding set",
             calls='prctl(2) PR_CAPBSET_DROP',
             why='capabilities not in the bounding set can never be gained again, even by a setuid program'),
    StepType("user", "uid:u gid:u groups:I",
             lambda s: f"set groups [{','.join(map(str, s['groups']))}], gid {s['gid']}, uid {s['uid']}",
             calls='setgroups(2), setresgid(2), setresuid(2)',
             why="process.user: the process's ids, after everything that needs root"),
    StepType("caps", "effective:u permitted:u inheritable:u ambient:u", say.caps,
             calls='capset(2), prctl(2) PR_CAP_AMBIENT',
             why='process.capabilities: effective, permitted, inheritable and ambient sets'),
    StepType("no-new-privileges", "", "set no_new_privs",
             calls='prctl(2) PR_SET_NO_NEW_PRIVS',
             why='process.noNewPrivileges: execve can never grant more privileges (setuid bits, file caps)'),
    StepType("chdir", "path:s early:b",
             lambda s: f"chdir to {s['path']}" + (" while still root (a permission error waits for the try as the "
                                                   "user, as runc)" if s["early"] else " (unless done already)"),
             calls='openat2(2) RESOLVE_IN_ROOT, fchdir(2)',
             why='process.cwd, resolved inside the root (CVE-2024-21626: no leaked host directory)'),
    StepType("close-fds", "first:u", "mark every fd from {first} up close-on-exec",
             calls='close_range(2) CLOSE_RANGE_CLOEXEC',
             why="no fd of pyrt's beyond the preserved ones reaches the container"),
    StepType("umask", "mask:u", "set umask 0{mask:03o}",
             calls='umask(2)',
             why='process.user.umask (0022 by default)'),
    StepType("ready", "", "tell the parent set-up is done (`create` returns)",
             calls='send(2) READY on the sync socket',
             why='set up and credentials applied: `create` can return'),
    StepType("wait-start", "fifo:f", "wait on the exec fifo {fifo} for `pyrt start`",
             calls='read(2) of the exec fifo',
             why="the container's process starts only at `pyrt start`"),
    StepType("exec", "listen_pid:b env:S argv:S",
             lambda s: f"execve {list(s['argv'])} with {len(s['env'])} environment variables",
             calls='execve(2)',
             why="the container's process replaces pyrt-init; the sync socket and the fifo close (close-on-exec)"),
)}
