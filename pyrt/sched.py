"""Where and how the container's process runs: process.scheduler (sched_setattr(2)),
process.ioPriority (ioprio_set(2)), process.execCPUAffinity (sched_setaffinity(2)) and
linux.memoryPolicy (set_mempolicy(2)).

The gate reads them into plain tuples here (errors name the field, runc 1.5's rules); the
planner turns them into steps pyrt-init runs (native/init/sched.c). The kernel's numbers are
in pyrt/kernel.py.
"""

from __future__ import annotations

from pyrt.kernel import IOPRIO_CLASSES, MPOL_FLAGS, MPOL_MODES, POLICIES, SCHED_FLAGS
from pyrt.spec import Frozen
from pyrt.steps import Step

#: The kernel's largest configurable counts (NR_CPUS, MAX_NUMNODES): a list naming more is a typo.
MAX_CPUS, MAX_NODES = 8192, 1024


class Scheduler(Frozen):
    """process.scheduler as sched_setattr(2) takes it (policy and flags as numbers)."""

    __slots__ = ("policy", "nice", "priority", "flags", "runtime", "deadline", "period")

    def __init__(self, policy: int, nice: int, priority: int, flags: int, runtime: int, deadline: int,
                 period: int) -> None:
        self._init(policy=policy, nice=nice, priority=priority, flags=flags, runtime=runtime, deadline=deadline,
                   period=period)


def cpu_list(text: str, top: int) -> tuple[int, ...] | None:
    """ "0-3,7" -> (0, 1, 2, 3, 7) (the kernel's list format, cpuset.cpus'); None if malformed or
    a number is `top` or more."""
    out: set[int] = set()
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            return None
        a, b = int(lo), int(hi) if dash else int(lo)
        if a > b or b >= top:
            return None
        out.update(range(a, b + 1))
    return tuple(sorted(out))


def scheduler(r) -> Scheduler | None:
    """process.scheduler, as runc 1.5 validates it."""
    s = r.child("scheduler")
    if s is None:
        return None
    name = s.get("policy", str, "")
    if name not in POLICIES:
        s.fail(f'invalid scheduler policy "{name}"' if name else "is required", "policy")
    nice, priority = s.get("nice", int, 0), s.get("priority", int, 0)
    if name in ("SCHED_OTHER", "SCHED_BATCH") and not -20 <= nice <= 19:
        s.fail(f"must be between -20 and 19 for {name}", "nice")
    if priority and name not in ("SCHED_FIFO", "SCHED_RR"):
        s.fail("only SCHED_FIFO and SCHED_RR take a priority", "priority")
    if not 0 <= priority <= 99:
        s.fail("must be between 0 and 99", "priority")
    flags = 0
    for f in s.strings("flags"):
        if f not in SCHED_FLAGS:
            s.fail(f'unknown flag "{f}"', "flags")
        flags |= SCHED_FLAGS[f]
    times = [s.uint(k, bits=64) for k in ("runtime", "deadline", "period")]
    if any(times) and name != "SCHED_DEADLINE":
        s.fail("runtime, deadline and period are for SCHED_DEADLINE only")
    return Scheduler(POLICIES[name], nice, priority, flags, *times)


def io_priority(r) -> int | None:
    """process.ioPriority as ioprio_set(2) takes it: class << 13 | level."""
    io = r.child("ioPriority")
    if io is None:
        return None
    name = io.get("class", str, "")
    if name not in IOPRIO_CLASSES:
        io.fail(f'unknown class "{name}" (IOPRIO_CLASS_RT, IOPRIO_CLASS_BE or IOPRIO_CLASS_IDLE)', "class")
    level = io.get("priority", int, 0)
    if not 0 <= level <= 7:
        io.fail("must be between 0 and 7", "priority")
    return IOPRIO_CLASSES[name] << 13 | level


def cpu_affinity(r) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    """process.execCPUAffinity: (initial, final) CPU lists, None where not given."""
    aff = r.child("execCPUAffinity")
    out: list[tuple[int, ...] | None] = [None, None]
    for i, key in enumerate(("initial", "final")):
        text = aff.get(key, str, "") if aff else ""
        if text:
            out[i] = cpu_list(text, MAX_CPUS)
            if out[i] is None:
                aff.fail(f'invalid CPU list "{text}" (e.g. "0-3,7", CPUs below {MAX_CPUS})', key)
    return out[0], out[1]


def memory_policy(r) -> tuple[int, int, tuple[int, ...]] | None:
    """linux.memoryPolicy: (mode, flags, nodes), as runc 1.5 validates it (an empty object too:
    it has no mode)."""
    mp = r.child("memoryPolicy")
    if mp is None:
        return None
    name = mp.get("mode", str, "")
    if name not in MPOL_MODES:
        mp.fail(f'invalid memory policy mode "{name}"', "mode")
    flags = 0
    for f in mp.strings("flags"):
        if f not in MPOL_FLAGS:
            mp.fail(f'invalid memory policy flag "{f}"', "flags")
        flags |= MPOL_FLAGS[f]
    text = mp.get("nodes", str, "")
    nodes = cpu_list(text, MAX_NODES) if text else ()
    if nodes is None:
        mp.fail(f'invalid node list "{text}" (e.g. "0-1,3", nodes below {MAX_NODES})', "nodes")
    if name in ("MPOL_DEFAULT", "MPOL_LOCAL") and nodes:
        mp.fail(f"{name} takes no nodes", "nodes")
    if name in ("MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_PREFERRED_MANY", "MPOL_WEIGHTED_INTERLEAVE") and not nodes:
        mp.fail(f"{name} needs at least one node", "nodes")
    if flags & MPOL_FLAGS["MPOL_F_STATIC_NODES"] and flags & MPOL_FLAGS["MPOL_F_RELATIVE_NODES"]:
        mp.fail("MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other", "flags")
    return MPOL_MODES[name], flags, nodes


# ----------------------------------------------------------------------------- steps


def initial_steps(proc, mempolicy: tuple | list | None, execing: bool) -> list[Step]:
    """First thing in the child, once in its cgroups: the CPUs it may run on (for `exec`,
    execCPUAffinity's initial; else every CPU its cgroup allows: as runc, a container does not
    inherit the affinity of whoever ran pyrt, e.g. `taskset -c 0 pyrt run`), its memory policy,
    its scheduling and I/O priority (while pyrt-init still has every capability, as runc)."""
    steps = [Step("cpu-affinity", (execing and proc.cpu_affinity[0]) or ())]
    if mempolicy is not None:
        steps.append(Step("mempolicy", *mempolicy))
    if proc.scheduler is not None:
        s = proc.scheduler
        steps.append(Step("scheduler", s.policy, s.nice, s.priority, s.flags, s.runtime, s.deadline, s.period))
    if proc.io_priority is not None:
        steps.append(Step("ioprio", proc.io_priority))
    return steps


def final_steps(proc) -> list[Step]:
    """`exec` only, right before execve (and a noNewPrivileges seccomp filter): execCPUAffinity's
    final. The runtime-spec: "not applicable to the container's init process"; runc 1.5 too."""
    final = proc.cpu_affinity[1]
    return [Step("cpu-affinity", final)] if final else []
