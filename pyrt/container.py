"""The parent side of a container's life: create, start, kill, delete (and run = all of them).

    create  config.json -> spec -> cgroup -> plan -> clone3 + pyrt-init -> "ready" -> state.json
    start   write a byte into the exec fifo: init goes on to execve
    kill    pidfd_send_signal to the init (or every process of its cgroup)
    delete  kill what is left, remove the cgroup and the state directory
"""

from __future__ import annotations

import _signal as signal  # the C module: `signal` only adds enums, ~5 ms of imports
import os

from pyrt import log, state
from pyrt.errors import PyrtError
from pyrt.state import Container

TYPE_CHECKING = False  # `typing` is an import the start path does without
if TYPE_CHECKING:
    from pyrt.spec import Spec

class CreateOptions:
    def __init__(self, bundle: str, pid_file: str | None = None, console_socket: str | None = None,
                 preserve_fds: int = 0, no_pivot: bool = False, no_new_keyring: bool = False) -> None:
        self.bundle, self.pid_file, self.console_socket = bundle, pid_file, console_socket
        self.preserve_fds, self.no_pivot, self.no_new_keyring = preserve_fds, no_pivot, no_new_keyring


def create(root: str, container_id: str, opts: CreateOptions, spec: Spec, console_fd: int = -1):
    """Set the container up and leave its init parked on the exec fifo. Returns the Init (our
    child) so `run` can go on. What it makes on the host is journaled before it is made (see
    journal.py): on any failure, as after a kill, undoing the journal leaves nothing behind.
    `console_fd` is a console socket `run` made itself; otherwise --console-socket is
    connected here."""
    from pyrt import cgroups, hooks, journal, namespaces, netspec, planner, protocol
    from pyrt import exec as exec_
    from pyrt.host import probe
    from pyrt.spawn import Init, above

    namespaces.check(spec)
    if opts.console_socket and not (spec.process and spec.process.terminal):
        raise PyrtError("--console-socket: process.terminal is false, there is no terminal to send (as runc)")
    net = netspec.from_spec(spec)  # pyrt's own networking: None unless the container asks for it
    host = probe()
    c = Container.new(root, container_id)
    floor = 3 + opts.preserve_fds
    init = None
    fds: dict[str, int] = {}  # the plan's fd slots, opened here
    try:
        bpf = None  # (program fd, seccomp flags): pyrt.seccomp and libseccomp load only for a profile
        if spec.seccomp is not None:
            from pyrt import seccomp

            bpf = seccomp.setup(spec.seccomp, c.dir_fd, floor)
            if bpf:
                fds["seccomp"] = bpf[0]
        own_pidns = "pid" in spec.namespaces and spec.namespaces["pid"] is None
        cg = cgroups.Cgroup.for_spec(spec.cgroups_path, container_id, root, own_pidns, host)
        cg.create(spec.resources, spec.devices, c.dir_fd)
        try:
            os.mkfifo(c.fifo, 0o600)
            fds["fifo"] = above(os.open(c.fifo, os.O_RDWR | os.O_CLOEXEC), floor)
        except OSError as e:
            raise PyrtError(f"create {c.fifo}: {os.strerror(e.errno).lower()}") from None
        fds.update((slot, above(fd, floor)) for slot, fd in namespaces.open_joined(spec).items())
        if spec.namespaces.get("user"):
            from pyrt import userns

            userns.check_joined(spec, fds[namespaces.slot("user")])
        terminal = spec.process is not None and spec.process.terminal
        if terminal and console_fd < 0 and opts.console_socket:
            fds["console"] = above(_connect(opts.console_socket), floor)
        elif terminal and console_fd >= 0:
            fds["console"] = console_fd  # `run`'s own, closed by `run`
        fds.update((slot, above(fd, floor)) for slot, fd in cg.open_v1_tasks().items())  # pyrt-init joins them
        if any(m.uid_mappings or "idmap" in m.options or "ridmap" in m.options for m in spec.mounts):
            from pyrt import userns

            fds.update((slot, above(fd, floor)) for slot, fd in userns.idmapped_trees(spec).items())
        plan_opts = planner.Options(container_id, opts.preserve_fds, opts.no_pivot, opts.no_new_keyring,
                                    trace=log.debugging(), seccomp=bpf[1] if bpf else None,
                                    console="console" in fds, root=root)
        plan = planner.for_create(spec, host, plan_opts)
        cgroup_fd = cg.open_dir()
        try:
            init = Init.spawn(plan, fds, namespaces.clone_flags(spec), cgroup_fd, floor, cg.dir)
        finally:
            os.close(cgroup_fd)
        # journaled before "go": killed before this line, the init reads end-of-file and exits
        journal.record(c.dir_fd, "process", pid=init.pid, start=state.proc_start_time(init.pid))
        if spec.namespaces.get("user", "") is None:  # a new one: its ids, before the child goes on
            from pyrt import userns

            userns.write_maps(init.pid, init.sock, spec.uid_mappings, spec.gid_mappings)
        if net:  # the new network namespace exists since clone3: held, even if pyrt-init fails
            netns = os.open(f"/proc/{init.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        _close_ours(fds, console_fd)
        init.go()
        if net:  # set up while pyrt-init works on its plan
            from pyrt import network

            spec.annotations.update(network.setup(root, container_id, netns, net))
        hooks.at_sync(spec, container_id, init)
        init.wait(protocol.READY)
        c.record = {
            "ociVersion": spec.oci_version, "id": container_id, "pid": init.pid, "bundle": spec.bundle,
            "rootfs": spec.root, "created": log.rfc3339(nanos=True), "owner": "",
            "annotations": spec.annotations, "init_start": state.proc_start_time(init.pid),
            "cgroup": cg.to_state(), "hooks": hooks.to_record(spec.hooks),
            "exec": exec_.defaults(spec, opts.no_new_keyring),
        }
        if bpf:
            c.record["seccomp_flags"] = bpf[1]  # for exec, with <state dir>/seccomp.bpf
        c.save()
        if opts.pid_file:
            _write_pid_file(opts.pid_file, init.pid, c.dir_fd)
        return init
    except BaseException:
        _close_ours(fds, console_fd)
        if init is not None:
            init.kill()
        if net:
            from pyrt import network

            network.release(root, container_id)
        try:
            journal.undo(c.dir_fd)
            undone = True
        except PyrtError:
            undone = False  # what could not be undone stays journaled: `delete --force` tries again
        if init is not None:
            st = hooks.state(spec.oci_version, container_id, "stopped", 0, spec.bundle, spec.annotations)
            hooks.run("poststop", spec.hooks.get("poststop", []), st, must_succeed=False)
        if undone:
            c.remove()
        raise
    finally:
        c.close()


def _close_ours(fds: dict[str, int], keep: int) -> None:
    """Close the fds create opened for the plan (not `keep`, `run`'s console socket); empty `fds`."""
    for fd in fds.values():
        if fd != keep:
            os.close(fd)
    fds.clear()


def _connect(path: str) -> int:
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise PyrtError(f"connect to console socket {path}: {os.strerror(e.errno).lower()}") from None
    return s.detach()


def _write_pid_file(path: str, pid: int, state_dir_fd: int = -1) -> None:
    """runc writes the bare digits, atomically (conmon and the shims read it). `create`
    journals the temporary file first (a kill could leave it beside the pid file)."""
    from pyrt import jsonio

    path = os.path.abspath(path)
    if state_dir_fd >= 0:
        from pyrt import journal

        journal.record(state_dir_fd, "file", path=jsonio.temp_name(path))
    try:
        jsonio.write_atomic(path, str(pid).encode(), 0o644)
    except OSError as e:
        raise PyrtError(f"write pid file {path}: {os.strerror(e.errno).lower()}") from None


def start(root: str, container_id: str, init=None) -> None:
    """Let the init go on to execve; `run` passes its Init (it still holds the sync socket)."""
    from pyrt import hooks, protocol

    c = Container.load(root, container_id)
    try:
        status = c.status()
        if status == "stopped":
            raise PyrtError("cannot start a container that has stopped")
        if status != "created":
            raise PyrtError("cannot start an already running container")
        try:
            fd = os.open(c.fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            raise PyrtError("cannot start a container that has stopped") from None  # init gone
        watch = hooks.watch_start(c)  # opened before the byte goes in (see hooks.after_start)
        try:
            os.write(fd, protocol.FIFO_START)
        except OSError:  # EPIPE: the init went between the open and the write
            raise PyrtError("cannot start a container that has stopped") from None
        finally:
            os.close(fd)
        os.unlink(c.fifo)
        hooks.after_start(c, watch, init)
    finally:
        c.close()


SIGNALS = {name: int(getattr(signal, name)) for name in dir(signal)
           if name.startswith("SIG") and not name.startswith("SIG_") and isinstance(getattr(signal, name), int)}


def parse_signal(text: str) -> int:
    """A signal by name (KILL, SIGKILL) or number, as runc's kill accepts it."""
    if text.isdigit():
        sig = int(text)
        if 0 < sig < signal.NSIG:
            return sig
    else:
        name = text.upper()
        sig = SIGNALS.get(name if name.startswith("SIG") else "SIG" + name)
        if sig is not None:
            return sig
    raise PyrtError(f"unknown signal {text!r}")


def kill(root: str, container_id: str, sig: int, all_processes: bool = False) -> None:
    c = Container.load(root, container_id)
    try:
        if all_processes:  # as runc 1.1: also once the init is gone (what it left in the cgroup)
            c.cgroup().kill(sig)
            return
        if c.status() == "stopped":
            raise PyrtError("container not running")
        try:
            pidfd = os.pidfd_open(c.record["pid"])
        except ProcessLookupError:
            raise PyrtError("container not running") from None
        try:
            if not c.init_alive():  # the pid was recycled between status() and pidfd_open
                raise PyrtError("container not running")
            signal.pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            raise PyrtError("container not running") from None
        finally:
            os.close(pidfd)
    finally:
        c.close()


def delete(root: str, container_id: str, force: bool = False) -> None:
    from pyrt import hooks, journal, netspec

    try:
        c = Container.load(root, container_id)
    except PyrtError as e:
        if force and str(e) == "container does not exist":
            _delete_killed_create(root, container_id)
            return
        raise
    try:
        status = c.status()
        if status in ("running", "paused") and not force:
            raise PyrtError(f"cannot delete container {container_id} that is not stopped: {status}")
        if status != "stopped":
            _kill_and_wait(c)
        journal.undo(c.dir_fd)  # its cgroup (and whatever else create made)
        if netspec.wanted(c.record.get("annotations", {})):  # once nothing is left in its namespace
            from pyrt import network

            network.release(root, container_id)
        hooks.poststop(c.record)
        c.remove()
    finally:
        c.close()


def _delete_killed_create(root: str, container_id: str) -> None:
    """`delete --force` of a directory without state.json: a create that was killed (one in
    progress holds the lock). Undo what its journal says it was making (its init, its cgroup,
    ...), its network (the IPAM's record), then the directory."""
    import fcntl

    from pyrt import journal

    try:
        fd = os.open(os.path.join(root, container_id), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return  # no such container: nothing to do, as runc
    c = Container(root, container_id, fd, {})
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink == 0 or "state.json" in os.listdir(fd):
            return  # deleted meanwhile, or created after all
        journal.undo(fd)
        from pyrt import network

        network.release(root, container_id)
        c.remove()
    finally:
        c.close()


def _kill_and_wait(c: Container) -> None:
    """SIGKILL the init and the container's other processes, and wait until the init has exited."""
    import select

    try:
        pidfd = os.pidfd_open(c.record["pid"])
    except ProcessLookupError:
        return
    try:
        if c.init_alive():
            cg = c.cgroup()
            if cg.frozen():
                cg.kill(signal.SIGKILL)
                cg.freeze(False)
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            cg.kill(signal.SIGKILL)
            select.select([pidfd], [], [], 10)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)


def run(root: str, container_id: str, opts: CreateOptions, spec: Spec, detach: bool = False) -> int:
    """create + start, then (in the foreground) wait, forwarding signals, and delete.
    Returns the container's exit status (128+N if killed by signal N)."""
    relay = forward = None
    if not detach:
        import _prctl  # python-prctl's C module (its wrapper costs 2-3 ms to import)

        _prctl.prctl(_prctl.PR_SET_CHILD_SUBREAPER, 1)  # processes the container leaves come to us
        if not opts.console_socket and spec.process and spec.process.terminal:
            from pyrt.terminal import Relay

            relay = Relay(3 + opts.preserve_fds)
        forward = _Forwarder()
    try:
        init = create(root, container_id, opts, spec, console_fd=relay.child_fd if relay else -1)
    except BaseException:
        if relay:
            relay.close()
        if forward:
            forward.restore()
        raise
    try:
        if relay:
            relay.receive()
        start(root, container_id, init)
        if detach:
            init.close()
            return 0
        forward.pidfd = init.pidfd
        init.wait(b"")  # the execve happened (or failed: raises)
        init.close()
        status = forward.wait_exit(init.pid, relay)
    except BaseException:
        if not detach:
            delete(root, container_id, force=True)
        raise
    finally:
        if relay:
            relay.close()
        if forward:
            forward.restore()
    delete(root, container_id, force=True)
    return status


class _Forwarder:
    """Signals sent to `pyrt run` go to the container's init, as with runc."""

    FORWARD = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
               signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT, signal.SIGALRM)

    def __init__(self) -> None:
        self.pidfd = -1
        self.pending: list[int] = []
        self.rfd, self.wfd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.old_wakeup = signal.set_wakeup_fd(self.wfd, warn_on_full_buffer=False)
        self.old = {s: signal.signal(s, self._on) for s in (*self.FORWARD, signal.SIGCHLD)}

    def _on(self, sig: int, frame: object) -> None:
        if sig != signal.SIGCHLD:
            self.pending.append(sig)

    def flush(self, relay=None) -> None:
        while self.pending:
            sig = self.pending.pop(0)
            if sig == signal.SIGWINCH and relay:
                relay.resize()
            elif self.pidfd >= 0:
                try:
                    signal.pidfd_send_signal(self.pidfd, sig)
                except ProcessLookupError:
                    pass

    def wait_exit(self, pid: int, relay=None) -> int:
        import select

        while True:
            self.flush(relay)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                while True:  # reap what our init left us (we are a subreaper), then report
                    try:
                        if os.waitpid(-1, os.WNOHANG)[0] == 0:
                            break
                    except ChildProcessError:
                        break
                if relay:
                    relay.drain()
                code = os.waitstatus_to_exitcode(status)
                return 128 - code if code < 0 else code
            fds = [self.rfd] + (relay.fds() if relay else [])
            try:
                ready, _, _ = select.select(fds, [], [])
            except InterruptedError:
                continue
            if self.rfd in ready:
                try:
                    os.read(self.rfd, 512)
                except BlockingIOError:
                    pass
            if relay:
                relay.pump(ready)

    def restore(self) -> None:
        for s, handler in self.old.items():
            signal.signal(s, handler)
        signal.set_wakeup_fd(self.old_wakeup)
        os.close(self.rfd)
        os.close(self.wfd)


def pause(root: str, container_id: str, frozen: bool) -> None:
    """pause/resume: freeze or thaw the container's cgroup (a joined one only while it holds
    the container's processes alone)."""
    c = Container.load(root, container_id)
    try:
        status = c.status()
        if frozen and status != "running":
            raise PyrtError("container not running" if status != "paused" else "container already paused")
        if not frozen and status != "paused":
            raise PyrtError("container not paused")
        c.cgroup().freeze(frozen)
    finally:
        c.close()


def ps(root: str, container_id: str, fmt: str, ps_args: list[str]) -> int:
    """runc's ps: JSON, an array of host pids; table, the host's `ps` (-ef) filtered to them."""
    import subprocess
    import sys

    from pyrt import jsonio

    c = Container.load(root, container_id, lock=False)
    try:
        pids = c.cgroup().processes()  # none once stopped (or what the init left), not an error: as runc
    finally:
        c.close()
    if fmt == "json":
        sys.stdout.write(jsonio.dumps(pids) + "\n")
        return 0
    if fmt != "table":
        raise PyrtError(f'invalid format option "{fmt}": use table or json')
    try:
        out = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise PyrtError(f"ps: {e}") from None
    lines = out.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        raise PyrtError("ps: the output has no PID column")
    col = header.index("PID")
    wanted = set(pids)
    sys.stdout.write(lines[0] + "\n")
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            sys.stdout.write(line + "\n")
    return 0
