"""What `create` does on the host, in order: the parent's half of the plan, as data.

The child's steps (planner.py) are what pyrt-init does inside the new namespaces; these are
what pyrt does around them: the state directory, the cgroup and its limits, the clone, pyrt's
network, the runtime's hooks, state.json. Built from the validated spec and this host's
layout, without side effects: what can only be checked against the host (a controller this
host lacks, a syscall libseccomp does not know) fails here, before anything exists. `pyrt plan`
prints them; launch.create executes them in this order, each one journaled before its side
effect where it makes something outside the state directory (journal.py).
"""

from __future__ import annotations

import os


class Action:
    """One step of the parent: `name` and its values (what launch.py needs to do it)."""

    __slots__ = ("name", "values")

    def __init__(self, name: str, *values: object) -> None:
        self.name, self.values = name, values

    def __repr__(self) -> str:
        return f"Action({self.name!r}, {', '.join(map(repr, self.values))})"

    def describe(self) -> str:
        """One line for people (`pyrt plan`)."""
        v = self.values
        if self.name == "state-dir":
            return f"make the state directory {v[0]} (locked; its journal names what follows before it is made)"
        if self.name == "seccomp":
            return f"keep the seccomp program ({len(v[0]) // 8} BPF instructions) as seccomp.bpf, for exec"
        if self.name == "cgroup":
            n = len(v[0].bases()) - 1
            where = f"the cgroup2 tree and {n} v1 hierarchies" if n else "the cgroup2 tree"
            return f"make or join cgroup {v[0].path} in {where} (each mkdir journaled first)"
        if self.name == "limit":
            return f"{v[0].describe()} [{v[0].where}]"
        if self.name == "fifo":
            return f"make the exec fifo {v[0]}"
        if self.name == "spawn":
            return f"clone pyrt-init into the cgroup and new namespaces ({_namespace_names(v[0])}), journal it, " \
                   "send it the plan and \"go\""
        if self.name == "network":
            ports = ", ".join(map(str, v[0].ports)) or "none"
            return f"give eth0 an address on bridge {v[0].bridge} ({v[0].subnet}), publish ports: {ports} " \
                   "(journaled first)"
        if self.name == "hooks":
            run = f"run the {' and '.join(v[0])} hooks, then " if v[0] else ""
            return f"when pyrt-init stops at hook-sync: {run}send it the state JSON for its own hooks"
        if self.name == "ready":
            return "wait until pyrt-init is ready (parked on the exec fifo)"
        return "write state.json" + (", then the pid file" if v[0] else "")


def _namespace_names(flags: int) -> str:
    from pyrt import namespaces

    return ",".join(n for n, bit in namespaces.CLONE.items() if flags & bit) or "none"


def for_create(spec, cg, state_dir: str, bpf: bytes | None, pid_file: bool) -> list[Action]:
    """The parent's steps for one container: `cg` its Cgroup (Cgroup.for_spec), `bpf` its
    compiled seccomp program (None: no filter). Raises what this host cannot do (cgwrites)."""
    from pyrt import cgwrites, namespaces

    steps = [Action("state-dir", state_dir)]
    if bpf is not None:
        steps.append(Action("seccomp", bpf))
    steps.append(Action("cgroup", cg))
    steps += [Action("limit", w) for w in cgwrites.writes(spec.resources, cg, device_nodes=spec.devices)]
    steps.append(Action("fifo", os.path.join(state_dir, "exec.fifo")))
    steps.append(Action("spawn", namespaces.clone_flags(spec)))
    if spec.network:
        steps.append(Action("network", spec.network))
    kinds = [k for k in ("prestart", "createRuntime") if spec.hooks.get(k)]
    if kinds or any(spec.hooks.get(k) for k in ("createContainer", "startContainer")):
        steps.append(Action("hooks", kinds))
    steps.append(Action("ready"))
    steps.append(Action("record", pid_file))
    return steps


def render(parent: list[Action], child: list) -> str:
    """`pyrt plan`'s text: the parent's steps, then pyrt-init's, one numbered step per line."""
    lines = ["pyrt, on the host:"]
    lines += [f"{i:3d}  {a.describe()}" for i, a in enumerate(parent)]
    lines.append("pyrt-init, the container's first process:")
    lines += [f"{i:3d}  {s.describe()}" for i, s in enumerate(child)]
    return "\n".join(lines)
