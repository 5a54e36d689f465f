"""What several commands share: the checks of create's, run's and exec's flags, the gate's
overrides from them, and the foreground of run and exec."""

from __future__ import annotations

import os

from pyrt.errors import PyrtError


def check_preserve_fds(n: int) -> None:
    """--preserve-fds N passes fds 3..3+N-1: each must be open here (as runc checks), which also
    bounds N by the fd table."""
    if n < 0:
        raise PyrtError("--preserve-fds must not be negative")
    for fd in range(3, 3 + n):
        try:
            os.fstat(fd)
        except OSError as e:
            raise PyrtError(f"unable to stat preserved-fd {fd} (of {n}): {os.strerror(e.errno).lower()}") from None


def check_console_socket(path: str | None, what: str = "console socket") -> None:
    """An AF_UNIX path holds at most 107 bytes (sun_path): refuse a longer one as runc's
    connect(2) does, by name, before anything is set up (--console-socket, --pidfd-socket)."""
    if path and len(os.fsencode(path)) > 107:
        raise PyrtError(f"connect to {what} {path}: invalid argument (an AF_UNIX path has at most 107 bytes)")


def create_options(opts: dict, bundle: str):
    """create's and run's flags, checked."""
    from pyrt.launch import CreateOptions

    check_preserve_fds(opts["preserve-fds"])
    check_console_socket(opts["console-socket"])
    check_console_socket(opts["pidfd-socket"], "pidfd socket")
    return CreateOptions(bundle, opts["pid-file"], opts["console-socket"], opts["preserve-fds"], opts["no-pivot"],
                         opts["no-new-keyring"], pidfd_socket=opts["pidfd-socket"])


def tracer(opts: dict, command: str):
    """--trace's trace.Tracer, or None (and pyrt.trace is not even imported)."""
    if opts["trace"] is None:
        return None
    from pyrt import trace

    return trace.Tracer.open_file(opts["trace"], command, 3 + opts["preserve-fds"])


#: --trace's words for the two steps before the plan's (create and run)
CONFIG = "read config.json and the flags through the gate (config.load)"
PLAN = "probe the host, plan both halves (commands.common.prepare)"


def timed(trace, name: str, text: str, fn, *args):
    """`fn(*args)`, one of pyrt's steps: traced with --trace (`trace` a trace.Tracer), else just done."""
    return fn(*args) if trace is None else trace.run(name, text, fn, *args)


def overrides(opts: dict, relay: bool = False):
    """What create's and run's flags change in config.json (config.Overrides); `relay`: the
    command gives the container a terminal of its own (`run` in the foreground)."""
    from pyrt.config import Overrides

    return Overrides(opts["network"], opts["publish"], opts["publish-all"], opts["console-socket"], relay,
                     opts["no-pivot"])


def prepare(root: str, container_id: str, spec, opts, rootless: bool = False):
    """The plan of `create` for a validated spec on this host (steps.Plan): the parent's steps
    (parent_plan.py) and pyrt-init's (planner.py). What only the host can refuse is refused
    here, before any side effect. `pyrt plan` prints it."""
    from pyrt import cgroups, host, log, parent_plan, planner, state
    from pyrt.steps import Plan

    state.validate_id(container_id)
    bpf = None
    if spec.seccomp is not None:
        from pyrt import seccomp

        bpf = seccomp.program(spec.seccomp)
    from pyrt.procfs import in_user_namespace

    in_userns = in_user_namespace()  # rootless podman's: as in the container's own, only the host's root may mknod
    if "user" in spec.namespaces or in_userns:
        from pyrt import devices, userns

        if devices.needs_setup(spec):
            userns.check_host_devices([d for d in devices.devices(spec) if d.path != "/dev/ptmx"])
    layout = host.probe()
    own_pidns = "pid" in spec.namespaces and spec.namespaces["pid"] is None
    cg = cgroups.Cgroup.for_spec(spec.cgroups_path, container_id, root, own_pidns, layout)
    if rootless:
        from pyrt import rootless as rootless_

        if not rootless_.writable(cg):
            cg = rootless_.NoCgroup(cg.owner, own_pidns)
    parent = parent_plan.for_create(spec, cg, os.path.join(root, container_id), bpf, bool(opts.pid_file))
    plan_opts = planner.Options(container_id, opts.preserve_fds, opts.no_pivot, opts.no_new_keyring,
                                trace=log.debugging() or opts.trace is not None,
                                seccomp=spec.seccomp.flags if bpf is not None else None,
                                console=spec.process.terminal, root=root, no_cgroup=not cg.bases(),
                                in_userns=in_userns)
    return Plan(planner.for_create(spec, layout, plan_opts).child, parent)
