"""What a container's init does, in order: the plan for `create` (and `run`).

Reading this function top to bottom is reading the life of a container's first process from
clone to execve. The parent opens the fds the plan refers to (joined namespaces, the exec
fifo, the console socket, a seccomp program) and passes their numbers in `Fds`.
"""

from __future__ import annotations

from pyrt import cgroups, devices, hooks, mounts, namespaces, process
from pyrt.cgroups import Cgroup
from pyrt.errors import PyrtError
from pyrt.plan import Step
from pyrt.spec import Process, Spec


class Fds:
    """fd numbers (in the child) that steps refer to."""

    def __init__(self, fifo: int, joined: dict[str, int] | None = None, console: int = -1,
                 seccomp: int = -1, v1_tasks: list[int] | tuple = ()) -> None:
        self.fifo, self.joined, self.console, self.seccomp = fifo, joined or {}, console, seccomp
        self.v1_tasks = list(v1_tasks)  # `tasks` files of the cgroup v1 hierarchies (hybrid hosts)


class Options:
    """Command-line choices that shape the plan."""

    def __init__(self, container_id: str, preserve_fds: int = 0, no_pivot: bool = False,
                 no_new_keyring: bool = False, trace: bool = False, seccomp_flags: int = 0) -> None:
        self.id, self.preserve_fds, self.no_pivot = container_id, preserve_fds, no_pivot
        self.no_new_keyring, self.trace = no_new_keyring, trace
        self.seccomp_flags = seccomp_flags


def for_create(spec: Spec, fds: Fds, opts: Options, cgroup: Cgroup) -> list[Step]:
    """The steps of a container's init, for a spec the gate passed (config.py)."""
    proc = spec.process
    new = {k for k, path in spec.namespaces.items() if path is None}
    steps = [Step("trace")] if opts.trace else []

    # 1. cgroups (cgroup2 came with clone3; the v1 hierarchies of a hybrid host now), then
    #    namespaces: the new ones came with clone3; join the others; the cgroup one last
    if fds.v1_tasks:
        steps.append(Step("join-cgroups", ",".join(map(str, fds.v1_tasks))))
    steps += namespaces.join_steps(fds.joined)
    if "cgroup" in new:
        steps.append(Step("unshare", namespaces.CLONE["cgroup"]))
    if proc.oom_score_adj is not None:
        steps.append(Step("oom-score-adj", proc.oom_score_adj))

    # 2. the root filesystem, built while the host's paths are still visible
    steps += root_propagation_steps(spec, opts)
    steps.append(Step("root", spec.root))
    for m in spec.mounts:
        if m.type in ("cgroup", "cgroup2"):
            steps += cgroups.mount_steps(cgroup, m.destination, m.opts, "cgroup" in spec.namespaces,
                                         m.type)
        else:
            steps.append(mounts.mount_step(m, m.opts, spec.bundle))
    steps += devices.steps(spec)
    if proc.terminal:
        steps.append(Step("console", fds.console, *proc.console_size))
    if proc.cwd != "/":
        steps.append(Step("mkdir", proc.cwd))
    if "network" in new:
        steps.append(Step("lo-up"))
    steps += hooks.create_steps(spec.hooks)  # prestart, createRuntime (parent), createContainer
    for key, value in spec.sysctl.items():  # before /proc/sys becomes read-only
        steps.append(Step("sysctl", "/proc/sys/" + key.replace(".", "/"), value))
    steps += [Step("readonly", p) for p in spec.readonly_paths]
    steps += [Step("mask", p) for p in spec.masked_paths]
    if spec.root_readonly:
        steps.append(Step("remount", "/", mounts.MS_RDONLY))

    # 3. into the new root
    if opts.no_pivot:  # the rootfs moves onto "/": were "/" shared, the move would reach the host's "/"
        steps.append(Step("propagation", "/", mounts.MS_PRIVATE))
    steps.append(Step("move-root" if opts.no_pivot else "pivot-root"))
    flags = mounts.PROPAGATION.get(spec.rootfs_propagation or "", 0)
    if flags & (mounts.MS_SHARED | mounts.MS_UNBINDABLE):  # the new root too (private, slave: done at 2.)
        steps.append(Step("propagation", "/", flags))
    if spec.hostname:
        steps.append(Step("hostname", spec.hostname))
    if spec.domainname:
        steps.append(Step("domainname", spec.domainname))
    if spec.personality is not None:
        steps.append(Step("personality", spec.personality))
    steps += process.prepare_steps(proc, opts.id, opts.no_new_keyring)

    # 4. parked until `pyrt start`, then become the container's process
    steps.append(Step("ready"))
    steps.append(Step("wait-start", fds.fifo))
    seccomp = Step("seccomp", fds.seccomp, opts.seccomp_flags) if fds.seccomp >= 0 else None
    final = process.final_steps(proc, opts.preserve_fds, seccomp)
    at = [s.op for s in final].index("chdir")  # startContainer hooks: the container's credentials
    steps += final[:at] + hooks.steps("startContainer", spec.hooks) + final[at:]
    return steps


def root_propagation_steps(spec: Spec, opts: Options) -> list[Step]:
    """As runc 1.5: the configured rootfsPropagation on "/" in place of the default rslave (which
    lets host mounts reach the container and nothing it mounts reach the host), so that the
    volumes of a rshared root stay in their host peer groups (Kubernetes' Bidirectional); then
    the mount holding the rootfs private (slave if a slave root was asked for), so the root bind
    stays in this namespace and pivot_root, which refuses a shared parent, accepts it."""
    asked = mounts.PROPAGATION[spec.rootfs_propagation] if spec.rootfs_propagation else 0
    holder = mounts.MS_SLAVE if asked & mounts.MS_SLAVE else mounts.MS_PRIVATE
    return [Step("propagation", "/", asked or mounts.MS_SLAVE | mounts.MS_REC),
            Step("propagation", spec.root, holder)]


def for_exec(proc: Process, pidfd: int, kinds: list[str], fds: Fds, opts: Options,
             personality: int | None = None) -> list[Step]:
    """What a process joining a container does (`exec`): its cgroup v1 hierarchies (cgroup2
    came with clone3), all its namespaces in one setns on the init's pidfd, a fork to be
    inside its pid namespace, then the same last steps as the container's own process (with
    the container's personality, as runc)."""
    steps = [Step("trace")] if opts.trace else []
    if fds.v1_tasks:
        steps.append(Step("join-cgroups", ",".join(map(str, fds.v1_tasks))))
    if proc.oom_score_adj is not None:
        steps.append(Step("oom-score-adj", proc.oom_score_adj))  # through the host's /proc
    steps.append(Step("setns", pidfd, sum(namespaces.CLONE[k] for k in kinds)))
    if "pid" in kinds:
        steps.append(Step("fork"))
    steps.append(Step("enter-root"))
    if proc.terminal:
        if fds.console < 0:
            raise PyrtError("process.terminal is true: exec needs a --console-socket (or to run in the foreground)")
        steps.append(Step("pty", fds.console, *proc.console_size))
    if personality is not None:
        steps.append(Step("personality", personality))
    steps += process.prepare_steps(proc, opts.id, opts.no_new_keyring)
    seccomp = Step("seccomp", fds.seccomp, opts.seccomp_flags) if fds.seccomp >= 0 else None
    steps += process.final_steps(proc, opts.preserve_fds, seccomp)
    return steps
