"""containerd (through containerd-shim-runc-v2) running pyrt end to end: issue 3 §6.

One private containerd per module (its own root, state, sockets; CRI off), driven with ctr; the
image is an OCI archive made here from the busybox rootfs and `ctr image import`ed. Every task
runs with `--runc-binary RUNTIME` and a private `--runc-root`; after each test nothing may be left:
tasks, containers, the runtime's state, rootfs mounts, cgroups, processes.
"""

from __future__ import annotations

import time
from pathlib import Path

import engines
import pytest

pytestmark = pytest.mark.pyrt_only

BUSYBOX = "localhost/busybox:latest"
COUNTER = "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done"


@pytest.fixture(scope="module")
def containerd(tmp_path_factory):
    c = engines.Containerd(tmp_path_factory.mktemp("containerd"))
    try:
        c.import_image(engines.BUSYBOX_ROOTFS, BUSYBOX, cmd=["/bin/sh"])
        yield c
    finally:
        left = c.close()
        assert not left, "containerd left:\n  " + "\n  ".join(left)


@pytest.fixture
def ctr(containerd):
    """The module's containerd; fails the test if its containers left anything behind."""
    yield containerd
    leaks = containerd.leaks()
    if leaks:
        pytest.fail("leaked:\n  " + "\n  ".join(leaks))


def task_pid(ctr, cid: str) -> int:
    for line in ctr.ok("task", "ls").stdout.splitlines()[1:]:
        fields = line.split()
        if fields[0] == cid:
            return int(fields[1])
    raise AssertionError(f"no task {cid}")


def read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def test_run_rm_echo(ctr):
    r = ctr.run("--rm", cid="echo1", image=BUSYBOX, command=("echo", "hi"))
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr


def test_exit_code_propagates(ctr):
    r = ctr.run("--rm", cid="exit3", image=BUSYBOX, command=("sh", "-c", "exit 3"))
    assert r.returncode == 3, r.stderr


def test_detached_exec_ps_pause_kill_delete(ctr):
    ctr.ok(*ctr.run_args("d1"), "-d", BUSYBOX, "d1", "sh", "-c", f"trap 'exit 7' TERM; {COUNTER}")
    assert ctr.task_status("d1") == "RUNNING"
    pid = task_pid(ctr, "d1")
    counter = Path(f"/proc/{pid}/root/tmp/count")
    engines.wait_for(lambda: read(counter).strip(), what="the counter")

    # exec without a terminal: output and exit status come back through the shim
    r = ctr(*ctr.exec_args("e1"), "d1", "sh", "-c", "echo from-exec; cat /proc/1/cmdline; exit 5")
    assert r.returncode == 5, r.stderr
    assert r.stdout.startswith("from-exec\nsh\0"), r.stdout

    # exec -t: the process.json says terminal:true, the pty comes back over --console-socket
    t = ctr.pty(*ctr.exec_args("e2"), "-t", "d1", "sh")
    try:
        t.expect("# ")
        t.send("tty; echo $((6*7))\n")
        t.expect("42")
        t.send("exit 4\n")
        assert t.wait() == 4, t.text
    finally:
        t.close()
    assert "/dev/pts/" in t.text, t.text

    # ps: the runtime's `ps --format json` (host pids)
    lines = ctr.ok("task", "ps", "d1").stdout.splitlines()
    assert lines[0].split()[0] == "PID"
    pids = {int(line.split()[0]) for line in lines[1:]}
    assert pid in pids and len(pids) >= 2, lines  # sh and its sleep

    ctr.ok("task", "pause", "d1")
    assert ctr.task_status("d1") == "PAUSED"
    frozen = read(counter)
    time.sleep(0.5)
    assert read(counter) == frozen
    ctr.ok("task", "resume", "d1")
    assert ctr.task_status("d1") == "RUNNING"
    engines.wait_for(lambda: read(counter) != frozen, what="the counter to move again")

    ctr.ok("task", "kill", "d1")  # SIGTERM: the trap exits 7
    engines.wait_for(lambda: ctr.task_status("d1") == "STOPPED", what="the task to stop")
    r = ctr.ok("task", "delete", "d1")
    assert "exit code 7" in r.stderr, r.stderr
    ctr.ok("container", "delete", "d1")


def test_kill_term_then_all(ctr):
    # a pid 1 without a TERM handler ignores TERM; --all KILLs every process of the container
    ctr.ok(*ctr.run_args("k1"), "-d", BUSYBOX, "k1", "sh", "-c", "sleep 1000 & sleep 1001")
    engines.wait_for(lambda: len(ctr.ok("task", "ps", "k1").stdout.splitlines()) == 3, what="both sleeps")
    ctr.ok("task", "kill", "k1")
    time.sleep(0.5)
    assert ctr.task_status("k1") == "RUNNING"
    ctr.ok("task", "kill", "--all", "--signal", "SIGKILL", "k1")
    engines.wait_for(lambda: ctr.task_status("k1") == "STOPPED", what="the task to stop")
    r = ctr.ok("task", "delete", "k1")
    assert "exit code 137" in r.stderr, r.stderr
    ctr.ok("container", "delete", "k1")


def test_run_tty(ctr):
    t = ctr.pty(*ctr.run_args("tty1"), "-t", "--rm", BUSYBOX, "tty1", "sh", rows=33, cols=101)
    try:
        t.expect("# ")
        t.send("tty; stty size; echo $((6*7))\n")
        t.expect("42")
        t.send("exit 6\n")
        assert t.wait() == 6, t.text
    finally:
        t.close()
    assert "/dev/pts/0" in t.text and "33 101" in t.text, t.text


def test_failing_start_reports_runtime_error(ctr):
    # the shim reads the runtime's --log log.json and reports its last error record
    r = ctr.run("--rm", cid="bad1", image=BUSYBOX, command=("/nonexistent",))
    assert r.returncode != 0
    assert "OCI runtime create failed" in r.stderr, r.stderr
    assert '"/nonexistent"' in r.stderr and "no such file or directory" in r.stderr, r.stderr
    assert "unable to retrieve OCI runtime error" not in r.stderr, r.stderr
    ctr("container", "delete", "bad1")
