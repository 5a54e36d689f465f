"""native/spawn.c, between clone3 and execveat of pyrt-init: only async-signal-safe work, no
handler of the parent's (Python's) run in the child, and every failure told to the parent."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

import pytest

from pyrt import spawn

pytestmark = pytest.mark.pyrt_only


def test_a_child_that_cannot_keep_its_fds_says_why():
    """An fd the plan needs that is not there: the child reports EBADF as init's error for
    step -1 (starting pyrt-init) and exits, instead of starting pyrt-init without it."""
    from pyrt._native import ffi, lib

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    plan = os.memfd_create("plan", os.MFD_CLOEXEC)
    exe = spawn._sealed_copy(spawn.INIT, "pyrt-init")
    missing = os.dup(plan)
    os.close(missing)
    pidfd = ffi.new("int *", -1)
    with theirs:
        pid = lib.pyrt_spawn(0, -1, exe, theirs.fileno(), plan, ffi.new("int[]", [missing]), 1, pidfd)
    for fd in (plan, exe, pidfd[0]):
        os.close(fd)
    assert pid > 0, os.strerror(-pid)
    with ours:
        ours.settimeout(10)
        try:
            message = ours.recv(4096)
        finally:
            ours.close()  # a pyrt-init that did start reads end-of-file and exits
            _, status = os.waitpid(pid, 0)
    assert message.split(b"\0") == [b"error", b"-1", b"9", b""]  # EBADF
    assert os.waitstatus_to_exitcode(status) == 127


def test_clone3_clears_the_parents_signal_handlers(rt, bundle, tmp_path):
    """A signal between clone3 and execveat gets its default action in the child, never the
    parent's handler (Python's, writing to `run`'s wakeup pipe): CLONE_CLEAR_SIGHAND."""
    if not shutil.which("strace"):
        pytest.fail("this test needs strace (the Makefile's deps install it)")
    trace = tmp_path / "trace"
    bundle.write()
    r = subprocess.run(["strace", "-f", "-o", str(trace), "-e", "trace=clone3",
                        *rt.cmd("run", "--bundle", str(bundle.path), rt.new_id())],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    clones = [line for line in trace.read_text().splitlines() if "clone3(" in line and "CLONE_INTO_CGROUP" in line]
    assert clones and all("CLONE_CLEAR_SIGHAND" in line for line in clones), clones
