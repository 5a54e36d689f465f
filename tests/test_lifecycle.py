"""create / start / state / kill / delete / run / list through the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import pytest
from conftest import reap, validate, wait_for


def test_run_exit_status(rt, bundle):
    cid = rt.new_id()
    bundle.args("sh", "-c", "exit 3").write()
    r = rt("run", "--bundle", str(bundle.path), cid)
    assert r.returncode == 3, r.stderr
    assert rt("state", cid).returncode == 1  # run deletes the container


def test_run_killed_by_signal_is_128_plus_n(rt, bundle):
    cid = rt.new_id()
    bundle.args("sleep", "100").write()
    run = subprocess.Popen(rt.cmd("run", "--bundle", str(bundle.path), cid), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rt.wait_status(cid, "running")
    rt.ok("kill", cid, "KILL")
    assert run.wait(timeout=10) == 137


def test_run_forwards_signals(rt, bundle):
    cid = rt.new_id()
    bundle.args("sh", "-c", "trap 'exit 42' USR1; while true; do sleep 0.05; done").write()
    run = subprocess.Popen(rt.cmd("run", "--bundle", str(bundle.path), cid), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rt.wait_status(cid, "running")
    time.sleep(0.3)  # the trap is set up
    run.send_signal(signal.SIGUSR1)
    assert run.wait(timeout=10) == 42


def test_run_stdio_passthrough(rt, bundle):
    bundle.args("sh", "-c", "read line; echo out:$line; echo err:$line >&2").write()
    r = rt("run", "--bundle", str(bundle.path), rt.new_id(), input="hello\n")
    assert r.returncode == 0
    assert r.stdout == "out:hello\n"
    assert "err:hello" in r.stderr


def test_relative_executable_is_found_in_the_cwd(rt, bundle):
    """As runc (Go's exec.LookPath after the chdir): ./busybox is looked up in process.cwd."""
    bundle.args("./busybox", "echo", "found").process["cwd"] = "/bin"
    r = rt("run", "--bundle", str(bundle.write().path), rt.new_id())
    assert (r.returncode, r.stdout) == (0, "found\n"), r.stderr


def test_create_start_state_transitions(rt, bundle):
    bundle.args("sleep", "100")
    cid = rt.create(bundle)
    st = rt.state(cid)
    assert st["status"] == "created"
    assert st["id"] == cid and st["pid"] > 0
    assert st["bundle"] == str(bundle.path)
    assert os.path.exists(f"/proc/{st['pid']}")
    validate(st, "state-schema.json")

    rt.ok("start", cid)
    st = rt.wait_status(cid, "running")
    validate(st, "state-schema.json")
    with open(f"/proc/{st['pid']}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0] == b"sleep"

    rt.ok("kill", cid, "KILL")
    st = rt.wait_status(cid, "stopped")
    assert st["pid"] == 0
    validate(st, "state-schema.json")
    rt.ok("delete", cid)
    r = rt("state", cid)
    assert r.returncode == 1 and "does not exist" in r.stderr


def test_state_has_exactly_runc_fields(rt, bundle):
    bundle.config["annotations"] = {"org.example.k": "v"}
    cid = rt.create(bundle.args("sleep", "100"))
    st = rt.state(cid)
    assert set(st) == {"ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner", "annotations"}
    assert st["annotations"] == {"org.example.k": "v"}
    assert st["created"].endswith("Z") and "T" in st["created"]


def test_list_formats(rt, bundle):
    cid = rt.create(bundle.args("sleep", "100"))
    rows = json.loads(rt.ok("list", "--format", "json").stdout)
    assert [r["id"] for r in rows] == [cid]
    assert rows[0]["status"] == "created" and rows[0]["owner"] == "root"
    for row in rows:
        validate(row, "state-schema.json")
    assert rt.ok("list", "-q").stdout.split() == [cid]
    table = rt.ok("list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert table[1].split()[0] == cid and table[1].split()[2] == "created"


def test_pid_file_is_bare_digits(rt, bundle, tmp_path):
    pid_file = tmp_path / "init.pid"
    cid = rt.create(bundle.args("sleep", "100"), None, "--pid-file", str(pid_file))
    text = pid_file.read_text()
    assert text.isdigit() and int(text) == rt.state(cid)["pid"]


@pytest.mark.parametrize("sig", ["KILL", "SIGKILL", "9"])
def test_kill_signal_spellings(rt, bundle, sig):
    cid = rt.create(bundle.args("sleep", "100"))
    rt.ok("start", cid)
    rt.ok("kill", cid, sig)
    rt.wait_status(cid, "stopped")
    rt.ok("delete", cid)


def test_kill_default_is_sigterm(rt, bundle, tmp_path):
    """No signal named: SIGTERM, which the container's shell traps (another signal would stop it
    without the trap: the trap's word is what tells them apart)."""
    bundle.args("sh", "-c", "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.1; done")
    cid = rt.create(bundle)
    rt.ok("start", cid)
    wait_for(lambda: "ready" in (bundle.path / "stdout").read_text(), what="the trap")
    rt.ok("kill", cid)
    rt.wait_status(cid, "stopped")
    assert (bundle.path / "stdout").read_text() == "ready\ngot-term\n"
    rt.ok("delete", cid)


def test_kill_all(rt, bundle):
    cid = rt.create(bundle.args("sh", "-c", "sleep 100 & sleep 100 & echo ready; wait"))
    rt.ok("start", cid)
    wait_for(lambda: "ready" in (bundle.path / "stdout").read_text(), what="the sleeps")
    rt.ok("kill", "--all", cid, "KILL")
    rt.wait_status(cid, "stopped")
    rt.ok("delete", cid)


@pytest.mark.pyrt_only
def test_kill_all_reaches_every_process(rt, bundle):
    """--all signals every process of the container: SIGTERM ends the sleeps (the init, a shell
    without a trap, ignores it as a namespace's init does), and the shell's `wait` returns. The
    same kill without --all reaches the init alone: nothing happens. (runc 1.5 signals only the
    init of a container with a pid namespace of its own: docs/runc-differences.md.)"""
    cid = rt.create(bundle.args("sh", "-c", "sleep 100 & sleep 100 & echo ready; wait"))
    rt.ok("start", cid)
    wait_for(lambda: "ready" in (bundle.path / "stdout").read_text(), what="the sleeps")
    rt.ok("kill", cid, "TERM")
    time.sleep(0.3)
    assert rt.state(cid)["status"] == "running"
    rt.ok("kill", "--all", cid, "TERM")
    rt.wait_status(cid, "stopped")
    rt.ok("delete", cid)


def test_delete_running_needs_force(rt, bundle):
    cid = rt.create(bundle.args("sleep", "100"))
    rt.ok("start", cid)
    rt.wait_status(cid, "running")
    r = rt("delete", cid)
    assert r.returncode == 1 and "not stopped" in r.stderr
    rt.ok("delete", "--force", cid)
    assert rt("state", cid).returncode == 1


def test_delete_created_container(rt, bundle):
    cid = rt.create(bundle.args("sleep", "100"))
    pid = rt.state(cid)["pid"]
    rt.ok("delete", cid)
    reap()
    assert not os.path.exists(f"/proc/{pid}/root") or not os.readlink(f"/proc/{pid}/root")


def test_unknown_container(rt):
    for args in (("state", "nope"), ("kill", "nope"), ("delete", "nope"), ("start", "nope")):
        r = rt(*args)
        assert r.returncode == 1, args
        assert "does not exist" in r.stderr, (args, r.stderr)
    assert rt("delete", "--force", "nope").returncode == 0


def test_start_twice_and_kill_stopped(rt, bundle):
    cid = rt.create(bundle.args("sleep", "100"))
    rt.ok("start", cid)
    r = rt("start", cid)
    assert r.returncode == 1 and "running" in r.stderr
    rt.ok("kill", cid, "KILL")
    rt.wait_status(cid, "stopped")
    r = rt("kill", cid, "KILL")
    assert r.returncode == 1 and "not running" in r.stderr
    r = rt("start", cid)
    assert r.returncode == 1 and "stopped" in r.stderr
    rt.ok("delete", cid)


def test_duplicate_id(rt, bundle):
    cid = rt.create(bundle.args("sleep", "100"))
    r = rt("create", "--bundle", str(bundle.path), cid)
    assert r.returncode == 1 and "exists" in r.stderr
    assert rt.state(cid)["status"] == "created"  # the first one is untouched


def test_detect_dead_init(rt, bundle):
    cid = rt.create(bundle.args("sleep", "100"))
    pid = rt.state(cid)["pid"]
    os.kill(pid, 9)
    rt.wait_status(cid, "stopped")


def test_concurrent_commands_on_one_container(rt, bundle):
    cid = rt.create(bundle.args("sleep", "100"))
    rt.ok("start", cid)
    results = []

    def worker(args):
        results.append((args, rt(*args)))

    threads = [threading.Thread(target=worker, args=(a,)) for a in
               [("state", cid)] * 4 + [("kill", cid, "KILL")] * 2 + [("delete", "--force", cid)] * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for args, r in results:
        assert "Traceback" not in r.stderr
        if args[0] == "delete":
            assert r.returncode == 0, r.stderr
    assert rt("state", cid).returncode == 1


def test_run_detach(rt, bundle, tmp_path):
    cid = rt.new_id()
    bundle.args("sleep", "100").write()
    with open(tmp_path / "out", "w") as out:
        r = subprocess.run(rt.cmd("run", "-d", "--bundle", str(bundle.path), cid), stdout=out,
                           stderr=out, stdin=subprocess.DEVNULL, timeout=30)
    assert r.returncode == 0, (tmp_path / "out").read_text()
    assert rt.state(cid)["status"] == "running"
    rt.ok("delete", "--force", cid)


@pytest.mark.pyrt_only
def test_run_bundle_directory_form(rt, bundle):
    bundle.args("sh", "-c", "exit 5").write()
    r = subprocess.run(rt.cmd("run", str(bundle.path)), capture_output=True, text=True, timeout=30)
    assert r.returncode == 5, r.stderr
    assert not any(rt.root.iterdir())


def test_version_shape(rt):
    lines = rt.ok("--version").stdout.splitlines()
    assert lines[0].split()[1] == "version"
    assert lines[1].startswith("commit:")
    assert lines[2].startswith("spec: 1.")


def test_json_log(rt, tmp_path):
    log = tmp_path / "log.json"
    r = rt("--log", str(log), "--log-format", "json", "state", "nope")
    assert r.returncode == 1
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records[-1]["level"] == "error" and "does not exist" in records[-1]["msg"]
    assert records[-1]["time"].endswith("Z")
