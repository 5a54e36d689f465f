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

from pyrt.errors import PyrtError

#: Each parent step's system calls and why it is there (`pyrt plan --explain`), beside describe()
EXPLAIN = {
    "state-dir": ("mkdir(2), open(2) O_DIRECTORY, flock(2)",
                  "where state.json and the journal live; the lock keeps two commands on one container apart"),
    "seccomp": ("seccomp_export_bpf (libseccomp), memfd_create(2), write(2)",
                "compiled once on the host from linux.seccomp; kept so `exec` loads the same filter"),
    "cgroup": ("mkdir(2), setxattr(2) trusted.pyrt.created, flock(2)",
               "the container's cgroup in every hierarchy, journaled before each mkdir, marked as pyrt's after it"),
    "no-cgroup": ("none", "rootless without a cgroup this user may write: nothing to make, nothing limits"),
    "limit": ("open(2), write(2) of a cgroup file (bpf(2) for cgroup2 devices)",
              "linux.resources, written before any process of the container runs"),
    "fifo": ("mknod(2) S_IFIFO, open(2) O_RDWR", "pyrt-init waits on it until `pyrt start` writes into it"),
    "idmap-trees": ("open_tree(2) OPEN_TREE_CLONE, mount_setattr(2) MOUNT_ATTR_IDMAP",
                    "idmapped mounts are made on the host, where the source is reachable, and handed over by fd"),
    "spawn": ("socketpair(2), memfd_create(2), clone3(2) CLONE_NEW*|CLONE_INTO_CGROUP, execveat(2)",
              "pyrt-init starts already in the container's namespaces and cgroup, from a sealed copy (CVE-2019-5736)"),
    "map-ids": ("write(2) to /proc/PID/uid_map, setgroups, gid_map (or newuidmap(1), newgidmap(1))",
                "a new user namespace's ids are mapped from outside it, by its parent"),
    "net-devices": ("netlink RTM_SETLINK IFLA_NET_NS_FD + IFLA_IFNAME, RTM_NEWADDR (socket(2) after setns(2))",
                    "linux.netDevices: the host links are in the container's namespace before its plan starts"),
    "go": ("write(2) \"go\" on the sync socket", "pyrt holds what it needs of the new process: pyrt-init may start"),
    "network": ("netlink (pyroute2): veth, bridge, address, route; nft for published ports",
                "bridge mode only (--network bridge, -p): the host end of the container's eth0"),
    "hooks": ("fork(2), execve(2), waitpid(2) of each hook; send(2) of the state",
              "the OCI runtime's hooks run on the host while pyrt-init waits at hook-sync"),
    "ready": ("recv(2) on the sync socket", "until READY nothing is promised: a failure of pyrt-init fails `create`"),
    "record": ("write(2) + rename(2) of state.json (and the pid file)",
               "what state, start, kill and delete read: written last, once everything exists"),
}


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
        if self.name == "no-cgroup":
            return "no cgroup: rootless, and none this user may write (nothing limits the container)"
        if self.name == "limit":
            return f"{v[0].describe()} [{v[0].where}]"
        if self.name == "fifo":
            return f"make the exec fifo {v[0]}"
        if self.name == "idmap-trees":
            return "make the idmapped binds " + "; ".join(
                f"{src} ({_maps(uid)} uids, {_maps(gid)} gids{', recursive' if rec else ''})"
                for _, src, uid, gid, _, rec in v[0]) + " (a user namespace of the maps held by fd; open_tree, " \
                "mount_setattr): the container's root may not idmap"
        if self.name == "spawn":
            return f"clone pyrt-init into the cgroup and new namespaces ({_namespace_names(v[0])}), journal it"
        if self.name == "map-ids":
            deny = 'setgroups "deny" (no CAP_SETGID here), ' if v[2] == "deny" else ""
            tools = " with newuidmap and newgidmap" if v[2] == "helpers" else ""
            return f"write its uid_map ({_maps(v[0])}), {deny}gid_map ({_maps(v[1])}){tools}; tell it \"mapped\": " \
                   "it becomes root of its user namespace, then pyrt-init"
        if self.name == "net-devices":
            return "move " + ", ".join(f"{h} (as {n})" for h, n in v[0]) + " into its network namespace, with " \
                "their addresses, up (each journaled first: delete moves them back)"
        if self.name == "go":
            return "send it \"go\": it reads its plan"
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


def _maps(maps) -> str:
    return ", ".join(f"{c}-{c + n - 1} -> {h}-{h + n - 1}" for c, h, n in maps)


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
    if cg.bases():
        steps.append(Action("cgroup", cg))
        steps += [Action("limit", w) for w in cgwrites.writes(spec.resources, cg, device_nodes=spec.devices)]
    else:  # rootless, and no cgroup this user may write (rootless.NoCgroup): a limit asked for is refused
        r = spec.resources
        asked = [k for k in ("memory", "cpu", "pids", "block_io", "hugepages", "rdma", "network", "devices", "unified")
                 if getattr(r, k)]
        if asked:
            raise PyrtError(f"config.json: linux.resources: rootless and no writable cgroup: cannot apply {asked[0]} "
                            "limits")
        steps.append(Action("no-cgroup", cg))
    steps.append(Action("fifo", os.path.join(state_dir, "exec.fifo")))
    trees = idmapped_trees(spec)
    if trees:
        steps.append(Action("idmap-trees", trees))
    steps.append(Action("spawn", namespaces.clone_flags(spec)))
    if "user" in spec.namespaces and spec.namespaces["user"] is None:
        from pyrt import userns

        steps.append(Action("map-ids", spec.uid_mappings, spec.gid_mappings,
                            userns.how(spec.uid_mappings, spec.gid_mappings)))
    if spec.net_devices:
        from pyrt import netdevices

        netdevices.check(spec.net_devices)
        steps.append(Action("net-devices", spec.net_devices))
    steps.append(Action("go"))
    if spec.network:
        steps.append(Action("network", spec.network))
    kinds = [k for k in ("prestart", "createRuntime") if spec.hooks.get(k)]
    if kinds or any(spec.hooks.get(k) for k in ("createContainer", "startContainer")):
        steps.append(Action("hooks", kinds))
    steps.append(Action("ready"))
    steps.append(Action("record", pid_file))
    return steps


def idmapped_trees(spec) -> list[tuple]:
    """(index, source on the host, uid maps, gid maps, rbind, ridmap) of each idmapped mount."""
    from pyrt import mounts
    from pyrt.kernel import MS_REC

    out = []
    for i, m in enumerate(spec.mounts):
        idmap = mounts.idmapping(m, i, spec.uid_mappings, spec.gid_mappings)
        if idmap:
            uid, gid, ridmap = idmap
            out.append((i, os.path.normpath(os.path.join(spec.bundle, m.source)), uid, gid,
                        bool(m.opts.flags & MS_REC), ridmap))
    return out


def render(parent: list[Action], child: list, explain: bool = False) -> str:
    """`pyrt plan`'s text: the parent's steps, then pyrt-init's, one numbered step per line; with
    `explain`, under each the system calls it becomes and why it is there."""
    lines = ["pyrt, on the host:"]
    for i, a in enumerate(parent):
        lines.append(f"{i:3d}  {a.describe()}")
        if explain:
            lines += _explained(*EXPLAIN[a.name])
    lines.append("pyrt-init, the container's first process:")
    for i, s in enumerate(child):
        lines.append(f"{i:3d}  {s.describe()}")
        if explain:
            lines += _explained(s.type.calls, s.type.why)
    return "\n".join(lines)


def _explained(calls: str, why: str) -> list[str]:
    return [f"       syscalls: {calls}", f"       why: {why}"]
