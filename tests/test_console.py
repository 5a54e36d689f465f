"""The container's terminal: runc's --console-socket protocol with a test receiver (what conmon
and the containerd shim do), and `run` in the foreground under a pty of ours: an interactive
shell, as `runc spec && runc run x` gives one."""

from __future__ import annotations

import array
import fcntl
import os
import pty
import shutil
import signal
import socket
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest
from conftest import BUSYBOX_ROOTFS, read_until


class Receiver:
    """The engine's end of --console-socket: one connection, one pty master with its name."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.bind(self.path)
        self.sock.listen(1)

    def receive(self, timeout: float = 15) -> tuple[int, str, int]:
        """(master fd, payload, number of fds in the message)."""
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        with conn:
            fds = array.array("i")
            msg, anc, _, _ = conn.recvmsg(1024, socket.CMSG_SPACE(4 * fds.itemsize), socket.MSG_CMSG_CLOEXEC)
            for level, kind, data in anc:
                if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
                    fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        for extra in fds[1:]:
            os.close(extra)
        assert fds, "no fd received"
        return fds[0], msg.decode(), len(fds)

    def close(self) -> None:
        self.sock.close()


def create_with_console(rt, bundle, tmp_path) -> tuple[str, int, str]:
    receiver = Receiver(tmp_path / "console.sock")
    try:
        cid = rt.create(bundle, None, "--console-socket", receiver.path)
        master, name, count = receiver.receive()
    finally:
        receiver.close()
    assert count == 1
    return cid, master, name


def test_console_socket_sends_a_working_pty_master(rt, bundle, tmp_path):
    bundle.process["terminal"] = True
    bundle.args("sh", "-c", "tty; ls /proc/self/fd; echo listed; read line; echo got:$line; "
                            "stat -c %t /dev/console; exit 4")
    cid, master, name = create_with_console(rt, bundle, tmp_path)
    try:
        st = os.fstat(master)
        assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (5, 2)  # a ptmx: the master side
        assert name.startswith("/dev/")
        assert rt.state(cid)["status"] == "created"
        rt.ok("start", cid)
        out = read_until(master, "listed")
        assert "/dev/pts/0" in out  # stdio is the container's own terminal
        assert out.split("/dev/pts/0")[1].split() == ["0", "1", "2", "3", "listed"]  # ls's own fd 3, no master
        os.write(master, b"hello\n")
        out = read_until(master, "88\r\n")
        assert "hello\r\ngot:hello\r\n" in out  # the container's line discipline echoes and maps NL
        assert out.endswith("got:hello\r\n88\r\n")  # /dev/console is a pts (136 = 0x88)
        rt.wait_status(cid, "stopped")
    finally:
        os.close(master)
    rt.ok("delete", cid)


def test_console_socket_without_terminal_is_refused(rt, bundle, tmp_path):
    receiver = Receiver(tmp_path / "console.sock")
    try:
        bundle.args("true").write()
        r = rt("create", "--bundle", str(bundle.path), "--console-socket", receiver.path, rt.new_id())
    finally:
        receiver.close()
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "console socket" in r.stderr.replace("-", " ")


def test_console_socket_that_is_not_a_socket(rt, bundle, tmp_path):
    bundle.process["terminal"] = True
    bundle.args("true").write()
    (tmp_path / "plain").write_text("")
    r = rt("create", "--bundle", str(bundle.path), "--console-socket", str(tmp_path / "plain"), rt.new_id())
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


# ----------------------------------------------------------------------------- run under our pty


class Terminal:
    """The runtime started on a pty of ours, in its own session, as from a terminal emulator."""

    def __init__(self, argv: list[str], cwd: str | None = None, rows: int = 30, cols: int = 100) -> None:
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.before = termios.tcgetattr(self.slave)
        self.proc = subprocess.Popen(argv, stdin=self.slave, stdout=self.slave, stderr=self.slave, cwd=cwd,
                                     start_new_session=True, preexec_fn=self._ctty)
        self.out = ""

    def _ctty(self) -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, text: str) -> str:
        self.out = read_until(self.master, text)
        return self.out

    def finish(self) -> int:
        try:
            code = self.proc.wait(timeout=20)
            assert termios.tcgetattr(self.slave) == self.before, "the terminal's mode was not restored"
            return code
        finally:
            os.close(self.master)
            os.close(self.slave)


def test_run_gives_an_interactive_shell(rt, bundle):
    bundle.process["terminal"] = True
    bundle.process["env"].append("PS1=pyrt$ ")
    bundle.args("sh").write()
    t = Terminal(rt.cmd("run", "--bundle", str(bundle.path), rt.new_id()))
    try:
        t.expect("pyrt$ ")
        t.type("echo $((6 * 7)); tty; stty size\n")
        out = t.expect("30 100")
        assert "42" in out and "/dev/pts/0" in out
        t.type("sleep 100\n")
        time.sleep(0.5)
        t.type("\x03")  # ^C goes to the container's foreground job, not to the runtime
        t.expect("pyrt$ ")
        t.type("echo alive:$?\n")
        assert "alive:130" in t.expect("alive:1")
        t.type("exit 3\n")
    finally:
        code = t.finish()
    assert code == 3


def test_run_shell_ends_on_eof(rt, bundle):
    bundle.process["terminal"] = True
    bundle.process["env"].append("PS1=pyrt$ ")
    bundle.args("sh").write()
    t = Terminal(rt.cmd("run", "--bundle", str(bundle.path), rt.new_id()))
    try:
        t.expect("pyrt$ ")
        t.type("\x04")  # ^D at an empty prompt
    finally:
        code = t.finish()
    assert code == 0


def test_spec_then_run_is_an_interactive_shell(rt, tmp_path):
    """`pyrt spec && pyrt run x` in a bundle dir holding rootfs/: a shell on our terminal."""
    bundle = tmp_path / "spec-bundle"
    bundle.mkdir()
    shutil.copytree(BUSYBOX_ROOTFS, bundle / "rootfs", symlinks=True)  # runc refuses a symlinked rootfs
    rt.ok("spec", cwd=str(bundle))
    cid = rt.new_id()
    t = Terminal(rt.cmd("run", cid), cwd=str(bundle))
    try:
        t.expect("# ")
        t.type("echo in:$(hostname):$(id -u)\n")
        t.expect("in:")
        t.expect(":0")
        t.type("exit\n")
    finally:
        code = t.finish()
    assert code == 0
    assert rt("state", cid).returncode == 1  # run deleted it


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_run_with_terminal_forwards_signals(rt, bundle, sig):
    bundle.process["terminal"] = True
    bundle.args("sh", "-c", f"trap 'echo caught; exit 9' {sig.name[3:]}; echo ready; "
                            "while :; do sleep 0.1; done").write()
    t = Terminal(rt.cmd("run", "--bundle", str(bundle.path), rt.new_id()))
    try:
        t.expect("ready")
        t.proc.send_signal(sig)
        t.expect("caught")
    finally:
        code = t.finish()
    assert code == 9


def test_container_user_owns_its_terminal(rt, bundle, tmp_path):
    """As runc: a non-root user can reopen its terminal (/dev/stdout, /dev/console)."""
    bundle.process["terminal"] = True
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.args("sh", "-c", "echo via-stdout > /dev/stdout && stat -c owner:%u /dev/console")
    cid, master, _ = create_with_console(rt, bundle, tmp_path)
    try:
        rt.ok("start", cid)
        rt.wait_status(cid, "stopped")
        out = read_until(master, "owner:")
        assert "via-stdout" in out and out.split("owner:")[1].split()[0] == "1000", out
    finally:
        os.close(master)
    rt.ok("delete", cid)


def test_host_terminal_as_stdio_keeps_its_owner(rt, bundle):
    """A container without a terminal of its own, run from ours: our pty is the host's and is
    never chowned to the container's user (runc chowns it)."""
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.args("sh", "-c", "echo done").write()
    t = Terminal(rt.cmd("run", "--bundle", str(bundle.path), rt.new_id()))
    try:
        t.expect("done")
        assert t.proc.wait(timeout=20) == 0
        assert os.fstat(t.slave).st_uid == 0
    finally:
        t.finish()
