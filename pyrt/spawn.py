"""Starting pyrt-init and talking to it: the parent's half of the protocol in native/init.c."""

from __future__ import annotations

import fcntl
import os

from pyrt import log, protocol
from pyrt.errors import PyrtError
from pyrt.steps import Plan, encode

INIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pyrt-init")
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


def _sealed_copy(path: str, name: str) -> int:
    """An in-memory, sealed copy of an executable: what the container could reach through
    /proc/<pid>/exe can never be written back to the host's file (CVE-2019-5736)."""
    try:
        src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            mfd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
            try:
                size, offset = os.fstat(src).st_size, 0
                while offset < size:
                    sent = os.sendfile(mfd, src, offset, size - offset)
                    if not sent:
                        raise PyrtError(f"{path}: shorter than its size (changed while being copied)")
                    offset += sent
                fcntl.fcntl(mfd, fcntl.F_ADD_SEALS, _SEALS)
            except BaseException:
                os.close(mfd)
                raise
        finally:
            os.close(src)
    except OSError as e:
        raise PyrtError(f"copy {path} into memory: {os.strerror(e.errno).lower()}") from None
    return mfd


def above(fd: int, floor: int) -> int:
    """Move an internal fd to `floor` or higher, out of the range passed to the container."""
    if fd >= floor:
        return fd
    try:
        new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)
    except OSError as e:
        os.close(fd)
        raise PyrtError(f"move an fd of pyrt's above {floor - 1}: {os.strerror(e.errno).lower()}") from None
    os.close(fd)
    return new


class Init:
    """A pyrt-init process executing a plan, and its end of the sync socket."""

    def __init__(self, pid: int, pidfd: int, sock: int, plan: Plan) -> None:
        self.pid, self.pidfd, self.sock, self.steps = pid, pidfd, sock, plan.child
        self.reap: list[int] = []  # processes that are ours to wait for (a fork's intermediate)
        self.tracer = None  # --trace's trace.Tracer: told of each message
        #: called with the seccomp listener fd pyrt-init sends (protocol.SECCOMP); closed after it
        self.on_listener = None

    @classmethod
    def spawn(cls, plan: Plan, fds: dict[str, int], clone_flags: int, cgroup_fd: int, floor: int = 3,
              cgroup_dir: str = "") -> Init:
        """Clone the child with `clone_flags` (into the cgroup behind `cgroup_fd`, the directory
        `cgroup_dir`) and make it execute pyrt-init on `plan`, its fd slots resolved by `fds`;
        of pyrt's fds it gets only those. It waits for go() before reading the plan."""
        try:
            from pyrt._native import ffi, lib
        except ImportError as e:  # dlopen failed: out of fds, or a broken installation
            raise PyrtError(f"load pyrt's native module: {e}") from None

        data = encode(plan.child, fds)
        keep_fds = [fds[name] for name in plan.slots()]
        pair = ffi.new("int[2]")
        rc = lib.pyrt_socketpair(pair)
        if rc < 0:
            raise PyrtError(f"socketpair: {os.strerror(-rc).lower()}")
        ours, theirs = above(pair[0], floor), above(pair[1], floor)
        plan_fd = exe = -1
        try:
            try:
                plan_fd = above(os.memfd_create("pyrt-plan", os.MFD_CLOEXEC), floor)
                os.write(plan_fd, data)
            except OSError as e:
                raise PyrtError(f"write the plan for pyrt-init: {os.strerror(e.errno).lower()}") from None
            exe = above(_sealed_copy(INIT, "pyrt-init"), floor)
            pidfd = ffi.new("int *", -1)
            keep = ffi.new("int[]", keep_fds) if keep_fds else ffi.NULL
            pid = lib.pyrt_spawn(clone_flags, cgroup_fd, exe, theirs, plan_fd, keep, len(keep_fds), pidfd)
            if pid > 0 and cgroup_fd >= 0 and _killed_at_birth(pid):
                # Linux (6.x) kills a child cloned into a cgroup whose cgroup.kill count differs
                # from the parent's own cgroup's (one that had cgroup.kill written): clone into
                # ours instead and move it, before it does anything (it waits for "go")
                os.close(pidfd[0])
                os.waitpid(pid, 0)
                pid = lib.pyrt_spawn(clone_flags, -1, exe, theirs, plan_fd, keep, len(keep_fds), pidfd)
                if pid > 0:
                    _move(pid, pidfd[0], cgroup_dir)
        except BaseException:
            os.close(ours)
            raise
        finally:
            for fd in (theirs, plan_fd, exe):
                if fd >= 0:
                    os.close(fd)
        if pid < 0:
            os.close(ours)
            raise PyrtError(f"clone3: {os.strerror(-pid).lower()}")
        return cls(pid, pidfd[0], ours, plan)

    def go(self) -> None:
        try:
            os.write(self.sock, protocol.GO)
        except OSError:  # it is gone already
            raise PyrtError(f"unable to start container process: {self._gone()}") from None

    def _messages(self):
        """Each message's fields, and the fds that came with it (only read when one is expected)."""
        while True:
            try:
                data, fds = self._read()
            except InterruptedError:
                continue
            except ConnectionResetError:  # it died before reading what we sent
                return
            if not data:
                return
            yield data.split(b"\0"), fds

    def _read(self) -> tuple[bytes, list[int]]:
        if self.on_listener is None:
            return os.read(self.sock, 16384), []  # an fd sent along is closed by the kernel
        import socket

        s = socket.socket(fileno=self.sock)
        try:
            data, fds, _, _ = socket.recv_fds(s, 16384, 1, socket.MSG_CMSG_CLOEXEC)
        finally:
            s.detach()
        return data, fds

    def _gone(self) -> str:
        """How the init ended (it closed its end of the socket without a word), for the error."""
        import select

        select.select([self.pidfd], [], [], 2)
        try:
            info = os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except OSError:  # not our child (exec's, after its fork)
            info = None
        if info is None:
            return "container init exited unexpectedly"
        if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED):
            return f"container init was killed by signal {info.si_status}"
        return f"container init exited unexpectedly with status {info.si_status}"

    def _error(self, fields: list[bytes]) -> PyrtError:
        index, err, detail = int(fields[1]), int(fields[2]), fields[3].decode(errors="replace")
        if not detail:
            detail = self.steps[index].describe() if 0 <= index < len(self.steps) else "start pyrt-init"
        reason = os.strerror(err) if err else ""
        msg = f"{detail}: {reason[:1].lower()}{reason[1:]}" if reason else detail
        return PyrtError(f"unable to start container process: {msg}")

    def wait(self, until: bytes) -> None:
        """Follow the init until it sends `until` (protocol.READY), or until the socket closes
        (until=b"": its execve succeeded). Steps are logged with --debug; errors raise."""
        for fields, fds in self._messages():
            kind = fields[0]
            if fds:
                try:
                    if kind != protocol.SECCOMP:
                        raise PyrtError(f"unable to start container process: an fd came with {kind!r}")
                    self.on_listener(fds[0])
                finally:
                    for fd in fds:
                        os.close(fd)
            elif kind == protocol.SECCOMP:
                raise PyrtError("unable to start container process: the seccomp listener fd did not arrive")
            elif kind == protocol.STEP:
                index = int(fields[1])
                if self.tracer:
                    self.tracer.child_step(index, int(fields[2]))
                log.debug(f"init step {index}: {self.steps[index].describe()}")
            elif kind == protocol.PID:
                self.reap.append(self.pid)
                self.pid = int(fields[1])
                self.pidfd = _pidfd_reopen(self.pidfd, self.pid)
            elif kind == protocol.ERROR:
                error = self._error(fields)
                if self.tracer:
                    self.tracer.child_end(int(fields[1]), str(error))
                raise error
            elif kind == until:
                if self.tracer and until == protocol.READY:
                    self.tracer.child_ready()
                return
        if self.tracer:
            self.tracer.child_end()
        if until:
            raise PyrtError(f"unable to start container process: {self._gone()}")

    def close(self) -> None:
        if self.sock >= 0:
            os.close(self.sock)
            self.sock = -1
        for pid in self.reap:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.reap = []

    def kill(self) -> None:
        """Kill a half-made init and wait for it (it is our child)."""
        import signal

        try:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.reap.append(self.pid)
        self.close()


def _killed_at_birth(pid: int) -> bool:
    """Whether the kernel killed a child within clone3 itself: a SIGKILL pending for the whole
    process (ShdPnd: it stays there, from birth to zombie) before it ran at all."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"ShdPnd:"):
                    return bool(int(line.split()[1], 16) & (1 << 8))
    except OSError:
        pass
    return False


def _move(pid: int, pidfd: int, cgroup_dir: str) -> None:
    """Move a child (still waiting for "go") into its cgroup2 directory; killed on failure."""
    import _signal as signal

    try:
        fd = os.open(os.path.join(cgroup_dir, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, str(pid).encode())
        finally:
            os.close(fd)
    except OSError as e:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        os.close(pidfd)
        os.waitpid(pid, 0)
        raise PyrtError(f"move pyrt-init into {cgroup_dir}: {os.strerror(e.errno).lower()}") from None


def _pidfd_reopen(old: int, pid: int) -> int:
    os.close(old)
    return os.pidfd_open(pid)
