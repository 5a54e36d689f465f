"""OCI hooks: each kind at its point of the lifecycle, in its namespaces, with the state on
stdin; failures before start fail and clean up, later ones are only logged; timeouts kill."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

HOST_PATH = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
RUNTIME_KINDS = ("prestart", "createRuntime", "poststop")


def recorder(out: str, kind: str, then: str = "") -> dict:
    """A hook that keeps its stdin, its namespaces and its place in the order under `out`."""
    script = (f"cat > {out}/{kind}.json; readlink /proc/self/ns/mnt > {out}/{kind}.mnt; "
              f"readlink /proc/self/ns/net > {out}/{kind}.net; echo {kind} >> {out}/log; {then}")
    return {"path": "/bin/sh", "args": ["sh", "-c", script], "env": ["PATH=/bin:/usr/bin"]}


def with_out_dir(bundle, tmp_path: Path) -> Path:
    """A host directory the container sees at /tmp/out (startContainer hooks write there); its
    mount point is made in the container's /tmp, not in the shared rootfs."""
    out = tmp_path / "out"
    out.mkdir()
    bundle.config["mounts"].append({"destination": "/tmp/out", "type": "bind", "source": str(out),
                                    "options": ["bind"]})
    return out


def log_of(out: Path) -> list[str]:
    return (out / "log").read_text().split() if (out / "log").exists() else []


def one_line_error(r) -> str:
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def create_fails(rt, bundle) -> str:
    cid = rt.new_id()
    bundle.write()
    r = rt("create", "--bundle", str(bundle.path), cid, stdin=subprocess.DEVNULL)
    assert rt("state", cid).returncode == 1  # nothing left: the leak check looks at the rest
    return one_line_error(r)


def test_hooks_in_order_with_state_and_namespaces(rt, bundle, tmp_path):
    """Every kind but poststart (runc 1.1 runs it at create: see the test after this one)."""
    out = with_out_dir(bundle, tmp_path)
    bundle.config["annotations"] = {"org.example.key": "value"}
    bundle.config["hooks"] = {kind: [recorder(str(out), kind)] for kind in (*RUNTIME_KINDS, "createContainer")}
    bundle.config["hooks"]["startContainer"] = [recorder("/tmp/out", "startContainer")]
    bundle.args("sleep", "1000")
    cid = rt.create(bundle)
    init = rt.state(cid)["pid"]
    assert log_of(out) == ["prestart", "createRuntime", "createContainer"]
    rt.ok("start", cid)
    rt.wait_status(cid, "running")
    assert log_of(out) == ["prestart", "createRuntime", "createContainer", "startContainer"]
    rt.ok("kill", cid, "KILL")
    rt.wait_status(cid, "stopped")
    rt.ok("delete", cid)
    assert log_of(out)[-1] == "poststop"

    for kind, status in (("prestart", "creating"), ("createRuntime", "creating"), ("createContainer", "creating"),
                         ("startContainer", "created"), ("poststop", "stopped")):
        st = json.loads((out / f"{kind}.json").read_text())
        assert st["ociVersion"] and st["id"] == cid and st["bundle"] == str(bundle.path), kind
        assert st["status"] == status, kind
        assert st["annotations"] == {"org.example.key": "value"}, kind
        if kind in ("prestart", "createRuntime"):  # in the container's hooks runc gives 1 (see below)
            assert st["pid"] == init, kind
    here = {ns: os.readlink(f"/proc/self/ns/{ns}") for ns in ("mnt", "net")}
    for kind in RUNTIME_KINDS:
        assert {ns: (out / f"{kind}.{ns}").read_text().strip() for ns in here} == here, kind
    for kind in ("createContainer", "startContainer"):
        assert (out / f"{kind}.net").read_text() != here["net"] + "\n", kind
        assert (out / f"{kind}.mnt").read_text() != here["mnt"] + "\n", kind
    assert (out / "createContainer.net").read_text() == (out / "startContainer.net").read_text()


@pytest.mark.pyrt_only
def test_poststart_runs_after_the_process_started(rt, bundle, tmp_path):
    """The spec: after the user-specified process is executed, before `start` returns (runc 1.1
    runs it at create). And the state's pid is the host's, for the hooks that run in the
    container too (runc 1.5 gives them 1: docs/runc-differences.md)."""
    out = with_out_dir(bundle, tmp_path)
    bundle.config["hooks"] = {"poststart": [recorder(str(out), "poststart")],
                              "createContainer": [recorder(str(out), "createContainer")],
                              "startContainer": [recorder("/tmp/out", "startContainer")]}
    bundle.args("sh", "-c", "echo process >> /tmp/out/log; exec sleep 1000")
    cid = rt.create(bundle)
    assert log_of(out) == ["createContainer"]
    assert json.loads((out / "createContainer.json").read_text())["pid"] == rt.state(cid)["pid"]
    rt.ok("start", cid)
    assert log_of(out)[1] == "startContainer" and "poststart" in log_of(out)
    assert json.loads((out / "startContainer.json").read_text())["pid"] == rt.state(cid)["pid"]
    st = json.loads((out / "poststart.json").read_text())
    assert st["status"] == "running" and st["pid"] == rt.state(cid)["pid"]
    cmdline = Path(f"/proc/{st['pid']}/cmdline").read_text().split("\0")
    assert cmdline[0] in ("sh", "sleep")  # the container's process, not pyrt-init
    assert (out / "poststart.net").read_text().strip() == os.readlink("/proc/self/ns/net")


def test_start_container_hook_runs_as_the_container_process(rt, bundle, tmp_path):
    """startContainer runs inside the container with the process's credentials (runc's order)."""
    out = with_out_dir(bundle, tmp_path)
    script = "id -u > /tmp/out/uid; grep CapEff /proc/self/status > /tmp/out/caps"
    bundle.config["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]}
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    os.chmod(out, 0o777)
    bundle.args("true")
    cid = rt.create(bundle)
    rt.ok("start", cid)
    rt.wait_status(cid, "stopped")
    assert (out / "uid").read_text() == "1000\n"
    assert int((out / "caps").read_text().split()[1], 16) == 0


def test_hook_args_env_and_fds(rt, bundle, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # (`exec >`: a plain `>` makes the shell keep a copy of its stdout while ls runs)
    script = f'echo "$0 $1" > {out}/args; env > {out}/env; exec > {out}/fds; ls /proc/$$/fd; true'
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", script, "argv0", "one"],
                                                 "env": ["FOO=bar", *HOST_PATH]}]}
    cid = rt.create(bundle)
    assert (out / "args").read_text() == "argv0 one\n"
    env = dict(line.split("=", 1) for line in (out / "env").read_text().splitlines())
    env.pop("PWD", None)  # the shell adds these itself
    env.pop("OLDPWD", None)
    env.pop("SHLVL", None)
    env.pop("_", None)
    assert env == {"FOO": "bar", "PATH": HOST_PATH[0].split("=", 1)[1]}
    assert (out / "fds").read_text().split() == ["0", "1", "2"]
    rt.ok("delete", cid)


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_failing_hook_fails_create_and_cleans_up(rt, bundle, tmp_path, kind):
    out = tmp_path / "out"
    out.mkdir()
    bundle.config["hooks"] = {
        kind: [{"path": "/bin/sh", "args": ["sh", "-c", "echo boom >&2; exit 3"]}],
        "poststop": [recorder(str(out), "poststop")],
    }
    line = create_fails(rt, bundle)
    assert "exit status 3" in line and "boom" in line
    assert "poststop" in log_of(out)  # the spec: a failed create hook continues at delete


def test_a_state_longer_than_a_pipe_reaches_the_hooks_whole(rt, bundle, tmp_path):
    """The state JSON on the stdin of the hooks pyrt-init runs is all of it, also beyond the
    64 KiB a pipe holds (pyrt-init wrote it once, without blocking, and dropped the rest)."""
    out = with_out_dir(bundle, tmp_path)
    big = "x" * 200_000
    bundle.config["annotations"] = {"org.example.big": big}
    bundle.config["hooks"] = {"createContainer": [recorder(str(out), "createContainer")],
                              "startContainer": [recorder("/tmp/out", "startContainer")]}
    cid = rt.create(bundle)
    rt.ok("start", cid)
    rt.wait_status(cid, "stopped")
    rt.ok("delete", cid)
    for kind in ("createContainer", "startContainer"):
        assert json.loads((out / f"{kind}.json").read_text())["annotations"] == {"org.example.big": big}, kind


def test_a_failing_hook_message_has_what_it_wrote_last(rt, bundle):
    """The message of a failing hook has its output up to the end, also what a process it left
    behind wrote after it exited (pyrt-init stopped reading when the hook exited)."""
    script = "echo first; (sleep 0.3; echo late-tail) & exit 3"
    bundle.config["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]}
    line = create_fails(rt, bundle)
    assert "exit status 3" in line and "first" in line and "late-tail" in line


@pytest.mark.pyrt_only
def test_a_process_a_hook_leaves_behind_does_not_hold_create(rt, bundle):
    """A hook that succeeds is done when it exits, even if a process it started still holds its
    output open (runc 1.5 waits for that output to end)."""
    bundle.config["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "sleep 30 & exit 0"]}]}
    begin = time.monotonic()
    cid = rt.create(bundle)
    assert time.monotonic() - begin < 10
    rt.ok("delete", "--force", cid)


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer"])
def test_hook_timeout_kills_it(rt, bundle, tmp_path, kind):
    pid_file = tmp_path / "hook.pid"
    # the host pid (through the host's /proc: createContainer runs before pivot_root)
    script = f"read pid rest < /proc/self/stat; echo $pid > {pid_file}; exec sleep 100"
    bundle.config["hooks"] = {kind: [{"path": "/bin/sh", "args": ["sh", "-c", script], "env": HOST_PATH,
                                      "timeout": 1}]}
    start = time.monotonic()
    line = create_fails(rt, bundle)
    assert time.monotonic() - start < 20
    assert "timeout" in line or "timed out" in line
    assert not os.path.exists(f"/proc/{int(pid_file.read_text())}")


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer"])
def test_hook_not_executable_or_missing(rt, bundle, tmp_path, kind):
    script = tmp_path / "hook.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    bundle.config["hooks"] = {kind: [{"path": str(script)}]}
    assert "permission denied" in create_fails(rt, bundle).lower()
    bundle.config["hooks"] = {kind: [{"path": str(tmp_path / "missing")}]}
    assert "no such file" in create_fails(rt, bundle).lower()


@pytest.mark.pyrt_only
def test_failing_start_container_hook_fails_start(rt, bundle, tmp_path):
    """runc's start reports success and the container just stops."""
    bundle.config["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 4"]}]}
    bundle.args("sleep", "1000")
    cid = rt.create(bundle)
    r = rt("start", cid)
    assert r.returncode == 1 and "startContainer" in r.stderr
    rt.wait_status(cid, "stopped")
    rt.ok("delete", cid)


def test_failing_start_container_hook_then_delete_force_leaves_nothing(rt, bundle, tmp_path):
    """Whatever `start` says (runc 1.5: success, the error on the container's stderr), the init
    and what the hook left running (no pid namespace to end them) are gone after delete --force."""
    pid_file = tmp_path / "out" / "bg.pid"
    with_out_dir(bundle, tmp_path)
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"] if n["type"] != "pid"]
    script = "sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > /tmp/out/bg.pid; exit 4"
    bundle.config["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]}
    bundle.args("sleep", "1000")
    cid = rt.create(bundle)
    init = rt.state(cid)["pid"]
    rt("start", cid)
    rt.ok("delete", "--force", cid)
    assert rt("state", cid).returncode == 1
    for pid in (init, int(pid_file.read_text())):
        for _ in range(100):  # a zombie until its parent reaps it: only a running one is a leak
            if not os.path.exists(f"/proc/{pid}") or "State:\tZ" in Path(f"/proc/{pid}/status").read_text():
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"process {pid} left running")


def test_failing_poststart_fails_start_and_kills(rt, bundle, tmp_path):
    """As runc 1.5: a failing poststart hook fails `start` (its remaining hooks do not run) and
    kills the process; the poststop hooks' state has no pid."""
    out = tmp_path / "out"
    out.mkdir()
    failing = {"path": "/bin/sh", "args": ["sh", "-c", "exit 5"]}
    bundle.config["hooks"] = {"poststart": [recorder(str(out), "poststart"), failing, recorder(str(out), "late")],
                              "poststop": [recorder(str(out), "poststop")]}
    bundle.args("sleep", "1000")
    cid = rt.create(bundle)
    init = rt.state(cid)["pid"]
    r = rt("start", cid)
    assert r.returncode == 1 and "error running poststart hook #1: " in r.stderr and "exit status 5" in r.stderr
    rt.wait_status(cid, "stopped")
    assert log_of(out) == ["poststart"]
    assert not os.path.exists(f"/proc/{init}") or "State:\tZ" in Path(f"/proc/{init}/status").read_text()
    rt.ok("delete", cid)
    assert log_of(out) == ["poststart", "poststop"]
    stopped = json.loads((out / "poststop.json").read_text())
    assert stopped["status"] == "stopped" and "pid" not in stopped  # as runc 1.5: no process to name
    assert rt("state", cid).returncode == 1


@pytest.mark.pyrt_only
def test_failing_poststop_is_only_logged(rt, bundle, tmp_path):
    """The spec: log a warning, run the remaining hooks, go on (runc 1.5 fails `delete`)."""
    out = tmp_path / "out"
    out.mkdir()
    bundle.config["hooks"] = {"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 5"]},
                                           recorder(str(out), "poststop")]}
    cid = rt.create(bundle)
    r = rt("delete", "--force", cid)
    assert r.returncode == 0 and "error running poststop hook #0: /bin/sh: exit status 5" in r.stderr
    assert log_of(out) == ["poststop"]
    assert rt("state", cid).returncode == 1


def test_hooks_follow_the_container_not_the_bundle(rt, bundle, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    bundle.config["hooks"] = {"poststop": [recorder(str(out), "poststop")]}
    cid = rt.create(bundle)
    del bundle.config["hooks"]
    bundle.write()
    rt.ok("delete", cid)
    assert log_of(out) == ["poststop"]
