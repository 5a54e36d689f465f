"""What a container's init does, in order: the plan for `create` (and `run`), and for `exec`.

Reading for_create top to bottom is reading the life of a container's first process from clone
to execve. The planner is pure: a function of the validated spec, the host's layout (a
HostLayout value) and the command line's options. It reads nothing of the host and opens
nothing: the fds a plan needs are named slots (steps.Fd), which whoever launches it opens
(Plan.slots()).
"""

from __future__ import annotations

from pyrt import cgroups, devices, hooks, mounts, namespaces, process, sched
from pyrt.cgroups import Cgroup
from pyrt.errors import PyrtError
from pyrt.host import HostLayout
from pyrt.kernel import (
    CLONE,
    FLAGS,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_SHARED,
    MS_SLAVE,
    MS_UNBINDABLE,
    PROPAGATION,
)
from pyrt.spec import Mount, Process, Spec
from pyrt.steps import Fd, Plan, Step


class Options:
    """Command-line choices that shape the plan. `seccomp`: the seccomp(2) flags of a filter to
    load (None: no filter); `console`: a console socket will be there for a terminal; `root`:
    the state root (the default cgroup path depends on it); `in_userns`: pyrt runs in a user
    namespace (rootless podman's), where, as in the container's own, mknod is refused."""

    __slots__ = ("id", "preserve_fds", "no_pivot", "no_new_keyring", "trace", "seccomp", "console", "root",
                 "no_cgroup", "in_userns")

    def __init__(self, container_id: str, preserve_fds: int = 0, no_pivot: bool = False,
                 no_new_keyring: bool = False, trace: bool = False, seccomp: int | None = None,
                 console: bool = False, root: str = "/run/pyrt", no_cgroup: bool = False,
                 in_userns: bool = False) -> None:
        self.id, self.preserve_fds, self.no_pivot = container_id, preserve_fds, no_pivot
        self.no_new_keyring, self.trace, self.seccomp = no_new_keyring, trace, seccomp
        self.console, self.root, self.no_cgroup = console, root, no_cgroup
        self.in_userns = in_userns


def for_create(spec: Spec, host: HostLayout, opts: Options) -> Plan:
    """The steps of a container's init, for a spec the gate passed (config.py): what it checked
    (a process, a new mount namespace, sysctls of the container's namespaces, a console socket for
    a terminal, no private root with --no-pivot) is not checked again here."""
    proc = spec.process
    new = {k for k, path in spec.namespaces.items() if path is None}
    steps = [Step("trace")] if opts.trace else []

    # 1. cgroups (cgroup2 came with clone3; the v1 hierarchies of a hybrid host now), then
    #    namespaces: the new ones came with clone3; join the others; the cgroup one last
    steps += [] if opts.no_cgroup else join_cgroups_steps(host)
    steps += sched.initial_steps(proc, spec.memory_policy, execing=False)
    steps += namespaces.steps(spec)
    if "cgroup" in new:
        steps.append(Step("unshare", CLONE["cgroup"]))
    if proc.oom_score_adj is not None:
        steps.append(Step("oom-score-adj", proc.oom_score_adj))

    # 2. the root filesystem, built while the host's paths are still visible
    steps += root_propagation_steps(spec, opts)
    steps.append(Step("root", spec.root))
    cgroup = Cgroup.for_spec(spec.cgroups_path, opts.id, opts.root, host=host)
    dev_readonly = False
    for i, m in enumerate(spec.mounts):
        dest = mounts.in_root(m.destination, spec.root)
        if m.type in ("cgroup", "cgroup2") and opts.no_cgroup:  # rootless: the host's hierarchies, read-only
            steps.append(Step("mount", "/sys/fs/cgroup", dest, "", MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID
                              | MS_NODEV | MS_NOEXEC, 0, "", True, 0, 0))
        elif m.type in ("cgroup", "cgroup2"):
            steps += cgroups.mount_steps(cgroup, dest, m.opts, "cgroup" in spec.namespaces, m.type)
        elif mounts.idmapping(m, i, spec.uid_mappings, spec.gid_mappings):
            steps.append(mounts.idmapped_step(m, i, spec.bundle, dest))
        elif dest == "/dev" and m.opts.flags & MS_RDONLY and not m.opts.bind:
            # as runc: read-only once /dev/pts, the devices, the console are in it
            steps.append(mounts.mount_step(m, m.opts, spec.bundle, dest, clear=MS_RDONLY))
            dev_readonly = True
        else:
            m = userns_mount(m, spec, new)
            steps.append(mounts.mount_step(m, m.opts, spec.bundle, dest))
    steps += devices.steps(spec, bind="user" in spec.namespaces or opts.in_userns)
    if proc.terminal:
        steps.append(Step("console", Fd("console"), *proc.console_size))
    if dev_readonly:
        steps.append(Step("remount", "/dev", MS_RDONLY))
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
        steps.append(Step("remount", "/", MS_RDONLY))

    # 3. into the new root
    if opts.no_pivot:  # the rootfs moves onto "/": were "/" shared, the move would reach the host's "/"
        steps.append(Step("propagation", "/", MS_PRIVATE))
    steps.append(Step("move-root" if opts.no_pivot else "pivot-root"))
    flags = PROPAGATION.get(spec.rootfs_propagation or "", 0)
    if flags & (MS_SHARED | MS_UNBINDABLE):  # the new root too (private, slave: done at 2.)
        steps.append(Step("propagation", "/", flags))
    if spec.hostname:
        steps.append(Step("hostname", spec.hostname))
    if spec.domainname:
        steps.append(Step("domainname", spec.domainname))
    if spec.personality is not None:
        steps.append(Step("personality", spec.personality))
    # 4. the container's process in all but the program: its credentials, capabilities, cwd
    #    (what fails here fails `create`, as in runc)
    seccomp = seccomp_step(opts)
    steps += process.prepare_steps(proc, opts.id, opts.no_new_keyring)
    steps += process.become_steps(proc, opts.preserve_fds, seccomp)
    if seccomp and proc.no_new_privileges:  # as runc: before the exec fifo (startContainer hooks run under it)
        steps.append(seccomp)

    # 5. parked until `pyrt start`, then the startContainer hooks (with the container's
    #    credentials) and execve; a failure from here on reaches `start` through the exec fifo
    steps.append(Step("ready"))
    steps.append(Step("wait-start", Fd("fifo")))
    steps += hooks.steps("startContainer", spec.hooks)
    steps += process.exec_steps(proc, opts.preserve_fds)
    return Plan(steps)


def userns_mount(m: Mount, spec: Spec, new: set[str]) -> Mount:
    """In a user namespace, as runc: sysfs only in a network namespace of the container's own,
    mqueue only in its own ipc namespace (the kernel's rule); else the host's, bound (recursive
    for /sys), with the mount's flags."""
    if "user" not in spec.namespaces:
        return m
    for fstype, owner, host, bind in (("sysfs", "network", "/sys", "rbind"), ("mqueue", "ipc", "/dev/mqueue", "bind")):
        if m.type == fstype and owner not in new:
            from pyrt import mountopts

            options = [bind, *(o for o in m.options if o in FLAGS)]
            return Mount(m.destination, "bind", host, options, mountopts.parse("bind", options, "config.json: mounts"))
    return m


def join_cgroups_steps(host: HostLayout) -> list[Step]:
    """Into the container's cgroup v1 hierarchies (hybrid hosts): their `tasks` files' slots."""
    slots = host.v1_slots()
    return [Step("join-cgroups", [Fd(name) for name in slots])] if slots else []


def seccomp_step(opts: Options) -> Step | None:
    return Step("seccomp", Fd("seccomp"), opts.seccomp) if opts.seccomp is not None else None


def root_propagation_steps(spec: Spec, opts: Options) -> list[Step]:
    """As runc 1.5: the configured rootfsPropagation on "/" in place of the default rslave (which
    lets host mounts reach the container and nothing it mounts reach the host), so that the
    volumes of a rshared root stay in their host peer groups (Kubernetes' Bidirectional); then
    the mount holding the rootfs private (slave if a slave root was asked for), so the root bind
    stays in this namespace and pivot_root, which refuses a shared parent, accepts it."""
    asked = PROPAGATION[spec.rootfs_propagation] if spec.rootfs_propagation else 0
    holder = MS_SLAVE if asked & MS_SLAVE else MS_PRIVATE
    return [Step("propagation", "/", asked or MS_SLAVE | MS_REC),
            Step("propagation", spec.root, holder)]


def for_exec(proc: Process, host: HostLayout, kinds: list[str], opts: Options,
             personality: int | None = None, mempolicy: list | None = None) -> Plan:
    """What a process joining a container does (`exec`): its cgroup v1 hierarchies (cgroup2
    came with clone3; `host` is the container's layout, from its state), all its namespaces
    `kinds` in one setns on the init's pidfd, a fork to be inside its pid namespace, then the
    same last steps as the container's own process (with the container's personality and
    memory policy, as runc)."""
    steps = [Step("trace")] if opts.trace else []
    steps += join_cgroups_steps(host)
    steps += sched.initial_steps(proc, mempolicy, execing=True)
    if proc.oom_score_adj is not None:
        steps.append(Step("oom-score-adj", proc.oom_score_adj))  # through the host's /proc
    steps.append(Step("setns", Fd("pidfd"), sum(CLONE[k] for k in kinds)))
    if "pid" in kinds:
        steps.append(Step("fork"))
    steps.append(Step("enter-root"))
    if proc.terminal:
        if not opts.console:
            raise PyrtError("process.terminal is true: exec needs a --console-socket (or to run in the foreground)")
        steps.append(Step("pty", Fd("console"), *proc.console_size))
    if personality is not None:
        steps.append(Step("personality", personality))
    seccomp = seccomp_step(opts)
    steps += process.prepare_steps(proc, opts.id, opts.no_new_keyring)
    steps += process.become_steps(proc, opts.preserve_fds, seccomp)
    steps += sched.final_steps(proc)
    steps += process.exec_steps(proc, opts.preserve_fds, seccomp)
    return Plan(steps)
