"""How steps read for people: the sentences of `pyrt plan`, `--debug` and `--trace` for the steps
whose fields are numbers (mount flags, capability sets, rlimits, scheduling policies...), named
the way config.json and the man pages name them. steps.py's TYPES points at these."""

from __future__ import annotations

TYPE_CHECKING = False  # `typing` costs an import on the start path; type checkers know the name
if TYPE_CHECKING:
    from pyrt.steps import Step


def flag_names(flags: int) -> str:
    from pyrt import kernel

    names = [n for n, (set_, _) in kernel.FLAGS.items() if set_ and flags & set_ == set_ and n != "bind"]
    return ",".join(names)


def _propagation_name(flags: int) -> str:
    from pyrt import kernel

    return next((n for n, v in kernel.PROPAGATION.items() if v == flags), str(flags))


def namespace_names(flags: int) -> str:
    from pyrt import kernel

    return "+".join(n for n, bit in kernel.CLONE.items() if flags & bit) or str(flags)


def cap_names(bits: int) -> str:
    from pyrt import capabilities

    names = [n.removeprefix("CAP_") for n in capabilities.all_names() if bits >> capabilities.number(n) & 1]
    return ",".join(names) or "none"


def rlimit(s: Step) -> str:
    from pyrt import kernel

    name = next((n for n, v in kernel.RLIMITS.items() if v == s["resource"]), str(s["resource"]))
    soft, hard = ("unlimited" if v == kernel.RLIM_INFINITY else str(v) for v in (s["soft"], s["hard"]))
    return f"setrlimit {name} soft={soft} hard={hard}"


def personality(s: Step) -> str:
    from pyrt.spec import PERSONALITIES

    name = next((n for n, v in PERSONALITIES.items() if v == s["domain"]), str(s["domain"]))
    return f"set the execution domain {name} (personality(2))"


def mount(s: Step) -> str:
    src, fstype, data = s["source"], s["fstype"], s["data"]
    what = f"bind {src}" if not fstype else f"{fstype} ({src})" if src and src != fstype else fstype
    extra = ", ".join(x for x in (flag_names(s["flags"]), data) if x)
    return (f"mount {what} on {s['dest']}" + (f" [{extra}]" if extra else "")
            + (" (no symlinks)" if s["nosymlinks"] else ""))


def propagation(s: Step) -> str:
    from pyrt.kernel import MS_REC

    flags = s["flags"]
    return (f"make the mount holding {s['target']}" + (" and all below it" if flags & MS_REC else "")
            + f" {_propagation_name(flags & ~MS_REC)}")


def cpus(cpus: tuple) -> str:
    return ",".join(map(str, cpus)) if cpus else "all (those the cgroup allows)"


def _names(table: dict, value: int) -> str:
    return next((n for n, v in table.items() if v == value), str(value))


def mempolicy(s: Step) -> str:
    from pyrt.kernel import MPOL_FLAGS, MPOL_MODES

    flags = [n for n, v in MPOL_FLAGS.items() if s["flags"] & v]
    return (f"set the memory policy {_names(MPOL_MODES, s['mode'])}"
            + (f" on nodes {','.join(map(str, s['nodes']))}" if s["nodes"] else "")
            + (f" [{','.join(flags)}]" if flags else "") + " (set_mempolicy)")


def scheduler(s: Step) -> str:
    from pyrt.kernel import POLICIES

    extra = [f"{k} {s[k]}" for k in ("nice", "priority", "flags", "runtime", "deadline", "period") if s[k]]
    return f"set the scheduling policy {_names(POLICIES, s['policy'])}" + (
        f" ({', '.join(extra)})" if extra else "") + " (sched_setattr)"


def hook(s: Step) -> str:
    return f"run the {s['kind']} hook {s['path']}" + (f" (timeout {s['timeout']} s)" if s["timeout"] else "")


def caps(s: Step) -> str:
    return "set capabilities " + " ".join(f"{k}={cap_names(s[k])}" for k in s.type.fields)
