"""Terminals: `exec -t` and `run` relaying our pty (window-size changes forwarded), and runc's
console-socket protocol for `create` and `exec` (what conmon and the containerd shim use)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import socket
import struct
import subprocess
import termios
import time

from conftest import read_until, reap


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Terminal:
    """The runtime under a pty of ours, as a user at a terminal runs it."""

    def __init__(self, argv: list[str], rows: int = 33, cols: int = 77) -> None:
        self.master, slave = pty.openpty()
        set_size(slave, rows, cols)
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        self.slave = slave

    def resize(self, rows: int, cols: int) -> None:
        """What a terminal emulator does: new size, SIGWINCH to the program."""
        set_size(self.slave, rows, cols)
        self.proc.send_signal(signal.SIGWINCH)

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=20)
        finally:
            os.close(self.master)
            os.close(self.slave)


# A loop printing the terminal's size until a line comes in; then exit 3.
SIZE_LOOP = "tty; while :; do stty size; if read -t 1 x; then exit 3; fi; done"


def test_exec_tty_relays_and_forwards_window_size(rt, bundle):
    bundle.args("sleep", "1000")
    cid = rt.create(bundle)
    rt.ok("start", cid)
    t = Terminal(rt.cmd("exec", "-t", cid, "sh", "-c", SIZE_LOOP))
    try:
        out = read_until(t.master, "33 77")
        assert "/dev/pts/" in out  # a terminal of the container's own devpts
        t.resize(40, 100)
        read_until(t.master, "40 100")
        os.write(t.master, b"q\n")
    finally:
        assert t.close() == 3


def test_run_tty_relays_and_forwards_window_size(rt, bundle):
    bundle.process["terminal"] = True
    bundle.args("sh", "-c", SIZE_LOOP)
    bundle.write()
    t = Terminal(rt.cmd("run", "--bundle", str(bundle.path), rt.new_id()), 24, 70)
    try:
        read_until(t.master, "24 70")
        t.resize(30, 90)
        read_until(t.master, "30 90")
        os.write(t.master, b"q\n")
    finally:
        assert t.close() == 3


class ConsoleSocket:
    """The engine's side of --console-socket: receives the pty master and its name."""

    def __init__(self, path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)

    def receive(self, timeout: float = 15) -> tuple[int, str]:
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        with conn:
            name, fds, _, _ = socket.recv_fds(conn, 1024, 1)
        assert len(fds) == 1
        return fds[0], name.decode()

    def close(self) -> None:
        self.sock.close()


def wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        reap()
        time.sleep(0.02)
    assert not os.path.exists(f"/proc/{pid}")


def test_exec_console_socket_with_process_json(rt, bundle, tmp_path):
    """containerd's `ctr task exec -t` and conmon's `podman exec -it`: terminal in process.json,
    --console-socket, --detach, --pid-file; consoleSize applied."""
    bundle.args("sleep", "1000")
    cid = rt.create(bundle)
    rt.ok("start", cid)
    proc = {"terminal": True, "consoleSize": {"height": 21, "width": 83}, "args": ["sh", "-c", SIZE_LOOP],
            "cwd": "/", "env": ["PATH=/bin", "TERM=xterm"], "user": {"uid": 0, "gid": 0}}
    (tmp_path / "process.json").write_text(json.dumps(proc))
    console = ConsoleSocket(tmp_path / "console.sock")
    pid_file = tmp_path / "exec.pid"
    try:
        with open(tmp_path / "log", "w") as log:
            r = subprocess.run(rt.cmd("exec", "--process", str(tmp_path / "process.json"), "--tty",
                                      "--console-socket", console.path, "--detach", "--pid-file", str(pid_file), cid),
                               stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=30)
        assert r.returncode == 0, (tmp_path / "log").read_text()
        master, name = console.receive()
    finally:
        console.close()
    pid = int(pid_file.read_text())
    try:
        assert name.startswith("/dev/")  # pyrt: the pty's name; runc: "/dev/ptmx"
        assert "/dev/pts/" in read_until(master, "21 83")
        os.write(master, b"q\n")
        wait_gone(pid)
    finally:
        os.close(master)
        if os.path.exists(f"/proc/{pid}"):
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid)


def test_create_console_socket_and_console_size(rt, bundle, tmp_path):
    bundle.process["terminal"] = True
    bundle.process["consoleSize"] = {"height": 19, "width": 66}
    bundle.args("sh", "-c", "stty size; ls -l /dev/console; read x; exit 0")
    console = ConsoleSocket(tmp_path / "console.sock")
    try:
        cid = rt.create(bundle, None, "--console-socket", console.path)
        master, name = console.receive()
    finally:
        console.close()
    try:
        assert name.startswith("/dev/")
        rt.ok("start", cid)
        out = read_until(master, "136,")  # ls: /dev/console is the container's pty (char major 136)
        assert "19 66" in out
        os.write(master, b"\n")
        rt.wait_status(cid, "stopped")
    finally:
        os.close(master)
    rt.ok("delete", cid)
