"""runc 1.5's lifecycle and command line at its edges (issue 11): kill with signal 0, list on a
missing --root, exec --cgroup, exec --ignore-paused while someone resumes, pause of a created
container, SIGKILL of a container in the host's pid namespace, a frozen parent cgroup. Shared
tests: `PYRT_BIN=runc` runs them against runc 1.5 (the oracle), except those marked pyrt_only."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from cgroupfs import UNIFIED, create_while_frozen, v1_mounts
from conftest import reap


def _running(rt, bundle, *args: str) -> str:
    cid = rt.create(bundle.args(*args))
    rt.ok("start", cid)
    return cid


def test_kill_with_signal_0_only_checks(rt, bundle):
    """Signal 0 sends nothing: exit 0 while the init lives, runc's words once it does not."""
    cid = rt.create(bundle.args("sleep", "30"))
    assert rt("kill", cid, "0").returncode == 0  # created
    rt.ok("start", cid)
    assert rt("kill", cid, "0").returncode == 0
    assert rt.state(cid)["status"] == "running"  # nothing was sent
    rt.ok("kill", cid, "KILL")
    rt.wait_status(cid, "stopped")
    r = rt("kill", cid, "0")
    assert r.returncode == 1 and "container not running" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr


@pytest.mark.parametrize("fmt", [(), ("-q",), ("-f", "json")], ids=["table", "quiet", "json"])
def test_list_on_a_missing_root_fails(rt, tmp_path, fmt):
    """runc 1.5: `open ROOT: no such file or directory`, exit 1, nothing on stdout."""
    root = tmp_path / "nosuch"
    r = subprocess.run([rt.binary, "--root", str(root), "list", *fmt], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and r.stdout == "", r
    assert f"open {root}: no such file or directory" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr


def test_run_keep_leaves_the_stopped_container(rt, bundle):
    """run --keep: the exit status is the process's, the container stays stopped until delete."""
    cid = rt.new_id()
    r = rt("run", "--keep", "--bundle", str(bundle.args("sh", "-c", "exit 3").write().path), cid,
           stdin=subprocess.DEVNULL)
    assert r.returncode == 3, r.stderr
    st = rt.state(cid)
    assert st["status"] == "stopped" and st["pid"] == 0
    rt.ok("delete", cid)
    assert rt("state", cid).returncode == 1


# ----------------------------------------------------------------------------- exec --cgroup


class SubCgroups:
    """A directory `sub` made in each of a container's cgroups (found from its init's
    /proc/PID/cgroup), removed at close()."""

    def __init__(self, pid: int, name: str = "sub") -> None:
        mounts, self.made, self.v1 = v1_mounts(), [], {}
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            hid, controllers, path = line.split(":", 2)
            base = UNIFIED if hid == "0" else mounts.get(controllers.split(",")[0])
            if base is None or not (base / path.lstrip("/")).is_dir():
                continue
            d = base / path.lstrip("/") / name
            d.mkdir()
            self.made.append(d)
            for f in ("cpuset.cpus", "cpuset.mems"):  # a v1 cpuset takes no process until they are set
                if (d / f).exists():
                    (d / f).write_text((d.parent / f).read_text())
            for c in controllers.split(","):
                self.v1[c] = d

    def close(self) -> None:
        time.sleep(0.1)  # an exec'd process that just exited may still be counted in it
        for d in self.made:
            with contextlib.suppress(OSError):
                d.rmdir()


def _cgroup_lines(out: str, name: str) -> set[str]:
    """The hierarchies (controllers, or "" for cgroup2) whose path ends in /NAME."""
    return {line.split(":", 2)[1] for line in out.splitlines() if line.endswith("/" + name)}


def test_exec_cgroup_runs_the_process_in_a_sub_cgroup(rt, bundle):
    cid = _running(rt, bundle, "sleep", "30")
    sub = SubCgroups(rt.state(cid)["pid"])
    try:
        every = _cgroup_lines(rt.ok("exec", "--cgroup", "sub", cid, "cat", "/proc/self/cgroup").stdout, "sub")
        assert "" in every and {"cpu", "memory", "pids"} <= {c for h in every for c in h.split(",")}, every
        assert _cgroup_lines(rt.ok("exec", "--cgroup", "/sub/", cid, "cat", "/proc/self/cgroup").stdout, "sub") == every
        if "cpu" in sub.v1:  # controller:path: that v1 hierarchy only (cgroup2 stays the container's)
            out = rt.ok("exec", "--cgroup", "cpu,memory:sub", cid, "cat", "/proc/self/cgroup").stdout
            moved = _cgroup_lines(out, "sub")
            assert "" not in moved and "pids" not in moved and any("cpu" in h.split(",") for h in moved), out
    finally:
        sub.close()


@pytest.mark.parametrize(("args", "words"), [
    (["nosuch"], "no such file or directory"),
    (["../x"], "bad sub cgroup path: ../x"),
    ([":sub"], "invalid --cgroup argument: :sub (empty <controller> prefix)"),
    (["sub", "cpu:sub"], "invalid --cgroup argument: sub (missing <controller>: prefix)"),
    (["cpu:sub", "cpu,pids:sub"], "invalid --cgroup argument(s): controller cpu specified multiple times"),
    (["nosuchctl:sub"], "unknown controller nosuchctl in SubCgroupPaths"),
], ids=["missing", "outside", "empty-controller", "path-and-controller", "twice", "unknown-controller"])
def test_exec_cgroup_refusals(rt, bundle, args, words):
    """runc's words, exit 255, nothing run (the marker file stays absent)."""
    cid = _running(rt, bundle, "sleep", "30")
    flags = [f for a in args for f in ("--cgroup", a)]
    r = rt("exec", *flags, cid, "touch", "/tmp/ran")
    assert r.returncode == 255 and words in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert rt("exec", cid, "test", "-e", "/tmp/ran").returncode == 1


# ----------------------------------------------------------------------------- pause


def test_exec_ignore_paused_then_resume(rt, bundle, tmp_path):
    """An exec into a paused container waits frozen; resume (which must not wait for the exec)
    thaws it and the exec ends with its process's status."""
    cid = _running(rt, bundle, "sleep", "30")
    pid = rt.state(cid)["pid"]
    rt.ok("pause", cid)
    with open(tmp_path / "exec.out", "w+") as out:
        ex = subprocess.Popen(rt.cmd("exec", "--ignore-paused", cid, "sh", "-c", "echo thawed; exit 4"),
                              stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            time.sleep(0.5)
            assert ex.poll() is None  # frozen with the container
            assert rt("resume", cid, timeout=10).returncode == 0
            assert ex.wait(timeout=10) == 4
        finally:
            if ex.poll() is None:  # a runtime whose exec holds the container: thaw behind its back
                from differential import _thaw

                _thaw(pid)
                ex.kill()
                ex.wait()
        out.seek(0)
        assert out.read() == "thawed\n"
    assert rt.state(cid)["status"] == "running"


def test_pause_of_a_created_container(rt, bundle):
    """runc 1.5 pauses a created container (status paused); start is refused while it is, in
    runc's words; resume makes it created again, and it starts."""
    cid = rt.create(bundle.args("sleep", "30"))
    rt.ok("pause", cid)
    assert rt.state(cid)["status"] == "paused"
    r = rt("start", cid)
    assert r.returncode == 1 and "cannot start a container in the paused state" in r.stderr, r.stderr
    rt.ok("resume", cid)
    assert rt.state(cid)["status"] == "created"
    rt.ok("start", cid)
    assert rt.state(cid)["status"] == "running"


# ----------------------------------------------------------------------------- kill KILL, host pid namespace


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def test_kill_KILL_reaches_every_process_in_the_host_pid_namespace(rt, bundle):
    """Without a pid namespace of its own, killing the init does not kill the rest: runc 1.5's
    `kill KILL` signals every process of the container."""
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"] if n["type"] != "pid"]
    cid = _running(rt, bundle, "sh", "-c", "sleep 30 & sleep 30")
    deadline = time.monotonic() + 10
    while len(pids := json.loads(rt.ok("ps", "-f", "json", cid).stdout)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(pids) >= 2, pids
    rt.ok("kill", cid, "KILL")
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        reap()
        time.sleep(0.02)
    assert not [p for p in pids if _alive(p)]


# ----------------------------------------------------------------------------- a frozen cgroup


@pytest.mark.pyrt_only  # runc 1.5 hangs below a frozen parent (it refuses only a frozen leaf it joins)
@pytest.mark.parametrize("where", ["unified", "freezer"])
def test_create_below_a_frozen_parent_is_refused(rt, bundle, where):
    """The new leaf inherits the freeze: its init would never report, and create hang."""
    base = UNIFIED if where == "unified" else v1_mounts().get("freezer")
    if base is None:
        pytest.skip("no v1 freezer on this host")
    parent = base / f"pyrt-test-frozen-{os.getpid()}"
    parent.mkdir()
    state = ("cgroup.freeze", "1", "0") if where == "unified" else ("freezer.state", "FROZEN", "THAWED")
    try:
        (parent / state[0]).write_text(state[1])
        bundle.config["linux"]["cgroupsPath"] = f"/{parent.name}/c"
        code, message = create_while_frozen(rt, bundle, lambda: (parent / state[0]).write_text(state[2]))
        assert code == 1 and "container's cgroup unexpectedly frozen" in message, (code, message)
        assert message.count("\n") == 1
    finally:
        with contextlib.suppress(OSError):
            (parent / state[0]).write_text(state[2])
        time.sleep(0.1)
        for b in {UNIFIED, *v1_mounts().values()}:
            for d in (b / parent.name / "c", b / parent.name):
                with contextlib.suppress(OSError):
                    d.rmdir()
