"""Side effects start here: the one spawn sequence of `create` and `exec`.

    create  the parent's steps of the plan, in order (parent_plan.py): state directory, seccomp
            program, cgroup and limits, exec fifo, clone3 + pyrt-init ("go"), network, the
            runtime's hooks, "ready", state.json. Whatever it makes outside the state directory
            is journaled before it is made; on any failure (as after a kill) undoing the
            journal leaves nothing behind.
    exec    the container's init's pidfd, its cgroup, its seccomp program; clone3 + pyrt-init,
            which joins the container and execs the process.

Both open the fds the child's plan refers to (its slots) above the --preserve-fds range, spawn
pyrt-init from a sealed memfd (spawn.py), close them once the child holds its copies, and say
"go"; then they follow the sync protocol until "ready" (create) or the execve (exec).
"""

from __future__ import annotations

import os

from pyrt import journal, log, procfs, protocol, state
from pyrt.errors import PyrtError
from pyrt.spawn import Init, above


class Slots:
    """The fds a child's plan names, by slot name, above the preserved fds. Those opened here
    are closed once the child holds its copies (or on failure)."""

    def __init__(self, floor: int) -> None:
        self.floor, self.fds, self.owned = floor, {}, []

    def add(self, name: str, fd: int) -> int:
        """An fd opened for the plan: moved above the floor, closed by close()."""
        self.fds[name] = fd = above(fd, self.floor)
        self.owned.append(fd)
        return fd

    def lend(self, name: str, fd: int) -> int:
        """Someone else's fd for the plan (`run`'s console socket): theirs to close."""
        self.fds[name] = fd
        return fd

    def close(self) -> None:
        for fd in self.owned:
            os.close(fd)
        self.owned = []


def start(plan, slots: Slots, clone_flags: int, cg, before_go=None, go: bool = True) -> Init:
    """clone3 pyrt-init into `cg` (new namespaces: `clone_flags`) on the child's steps of `plan`,
    its fd slots resolved by `slots`; `before_go(init)` (create journals the init there), then
    close the slots and "go" (unless not `go`: create does it as a step of its own)."""
    cgroup_fd = cg.open_dir()  # -1: none (rootless.NoCgroup)
    try:
        init = Init.spawn(plan, slots.fds, clone_flags, cgroup_fd, slots.floor, cg.dir)
    finally:
        if cgroup_fd >= 0:
            os.close(cgroup_fd)
    try:
        if before_go:
            before_go(init)
        if go:
            slots.close()
            init.go()
    except BaseException:
        init.kill()
        raise
    return init


# ----------------------------------------------------------------------------- create


class CreateOptions:
    """The command line's choices for create and run (their checks are the gate's: config.py).
    `trace`: --trace's trace.Tracer (None without it)."""

    def __init__(self, bundle: str, pid_file: str | None = None, console_socket: str | None = None,
                 preserve_fds: int = 0, no_pivot: bool = False, no_new_keyring: bool = False, trace=None,
                 pidfd_socket: str | None = None) -> None:
        self.bundle, self.pid_file, self.console_socket = bundle, pid_file, console_socket
        self.preserve_fds, self.no_pivot, self.no_new_keyring = preserve_fds, no_pivot, no_new_keyring
        self.trace, self.pidfd_socket = trace, pidfd_socket


def create(root: str, container_id: str, spec, plan, opts: CreateOptions, console_fd: int = -1) -> Init:
    """Execute the parent's steps of `plan` (commands.common.prepare) for a validated `spec`:
    the container is set up and its init parked on the exec fifo. Returns the Init (our child) so
    `run` can go on. `console_fd` is a console socket `run` made itself; otherwise
    --console-socket is connected here."""
    c = _Create(root, container_id, spec, plan, opts, console_fd)
    try:
        if opts.pidfd_socket:  # as runc: before anything is made
            c.pidfd_socket = connect(opts.pidfd_socket, "pidfd socket")
        from pyrt import namespaces

        for slot, fd in namespaces.open_joined(spec).items():  # a bad path fails before anything is made
            c.slots.add(slot, fd)
        if spec.namespaces.get("user") and (spec.uid_mappings or spec.gid_mappings):
            from pyrt import userns

            userns.check_joined(spec, c.slots.fds[namespaces.slot("user")])
        for action in plan.parent:
            step = getattr(c, action.name.replace("-", "_"))
            if opts.trace is None:
                step(*action.values)
            else:
                opts.trace.run(action.name, action.describe(), step, *action.values)
        return c.init
    except BaseException:
        c.fail()
        raise
    finally:
        c.close()


class _Create:
    """One create while it runs: each method is a parent step of parent_plan.py."""

    def __init__(self, root: str, container_id: str, spec, plan, opts: CreateOptions, console_fd: int) -> None:
        self.root, self.id, self.spec, self.opts, self.console_fd = root, container_id, spec, opts, console_fd
        self.plan = plan
        self.slots = Slots(3 + opts.preserve_fds)
        self.c: state.Container | None = None
        self.cg = self.init = None
        self.seccomp_flags: int | None = None
        self.netns = self.pidfd_socket = self.netdev_ns = -1
        self.annotations = dict(spec.annotations)

    def state_dir(self, path: str) -> None:
        self.c = state.Container.new(self.root, self.id)

    def seccomp(self, code: bytes) -> None:
        from pyrt import seccomp

        self.slots.add("seccomp", seccomp.save(code, self.c.dir_fd, self.slots.floor, self.spec.seccomp))
        self.seccomp_flags = self.spec.seccomp.flags

    def no_cgroup(self, cg) -> None:
        self.cg = cg

    def cgroup(self, cg) -> None:
        self.cg = cg
        cg.make(self.c.dir_fd)

    def limit(self, write) -> None:
        self.cg.limit([write])

    def fifo(self, path: str) -> None:
        try:
            os.mkfifo(path, 0o600)
            self.slots.add("fifo", os.open(path, os.O_RDWR | os.O_CLOEXEC))
        except OSError as e:
            raise PyrtError(f"create {path}: {os.strerror(e.errno).lower()}") from None

    def spawn(self, clone_flags: int) -> None:
        spec, slots = self.spec, self.slots
        if spec.process.terminal and self.console_fd >= 0:  # `run` made its own
            slots.lend("console", self.console_fd)
        elif spec.process.terminal:
            slots.add("console", connect(self.opts.console_socket))
        for slot, fd in self.cg.open_v1_tasks().items():  # pyrt-init joins them itself
            slots.add(slot, fd)
        self.init = start(self.plan, slots, clone_flags, self.cg, self._journal_init, go=False)
        if self.opts.trace is not None:
            self.opts.trace.attach(self.init)
        if self.spec.seccomp is not None and self.spec.seccomp.listener:
            self.init.on_listener = self._send_listener

    def _send_listener(self, fd: int) -> None:
        from pyrt import hooks, seccomp

        spec, p = self.spec, self.spec.seccomp
        st = hooks.state(self.id, "creating", self.init.pid, spec.bundle, self.annotations)
        seccomp.send_listener(p.listener, p.metadata, fd, self.init.pid, st)

    def idmap_trees(self, trees: list) -> None:
        from pyrt import userns

        for slot, fd in userns.idmapped_trees(trees).items():
            self.slots.add(slot, fd)

    def map_ids(self, uid_maps: tuple, gid_maps: tuple, way: str) -> None:
        from pyrt import userns

        userns.write_maps(self.init.pid, self.init.sock, uid_maps, gid_maps, way)

    def net_devices(self, devices: tuple) -> None:
        from pyrt import netdevices

        # held until create ends: should pyrt-init fail, the links are still there to move back
        self.netdev_ns = os.open(f"/proc/{self.init.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        netdevices.move_in(self.c.dir_fd, self.init.pid, procfs.start_time(self.init.pid), self.netdev_ns, devices)

    def go(self) -> None:
        self.slots.close()
        self.init.go()

    def _journal_init(self, init: Init) -> None:
        # journaled before "go": killed before this line, the init reads end-of-file and exits
        journal.record(self.c.dir_fd, "process", pid=init.pid, start=procfs.start_time(init.pid))
        if self.spec.network:  # the new network namespace exists since clone3: held, even if pyrt-init fails
            self.netns = os.open(f"/proc/{init.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    def network(self, request) -> None:
        """Set up while pyrt-init works on its plan."""
        from pyrt import network

        journal.record(self.c.dir_fd, "network", root=os.path.abspath(self.root), id=self.id)
        netns, self.netns = self.netns, -1
        self.annotations.update(network.setup(self.root, self.id, netns, request))

    def hooks(self, kinds: list[str]) -> None:
        from pyrt import hooks

        hooks.at_sync(self.spec, self.id, self.init, self.annotations)

    def ready(self) -> None:
        self.init.wait(protocol.READY)
        if self.pidfd_socket >= 0:
            send_pidfd(self.pidfd_socket, self.init.pidfd, b"standard")

    def record(self, pid_file: bool) -> None:
        from pyrt import config, hooks

        spec, init = self.spec, self.init
        self.c.record = state.Record(
            spec.oci_version, self.id, init.pid, spec.bundle, spec.root, log.rfc3339(nanos=True), self.annotations,
            procfs.start_time(init.pid), self.cg.to_state(), hooks.to_record(spec.hooks),
            config.process_json(spec.process), sorted(spec.namespaces), self.opts.no_new_keyring, spec.personality,
            self.seccomp_flags, memory_policy=spec.memory_policy)
        self.c.save()
        if pid_file:
            write_pid_file(self.opts.pid_file, init.pid, self.c.dir_fd)

    def fail(self) -> None:
        """Undo what was made (the journal), after a failure or an interrupt."""
        self.slots.close()
        if self.netns >= 0:
            os.close(self.netns)
        if self.netdev_ns >= 0:
            _undo_net_devices(self.c.dir_fd, self.netdev_ns)
        if self.init is not None:
            self.init.kill()
        if self.c is None:
            return
        try:
            journal.undo(self.c.dir_fd)
            undone = True
        except PyrtError:
            undone = False  # what could not be undone stays journaled: `delete --force` tries again
        if self.init is not None:
            from pyrt import hooks

            spec = self.spec
            st = hooks.state(self.id, "stopped", 0, spec.bundle, self.annotations)
            hooks.run("poststop", spec.hooks.get("poststop", []), st, must_succeed=False)
        if undone:
            self.c.remove()

    def close(self) -> None:
        if self.netdev_ns >= 0:
            os.close(self.netdev_ns)
            self.netdev_ns = -1
        if self.pidfd_socket >= 0:
            os.close(self.pidfd_socket)
            self.pidfd_socket = -1
        if self.c is not None:
            self.c.close()


def _undo_net_devices(dir_fd: int, nsfd: int) -> None:
    """linux.netDevices back to the host from the namespace `nsfd` (held: the init may be gone)."""
    from pyrt import netdevices

    for item in reversed(journal.records(dir_fd)):
        if item["kind"] == "netdev":
            try:
                netdevices.move_back(item, nsfd)
            except PyrtError as e:
                log.warning(str(e))


def connect(path: str, what: str = "console socket") -> int:
    """A connection to a console socket (runc's protocol: the pty master is sent over it) or a
    pidfd socket (send_pidfd)."""
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise PyrtError(f"connect to {what} {path}: {os.strerror(e.errno).lower()}") from None
    return s.detach()


def send_pidfd(sock: int, pidfd: int, kind: bytes) -> None:
    """--pidfd-socket, runc's protocol: a pidfd of the process (SCM_RIGHTS) with the word
    "standard" (create, run: the init) or "setns" (exec)."""
    import socket

    s = socket.socket(fileno=sock)
    try:
        socket.send_fds(s, [kind], [pidfd])
    except OSError as e:
        raise PyrtError(f"send a pidfd to the pidfd socket: {os.strerror(e.errno).lower()}") from None
    finally:
        s.detach()


def write_pid_file(path: str, pid: int, state_dir_fd: int = -1) -> None:
    """runc writes the bare digits, atomically (conmon and the shims read it). `create`
    journals the temporary file first (a kill could leave it beside the pid file)."""
    from pyrt import jsonio

    path = os.path.abspath(path)
    if state_dir_fd >= 0:
        journal.record(state_dir_fd, "file", path=jsonio.temp_name(path))
    try:
        jsonio.write_atomic(path, str(pid).encode(), 0o644)
    except OSError as e:
        raise PyrtError(f"write pid file {path}: {os.strerror(e.errno).lower()}") from None


# ----------------------------------------------------------------------------- exec


def exec_process(c: state.Container, proc, preserve_fds: int, console_socket: str | None, console_fd: int,
                 trace=None, cgroup_subs: dict[str, str] | None = None, pidfd_socket: str | None = None) -> Init:
    """Start pyrt-init in the container's cgroup on the exec plan; return once the process has
    exec'd (the Init, our child: with a pid namespace, the intermediate reported its pid). The
    container's lock `c` holds is released once pyrt-init is in the cgroup. `trace`: --trace's
    trace.Tracer, or None; `cgroup_subs`: exec --cgroup's sub-cgroups; the process's pidfd is
    sent to `pidfd_socket` if given."""
    from pyrt import planner
    from pyrt.cgroups import Cgroup
    from pyrt.host import HostLayout

    record, slots = c.record, Slots(3 + preserve_fds)
    init, pidfd_sock = None, -1
    try:
        if pidfd_socket:
            pidfd_sock = connect(pidfd_socket, "pidfd socket")
        try:
            slots.add("pidfd", os.pidfd_open(record.pid))
        except ProcessLookupError:
            raise PyrtError("cannot exec in a stopped container") from None
        if not c.init_alive():  # the pid was recycled since status()
            raise PyrtError("cannot exec in a stopped container")
        if console_socket:
            slots.add("console", connect(console_socket))
        elif console_fd >= 0:
            slots.lend("console", console_fd)
        seccomp = listener = None
        if record.seccomp_flags is not None:
            from pyrt import seccomp as seccomp_mod

            fd = seccomp_mod.for_exec(c.dir_fd)
            if fd is not None:
                seccomp = slots.add("seccomp", fd)
            if record.seccomp_flags & seccomp_mod.NEW_LISTENER:
                listener = seccomp_mod.listener_of(c.dir_fd)
        if record.cgroup.get("none"):  # rootless, without one
            from pyrt.rootless import from_state

            cg = from_state(record.cgroup)
        else:
            cg = Cgroup.from_state(record.cgroup)
        if cg.bases() and not os.path.isdir(cg.dir):
            raise PyrtError("cannot exec in a stopped container (its cgroup is gone)")
        target = cg
        if cgroup_subs:  # exec --cgroup: existing cgroups below the container's
            from pyrt.subcgroup import SubCgroup

            if record.cgroup.get("none"):
                raise PyrtError("--cgroup: the container has no cgroup")
            target = SubCgroup(cg, cgroup_subs)
        for slot, fd in target.open_v1_tasks().items():  # pyrt-init joins them itself
            slots.add(slot, fd)
        plan_opts = planner.Options(c.id, preserve_fds, no_new_keyring=record.no_new_keyring,
                                    trace=log.debugging() or trace is not None,
                                    seccomp=record.seccomp_flags if seccomp is not None else None,
                                    console="console" in slots.fds)
        plan = planner.for_exec(proc, HostLayout(cg.root, cg.v1), record.namespaces, plan_opts, record.personality,
                                record.memory_policy)
        if listener:  # the state now, while `c` is held
            from pyrt import hooks

            r = c.record
            st = hooks.state(r.id, c.status().name, r.pid, r.bundle, r.annotations)
        if trace is None:
            init = start(plan, slots, 0, target)
        else:
            init = trace.run("spawn", "clone pyrt-init into the container's cgroup, send it the plan and \"go\"",
                             start, plan, slots, 0, target)
            trace.attach(init)
        if listener:
            init.on_listener = lambda fd: seccomp_mod.send_listener(*listener, fd, init.pid, st)
        # the process is in the container's cgroup: from here a delete takes it along with the
        # rest, and pause/resume must not wait for it (a paused container's exec waits for resume)
        c.close()
        if trace is None:
            init.wait(b"")  # end-of-file: the execve happened (an error raises)
        else:
            trace.run("exec", "wait until pyrt-init has joined the container and exec'd (its socket closes)",
                      init.wait, b"")
        if pidfd_sock >= 0:
            send_pidfd(pidfd_sock, init.pidfd, b"setns")
        return init
    except BaseException:
        slots.close()
        if init is not None:
            init.kill()
        raise
    finally:
        if pidfd_sock >= 0:
            os.close(pidfd_sock)
