"""--pidfd-socket on create, run and exec (runc 1.2+): a pidfd of the container's init (or of the
exec'd process) is sent over the unix socket, with the word "standard" (the init) or "setns"
(exec), so a supervisor holds the process without racing pid reuse. Holds for runc 1.5 too."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import threading

import pytest


class Receiver:
    """Accepts connections on `path`; `got` holds (message, fdinfo fields, fd) per connection."""

    def __init__(self, path: str) -> None:
        self.path, self.got = path, []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                msg, fds, _, _ = socket.recv_fds(conn, 4096, 4)
            with open(f"/proc/self/fdinfo/{fds[0]}") as f:
                info = dict(line.split(":\t", 1) for line in f.read().splitlines())
            self.got.append((msg, os.readlink(f"/proc/self/fd/{fds[0]}"), info, fds))

    def close(self) -> None:
        self.sock.close()
        for _, _, _, fds in self.got:
            for fd in fds:
                os.close(fd)


def detached(rt, tmp_path, *args: str) -> None:
    """A command that leaves a process running: stdio on files (it inherits them), exit 0."""
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w+") as err:
        r = subprocess.run(rt.cmd(*args), stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=30)
        err.seek(0)
        assert r.returncode == 0, err.read()


@pytest.fixture
def receiver(tmp_path):
    r = Receiver(str(tmp_path / "pidfd.sock"))
    yield r
    r.close()


def test_create_sends_the_inits_pidfd(rt, bundle, receiver):
    cid = rt.create(bundle.args("sleep", "100"), None, "--pidfd-socket", receiver.path)
    pid = rt.state(cid)["pid"]
    assert len(receiver.got) == 1
    msg, link, info, fds = receiver.got[0]
    assert (msg, link, len(fds), int(info["Pid"])) == (b"standard", "anon_inode:[pidfd]", 1, pid)
    rt.ok("start", cid)
    signal.pidfd_send_signal(fds[0], signal.SIGKILL)  # the supervisor's handle works
    assert select.select([fds[0]], [], [], 10)[0]  # readable once the process exits
    rt.wait_status(cid, "stopped")
    rt.ok("delete", cid)


def test_run_detached_sends_the_inits_pidfd(rt, bundle, receiver, tmp_path):
    bundle.args("sleep", "100").write()
    cid = rt.new_id()
    rt.ids.add(cid)
    detached(rt, tmp_path, "run", "-d", "--bundle", str(bundle.path), "--pidfd-socket", receiver.path, cid)
    msg, link, info, _ = receiver.got[0]
    assert (msg, link, int(info["Pid"])) == (b"standard", "anon_inode:[pidfd]", rt.state(cid)["pid"])
    rt.ok("delete", "--force", cid)


def test_exec_sends_the_processs_pidfd(rt, bundle, receiver, tmp_path):
    cid = rt.create(bundle.args("sleep", "100"))
    rt.ok("start", cid)
    detached(rt, tmp_path, "exec", "-d", "--pid-file", str(tmp_path / "exec.pid"), "--pidfd-socket", receiver.path,
             cid, "sleep", "50")
    msg, link, info, _ = receiver.got[0]
    exec_pid = int((tmp_path / "exec.pid").read_text())
    assert (msg, link, int(info["Pid"])) == (b"setns", "anon_inode:[pidfd]", exec_pid)
    assert exec_pid != rt.state(cid)["pid"] and info["NSpid"].split()[1] != "1"  # in the container's pid namespace
    rt.ok("kill", cid, "KILL")
    rt.wait_status(cid, "stopped")  # reaps the init (we are its subreaper)
    rt.ok("delete", cid)


@pytest.mark.parametrize("command", ["create", "exec"])
def test_no_listener_fails_cleanly(rt, bundle, tmp_path, command):
    missing = str(tmp_path / "nosuch.sock")
    if command == "create":
        bundle.args("true").write()
        cid = rt.new_id()
        r = rt("create", "--bundle", str(bundle.path), "--pidfd-socket", missing, cid)
        assert rt("state", cid).returncode == 1 and not (rt.root / cid).exists()
    else:
        cid = rt.create(bundle.args("sleep", "100"))
        r = rt("exec", "--pidfd-socket", missing, cid, "true")
        rt.ok("delete", "--force", cid)
    assert r.returncode != 0 and "nosuch.sock" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
