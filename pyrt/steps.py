"""The plan's vocabulary: every step pyrt-init can execute, declared once, with typed fields.

A plan is data: an ordered list of Steps built from a validated spec without touching the host,
so it can be printed (`pyrt plan BUNDLE`), traced while it runs (`pyrt --debug run`) and tested
without root. Each StepType below names a step, its fields and a sentence for people. A Step is
checked against its type when it is built (a wrong value is a bug of pyrt's: it fails here, in
the parent). `python -m pyrt.steps > native/init/steps.h` writes the C side (step ids, each
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
    cgroup-v1:<name>  the container's `tasks` file in a cgroup v1 hierarchy (hybrid hosts), by
                      the hierarchy's mount point name (cgroup-v1:memory, cgroup-v1:cpu,cpuacct)

Wire format (a memfd pyrt-init reads): per step its name, then each field in order, a list as
its count followed by its items; every token a NUL-terminated string, numbers in decimal.
"""

from __future__ import annotations

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
    str.format template over the fields, or a function of the Step."""

    __slots__ = ("name", "fields", "kinds", "text", "lists", "fds")

    def __init__(self, name: str, fields: str, text) -> None:
        pairs = [f.split(":") for f in fields.split()]
        self.name, self.text = name, text
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


# ----------------------------------------------------------------------------- saying it


def _flag_names(flags: int) -> str:
    from pyrt import kernel

    names = [n for n, (set_, _) in kernel.FLAGS.items() if set_ and flags & set_ == set_ and n != "bind"]
    return ",".join(names)


def _propagation_name(flags: int) -> str:
    from pyrt import kernel

    return next((n for n, v in kernel.PROPAGATION.items() if v == flags), str(flags))


def _namespace_names(flags: int) -> str:
    from pyrt import kernel

    return "+".join(n for n, bit in kernel.CLONE.items() if flags & bit) or str(flags)


def _cap_names(bits: int) -> str:
    from pyrt import capabilities

    names = [n.removeprefix("CAP_") for n in capabilities.all_names() if bits >> capabilities.number(n) & 1]
    return ",".join(names) or "none"


def _rlimit(s: Step) -> str:
    from pyrt import kernel

    name = next((n for n, v in kernel.RLIMITS.items() if v == s["resource"]), str(s["resource"]))
    soft, hard = ("unlimited" if v == kernel.RLIM_INFINITY else str(v) for v in (s["soft"], s["hard"]))
    return f"setrlimit {name} soft={soft} hard={hard}"


def _personality(s: Step) -> str:
    from pyrt.spec import PERSONALITIES

    name = next((n for n, v in PERSONALITIES.items() if v == s["domain"]), str(s["domain"]))
    return f"set the execution domain {name} (personality(2))"


def _mount(s: Step) -> str:
    src, fstype, data = s["source"], s["fstype"], s["data"]
    what = f"bind {src}" if not fstype else f"{fstype} ({src})" if src and src != fstype else fstype
    extra = ", ".join(x for x in (_flag_names(s["flags"]), data) if x)
    return (f"mount {what} on {s['dest']}" + (f" [{extra}]" if extra else "")
            + (" (no symlinks)" if s["nosymlinks"] else ""))


def _propagation(s: Step) -> str:
    from pyrt.kernel import MS_REC

    flags = s["flags"]
    return (f"make the mount holding {s['target']}" + (" and all below it" if flags & MS_REC else "")
            + f" {_propagation_name(flags & ~MS_REC)}")


def _cpus(cpus: tuple) -> str:
    return ",".join(map(str, cpus)) if cpus else "all (those the cgroup allows)"


def _names(table: dict, value: int) -> str:
    return next((n for n, v in table.items() if v == value), str(value))


def _mempolicy(s: Step) -> str:
    from pyrt.kernel import MPOL_FLAGS, MPOL_MODES

    flags = [n for n, v in MPOL_FLAGS.items() if s["flags"] & v]
    return (f"set the memory policy {_names(MPOL_MODES, s['mode'])}"
            + (f" on nodes {','.join(map(str, s['nodes']))}" if s["nodes"] else "")
            + (f" [{','.join(flags)}]" if flags else "") + " (set_mempolicy)")


def _scheduler(s: Step) -> str:
    from pyrt.kernel import POLICIES

    extra = [f"{k} {s[k]}" for k in ("nice", "priority", "flags", "runtime", "deadline", "period") if s[k]]
    return f"set the scheduling policy {_names(POLICIES, s['policy'])}" + (
        f" ({', '.join(extra)})" if extra else "") + " (sched_setattr)"


def _hook(s: Step) -> str:
    return f"run the {s['kind']} hook {s['path']}" + (f" (timeout {s['timeout']} s)" if s["timeout"] else "")


def _caps(s: Step) -> str:
    return "set capabilities " + " ".join(f"{k}={_cap_names(s[k])}" for k in s.type.fields)


# ----------------------------------------------------------------------------- the vocabulary


TYPES = {t.name: t for t in (
    StepType("trace", "", "send a message to the parent before each step"),
    StepType("setns", "fd:f nstype:u",
             lambda s: f"join the {_namespace_names(s['nstype'])} namespace(s) behind {s['fd']}"),
    StepType("unshare", "flags:u",
             lambda s: f"unshare the {_namespace_names(s['flags'])} namespace (now that we are in our cgroups)"),
    StepType("join-cgroups", "tasks:F", lambda s: "move into the container's cgroup v1 hierarchies (write 0 to "
             f"the tasks files {', '.join(map(str, s['tasks']))})"),
    StepType("fork", "", "fork into the joined pid namespace; the child goes on"),
    StepType("oom-score-adj", "value:i", "set oom_score_adj {value}"),
    StepType("cpu-affinity", "cpus:I",
             lambda s: f"run on CPUs {_cpus(s['cpus'])} (sched_setaffinity)"),
    StepType("mempolicy", "mode:u flags:u nodes:I", _mempolicy),
    StepType("scheduler", "policy:u nice:i priority:u flags:u runtime:u deadline:u period:u", _scheduler),
    StepType("ioprio", "value:u", lambda s: f"set the I/O priority class {s['value'] >> 13} level "
             f"{s['value'] & 7} (ioprio_set)"),
    StepType("propagation", "target:s flags:u", _propagation),
    StepType("root", "path:s", "bind {path} onto itself: the new root must be a mount point"),
    StepType("mount", "source:s dest:s fstype:s flags:u propagation:u data:s nosymlinks:b attr_set:u attr_clr:u",
             _mount),
    StepType("mount-copyup", "source:s dest:s fstype:s flags:u propagation:u data:s nosymlinks:b attr_set:u "
             "attr_clr:u", lambda s: _mount(s) + ", starting with a copy of what it covers (tmpcopyup)"),
    StepType("remount", "dest:s flags:u",
             lambda s: f"remount {s['dest']} {_flag_names(s['flags']) or 'with flags ' + str(s['flags'])}"),
    StepType("mkdir", "path:s", "create directory {path} inside the root"),
    StepType("mknod", "path:s type:s major:u minor:u mode:u uid:u gid:u",
             "mknod {path} ({type} {major}:{minor}, mode 0{mode:o}, owner {uid}:{gid})"),
    StepType("symlink", "target:s link:s", "symlink {link} -> {target}"),
    StepType("console", "socket:f rows:u cols:u",
             "allocate the terminal, send it to the console socket {socket}, bind it on /dev/console"),
    StepType("pty", "socket:f rows:u cols:u", "allocate a terminal for this process, send it to the console "
             "socket {socket}"),
    StepType("lo-up", "", "bring up lo in the new network namespace"),
    StepType("hook-sync", "", "stop for the runtime's prestart and createRuntime hooks; receive the state for ours"),
    StepType("hook", "kind:s timeout:u path:s env:S args:S index:u", _hook),
    StepType("sysctl", "path:s value:s", "write {value} to {path}"),
    StepType("readonly", "path:s", "make {path} read-only"),
    StepType("mask", "path:s", "mask {path} (the container's /dev/null or an empty read-only tmpfs)"),
    StepType("pivot-root", "", "pivot_root into the rootfs and detach the old root"),
    StepType("move-root", "", "move the rootfs onto / and chroot (--no-pivot)"),
    StepType("enter-root", "", "keep the joined mount namespace's root as the container's root"),
    StepType("hostname", "name:s", "set hostname {name}"),
    StepType("domainname", "name:s", "set domainname {name}"),
    StepType("personality", "domain:u", _personality),
    StepType("rlimit", "resource:u soft:u hard:u", _rlimit),
    StepType("session-keyring", "name:s", "join a new session keyring {name}"),
    StepType("home", "uid:u", "no HOME in env: take uid {uid}'s home from the container's /etc/passwd (or /)"),
    StepType("resolve-exec", "arg0:s path:s cwd:s", "look up {arg0} in the container (PATH={path}, cwd {cwd})"),
    StepType("chown-stdio", "uid:u",
             "give uid {uid} the stdio pipes, sockets and container terminal (not host files)"),
    StepType("seccomp", "program:f flags:u", "load the seccomp filter from {program}"),
    StepType("cap-bounding", "keep:u",
             lambda s: f"keep only capabilities {_cap_names(s['keep'])} in the bounding set"),
    StepType("user", "uid:u gid:u groups:I",
             lambda s: f"set groups [{','.join(map(str, s['groups']))}], gid {s['gid']}, uid {s['uid']}"),
    StepType("caps", "effective:u permitted:u inheritable:u ambient:u", _caps),
    StepType("no-new-privileges", "", "set no_new_privs"),
    StepType("chdir", "path:s early:b",
             lambda s: f"chdir to {s['path']}" + (" while still root (a permission error waits for the try as the "
                                                   "user, as runc)" if s["early"] else " (unless done already)")),
    StepType("close-fds", "first:u", "mark every fd from {first} up close-on-exec"),
    StepType("umask", "mask:u", "set umask 0{mask:03o}"),
    StepType("ready", "", "tell the parent set-up is done (`create` returns)"),
    StepType("wait-start", "fifo:f", "wait on the exec fifo {fifo} for `pyrt start`"),
    StepType("exec", "listen_pid:b env:S argv:S",
             lambda s: f"execve {list(s['argv'])} with {len(s['env'])} environment variables"),
)}


# ----------------------------------------------------------------------------- the C side


def header() -> str:
    """native/init/steps.h: the sync messages, the step ids, each step's field kinds and names, and
    the step functions pyrt-init must define (a step without one fails to link)."""
    from pyrt import protocol

    most = max(len(t.fields) for t in TYPES.values())
    names = [t.name.replace("-", "_") for t in TYPES.values()]
    lines = [
        "/* Generated from pyrt/steps.py and pyrt/protocol.py by `python -m pyrt.steps`: do not edit.",
        " * tests/test_unit_steps.py checks that it is up to date. */",
        "#ifndef PYRT_STEPS_H",
        "#define PYRT_STEPS_H",
        "",
        "/* The sync messages (pyrt/protocol.py) */",
        *(f'#define SYNC_{name} "{value.decode()}"' for name, value in protocol.MESSAGES.items()),
        "",
        f"#define STEP_MAX_FIELDS {most}",
        "",
        "enum step_id {",
        *(f"\tSTEP_{n.upper()}," for n in names),
        "\tSTEP_COUNT",
        "};",
        "",
        "/* One function per step, given the step's fields as typed by plan.c (init.h: union arg) */",
        "union arg;",
        *(f"void step_{n}(const union arg *a);" for n in names),
        "",
        "#ifdef PYRT_STEP_TABLE",
        "/* Each step's name, its fields' kinds (i u s b f S I F: see pyrt/steps.py) and names */",
        "static const struct step_type {",
        "\tconst char *name;",
        "\tconst char *kinds;",
        "\tconst char *fields[STEP_MAX_FIELDS];",
        "} STEP_TYPES[STEP_COUNT] = {",
        *(f'\t[STEP_{n.upper()}] = {{ "{t.name}", "{t.kinds}", {{ {_c_strings(t.fields)} }} }},'
          for n, t in zip(names, TYPES.values(), strict=True)),
        "};",
        "#endif",
        "",
        "#ifdef PYRT_STEP_FUNCTIONS",
        "static void (*const STEP_FUNCTIONS[STEP_COUNT])(const union arg *) = {",
        *(f"\t[STEP_{n.upper()}] = step_{n}," for n in names),
        "};",
        "#endif",
        "",
        "#endif",
        "",
    ]
    return "\n".join(lines)


def _c_strings(words: tuple[str, ...]) -> str:
    return ", ".join(f'"{w}"' for w in words) or "0"


if __name__ == "__main__":
    import sys

    sys.stdout.write(header())
