"""Differential rows, the command line: state JSON, list, ps, kill signals, delete, start, exec
flags, pause/resume, events --stats, update, features, run. Each row makes one container run
`sleep` and calls the runtime's command line at one point of its life (created, running, paused,
stopped), for pyrt and for runc 1.5; the calls' exit status, normalized output and error class
are compared (tests/differential.py). A row marked xfail is a difference pyrt has today
(docs/runc-differences.md); the fix removes the mark."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from conftest import RUNC_1_5, base_config
from differential import Run, Scenario, compare, edit, row

pytestmark = pytest.mark.differential

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def shape(value, cid: str, pid: int):
    """A JSON value with what differs by run made constant: the id, the init's pid, times,
    numbers that are measurements (kept as their type)."""
    if isinstance(value, dict):
        return {k: shape(v, cid, pid) if k not in ("id", "pid", "created") else
                ("ID" if v == cid else "PID" if v == pid else "TIME" if isinstance(v, str) and TIME.fullmatch(v)
                 else type(v).__name__) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v, cid, pid) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return "PID" if value == pid else type(value).__name__
    if isinstance(value, str):
        return TIME.sub("TIME", value.replace(cid, "ID"))
    return value


def normalize(text: str, cid: str, pid: int) -> str:
    """Output as data: JSON by shape, a table by its header and its rows' words (widths depend
    on the pid and time, which differ by run)."""
    try:
        return json.dumps(shape(json.loads(text), cid, pid), indent=1, sort_keys=True)
    except ValueError:
        pass
    if len(text.splitlines()) > 1 and text.strip():  # the events stream: one object a line
        try:
            return "\n".join(json.dumps(shape(json.loads(line), cid, pid), sort_keys=True)
                             for line in text.splitlines())
        except ValueError:
            pass
    text = TIME.sub("TIME", text.replace(cid, "ID"))
    text = re.sub(rf"\b{pid}\b", "PID", text)
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


def call(run: Run, cid: str, state: dict, args: tuple, input: str | None = None) -> dict:
    """One command line call: its status, normalized output, error class and last error message."""
    r = run(*(cid if a == "ID" else a.replace("BUNDLE", str(run.bundle)) for a in args), input=input)
    lines = r.stderr.strip().splitlines()
    return {"rc": r.returncode, "out": normalize(r.stdout, cid, state["pid"]),
            "err": (len(lines), all("level=error" in line for line in lines) if lines else None),
            "msg": re.sub(r'^.*msg="(.*)"$', r"\1", lines[-1]).replace(cid, "ID") if lines else ""}


def cli(name: str, when: str, *calls: tuple, args: tuple = ("sleep", "30"), config=None, files=None,
        cpus: set[int] | None = None) -> Scenario:
    """A scenario whose container runs `args`; at `when` (created, running, paused or stopped)
    each of `calls` (a tuple of arguments, ID for the container's id; a dict of files to write
    first in the bundle) is made; host.rc/out/err/msg are the last call's. `cpus`: the runtime
    runs pinned to them (`taskset -c`)."""
    def at(run: Run, cid: str, state: dict) -> dict:
        if when == "paused":
            run("pause", cid)
        if when == "stopped":
            run("kill", cid, "KILL")
            deadline = time.monotonic() + 10
            while json.loads(run("state", cid).stdout or "{}").get("status") != "stopped":
                assert time.monotonic() < deadline, "the container did not stop"
                time.sleep(0.02)
        out = {}
        for c in calls:
            out = call(run, cid, state, c)
        if when == "paused":
            run("resume", cid)
        return out

    def edit_config(config_: dict, bundle: Path) -> None:
        config_["process"]["args"] = list(args)
        for name_, text in (files or {}).items():
            Path(bundle, name_).write_text(text)
        if config:
            config(config_)
    # a created-time scenario still gets a `running` step: it ends the sleep at once
    return Scenario(name, edit_config, cpus=cpus, **({"created": at, "running": lambda *_: {}} if when == "created"
                                                      else {"running": at}))


def created(name: str, *args: str, **kw) -> Scenario:
    return cli(name, "created", tuple(args), **kw)


def running(name: str, *args: str, **kw) -> Scenario:
    return cli(name, "running", tuple(args), **kw)


def stopped(name: str, *args: str, **kw) -> Scenario:
    return cli(name, "stopped", tuple(args), **kw)


def exec_in_sub_cgroup(run: Run, cid: str, state: dict) -> dict:
    """exec --cgroup sub into a sub-cgroup made (and removed) here in each of the container's."""
    from cgroupfs import UNIFIED, v1_mounts

    mounts, made = v1_mounts(), []
    for line in Path(f"/proc/{state['pid']}/cgroup").read_text().splitlines():
        hid, controllers, path = line.split(":", 2)
        base = UNIFIED if hid == "0" else mounts.get(controllers.split(",")[0])
        if base and (base / path.lstrip("/")).is_dir():
            made.append(base / path.lstrip("/") / "sub")
            made[-1].mkdir(exist_ok=True)
            for name in ("cpuset.cpus", "cpuset.mems"):  # a v1 cpuset takes no process until they are set
                if (made[-1] / name).exists():
                    (made[-1] / name).write_text((made[-1].parent / name).read_text())
    try:
        return call(run, cid, state, ("exec", "--cgroup", "sub", "ID", "sh", "-c", "grep -c /sub /proc/self/cgroup"))
    finally:
        time.sleep(0.1)
        for d in made:
            with contextlib.suppress(OSError):
                d.rmdir()


def kill_and_count(run: Run, cid: str, state: dict) -> dict:
    """kill KILL, then how many of the container's processes are left (its pids cgroup)."""
    from cgroupfs import CgFiles

    procs = CgFiles(state["pid"]).path("pids", "cgroup.procs", "cgroup.procs")
    deadline = time.monotonic() + 5
    while len(procs.read_text().split()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    run("kill", cid, "KILL")
    time.sleep(0.5)
    left = len(procs.read_text().split()) if procs.exists() else 0
    run("kill", "--all", cid, "KILL")
    return {"left": left}


def exec_while_paused(run: Run, cid: str, state: dict) -> dict:
    """pause; exec --ignore-paused in the background (its process waits, frozen); resume; the
    exec then ends. A call that hangs ends as -1 (differential.CALL_TIMEOUT)."""
    import threading

    run("pause", cid)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(exec=run("exec", "--ignore-paused", cid, "true").returncode))
    thread.start()
    time.sleep(0.5)
    resume = run("resume", cid).returncode
    thread.join()
    return {"exec": result.get("exec"), "resume": resume}


OUT = ("host.rc", "host.out", "host.err")
PROBE = ("sh", "-c", "grep -E '^(Uid|Gid|Groups|CapBnd|CapEff|NoNewPrivs)' /proc/self/status; pwd; echo A=$A")
PROCESS_JSON = json.dumps({"args": ["sh", "-c", "id; pwd; echo $A"], "cwd": "/tmp", "env": ["A=1", "PATH=/bin"],
                           "user": {"uid": 1, "gid": 1}})
#: exec's process.json with the runtime-spec 1.2/1.3 process fields (execCPUAffinity applies to
#: exec'd processes only: "not applicable to the container's init process")
SCHED_JSON = json.dumps({"args": ["sh", "-c", "grep Cpus_allowed_list /proc/self/status; cut -d' ' -f19,41 "
                                  "/proc/self/stat; ionice"], "cwd": "/", "env": ["PATH=/bin"],
                         "user": {"uid": 0, "gid": 0}, "execCPUAffinity": {"initial": "0", "final": "1"},
                         "scheduler": {"policy": "SCHED_BATCH", "nice": 7},
                         "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 6}})

ROWS = [
    # state
    row("state/created", created("state-created", "state", "ID"), *OUT),
    row("state/running", running("state-running", "state", "ID"), *OUT),
    row("state/paused", cli("state-paused", "paused", ("state", "ID")), *OUT),
    row("state/stopped", stopped("state-stopped", "state", "ID"), *OUT),
    row("state/annotations", created("state-annotations", "state", "ID", config=lambda c: c.update(
        annotations={"org.example.key": "value"})), *OUT),
    row("state/missing", created("state-missing", "state", "nosuch"), "host.rc", "host.err"),
    # list
    row("list/table", created("list", "list"), *OUT),
    row("list/json", created("list-json", "list", "-f", "json"), *OUT),
    row("list/quiet", created("list-q", "list", "-q"), *OUT),
    # ps
    row("ps/table", running("ps", "ps", "ID"), "host.rc", "host.err"),
    row("ps/json", running("ps-json", "ps", "-f", "json", "ID"), *OUT),
    row("ps/ps-options", running("ps-options", "ps", "ID", "-o", "pid,comm"), *OUT),
    row("ps/created", created("ps-created", "ps", "-f", "json", "ID"), *OUT),
    row("ps/stopped", stopped("ps-stopped", "ps", "-f", "json", "ID"), "host.rc", "host.err"),
    # kill
    *(row(f"kill/{sig}", running(f"kill-{sig}", "kill", "ID", sig), "host.rc", "host.err", "rc")
      for sig in ("KILL", "SIGKILL", "9", "TERM", "SIGUSR1", "sigkill", "kill")),
    row("kill/default-TERM", running("kill-default", "kill", "ID"), "host.rc", "rc"),
    row("kill/0", running("kill-0", "kill", "ID", "0"), "host.rc", "host.err"),
    row("kill/0-created", created("kill-0-created", "kill", "ID", "0"), "host.rc", "host.err"),
    row("kill/0-stopped", stopped("kill-0-stopped", "kill", "ID", "0"), "host.rc", "host.err", "host.msg"),
    row("kill/--all-0", running("kill-all-0", "kill", "--all", "ID", "0"), "host.rc", "host.err"),
    row("kill/unknown-signal", running("kill-bad", "kill", "ID", "SIGNOPE"), "host.rc", "host.err"),
    row("kill/created", created("kill-created", "kill", "ID", "KILL"), "host.rc", "host.err"),
    row("kill/stopped", stopped("kill-stopped", "kill", "ID", "KILL"), "host.rc", "host.err"),
    row("kill/--all", running("kill-all", "kill", "--all", "ID", "KILL", args=("sh", "-c", "sleep 30 & sleep 30")),
        "host.rc", "host.err", "rc"),
    # delete
    row("delete/running", running("delete-running", "delete", "ID"), "host.rc", "host.err"),
    row("delete/created", created("delete-created", "delete", "ID"), "host.rc", "host.err"),
    row("delete/--force-running", running("delete-force", "delete", "--force", "ID"), "host.rc", "host.err"),
    row("delete/missing", created("delete-missing", "delete", "nosuch"), "host.rc", "host.err"),
    row("delete/missing---force", created("delete-missing-force", "delete", "--force", "nosuch"), "host.rc",
        "host.err"),
    # start
    row("start/running", running("start-running", "start", "ID"), "host.rc", "host.err"),
    row("start/stopped", stopped("start-stopped", "start", "ID"), "host.rc", "host.err"),
    # pause, resume
    row("pause/running", running("pause", "pause", "ID"), "host.rc", "host.err"),
    row("pause/created", created("pause-created", "pause", "ID"), "host.rc", "host.err"),
    row("pause/created-state", cli("pause-created-state", "created", ("pause", "ID"), ("list",)), *OUT),
    row("pause/created-then-start", cli("pause-created-start", "created", ("pause", "ID"), ("start", "ID")),
        "host.rc", "host.err", "host.msg"),
    row("pause/created-then-resume", cli("pause-created-resume", "created", ("pause", "ID"), ("resume", "ID"),
                                         ("list",)), *OUT),
    row("pause/paused", cli("pause-paused", "paused", ("pause", "ID")), "host.rc", "host.err"),
    row("resume/running", running("resume-running", "resume", "ID"), "host.rc", "host.err"),
    row("pause/stopped", stopped("pause-stopped", "pause", "ID"), "host.rc", "host.err"),
    # exec
    row("exec/basic", running("exec", "exec", "ID", *PROBE), *OUT),
    row("exec/--env", running("exec-env", "exec", "--env", "A=1", "ID", *PROBE), *OUT),
    row("exec/--cwd", running("exec-cwd", "exec", "--cwd", "/tmp", "ID", *PROBE), *OUT),
    row("exec/--cwd-missing", running("exec-cwd-missing", "exec", "--cwd", "/nosuch", "ID", *PROBE), *OUT),
    row("exec/--user", running("exec-user", "exec", "--user", "1000:1000", "ID", *PROBE), *OUT),
    row("exec/--user-uid-only", running("exec-uid", "exec", "--user", "1000", "ID", *PROBE), *OUT),
    row("exec/--additional-gids", running("exec-gids", "exec", "--user", "1:1", "--additional-gids", "10",
                                          "--additional-gids", "20", "ID", *PROBE), *OUT),
    row("exec/--cap", running("exec-cap", "exec", "--cap", "CAP_SYS_ADMIN", "ID", *PROBE), *OUT),
    row("exec/--no-new-privs", running("exec-nnp", "exec", "--no-new-privs", "ID", *PROBE,
                                       config=lambda c: c["process"].update(noNewPrivileges=False)), *OUT),
    row("exec/--process", running("exec-process", "exec", "--process", "BUNDLE/process.json", "ID",
                                  files={"process.json": PROCESS_JSON}), *OUT),
    row("exec/--process-with-affinity+scheduler+ioPriority", running(
        "exec-sched", "exec", "--process", "BUNDLE/process.json", "ID", files={"process.json": SCHED_JSON}), *OUT),
    row("exec/takes-the-container's-scheduler+ioPriority+memoryPolicy", running(
        "exec-inherits", "exec", "ID", "sh", "-c", "cut -d' ' -f19,41 /proc/self/stat; ionice; grep heap "
        "/proc/self/numa_maps | cut -d' ' -f2", config=lambda c: (
            c["process"].update(scheduler={"policy": "SCHED_BATCH", "nice": 4},
                                ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 5}),
            c["linux"].update(memoryPolicy={"mode": "MPOL_INTERLEAVE", "nodes": "0"}))), *OUT),
    row("exec/under-taskset", running("exec-taskset", "exec", "ID", "grep", "Cpus_allowed_list", "/proc/self/status",
                                      cpus={0}), *OUT),
    row("exec/--tty-without-console-socket", running("exec-tty", "exec", "--tty", "ID", "true"), "host.rc",
        "host.err"),
    row("exec/--detach+--pid-file", running("exec-detach", "exec", "--detach", "--pid-file", "BUNDLE/exec.pid", "ID",
                                            "sleep", "1"), *OUT),
    row("exec/--preserve-fds", running("exec-preserve", "exec", "--preserve-fds", "0", "ID", "true"), *OUT),
    row("exec/--cgroup-missing", running("exec-cgroup-missing", "exec", "--cgroup", "sub", "ID", "true"), "host.rc",
        "host.err"),
    row("exec/--cgroup", Scenario("exec-cgroup", edit(lambda c: c["process"].update(args=["sleep", "30"])),
                                  running=exec_in_sub_cgroup), "host.rc", "host.out"),
    row("exec/--ignore-paused-then-resume", Scenario("exec-paused", edit(lambda c: c["process"].update(
        args=["sleep", "30"])), running=exec_while_paused), "host.exec", "host.resume"),
    row("exec/paused-without---ignore-paused", cli("exec-paused-no", "paused", ("exec", "ID", "true")),
        "host.rc", "host.err"),
    row("exec/--apparmor", running("exec-apparmor", "exec", "--apparmor", "unconfined", "ID", "true"),
        "host.rc", "host.err"),
    row("exec/--process-label", running("exec-label", "exec", "--process-label", "system_u:system_r:x:s0", "ID",
                                        "true"), "host.rc", "host.err"),
    row("exec/missing-executable", running("exec-missing", "exec", "ID", "nosuch"), "host.rc", "host.err"),
    row("exec/stopped", stopped("exec-stopped", "exec", "ID", "true"), "host.rc", "host.err"),
    row("exec/exit-status", running("exec-exit", "exec", "ID", "sh", "-c", "exit 7"), "host.rc"),
    row("kill/KILL-in-the-host-pid-namespace", Scenario("kill-host-pidns", edit(lambda c: c["linux"].update(
        namespaces=[n for n in c["linux"]["namespaces"] if n["type"] != "pid"]) or c["process"].update(
        args=["sh", "-c", "sleep 30 & sleep 30"])), running=kill_and_count), "host.left"),
    # events, update
    row("events/--stats", running("events-stats", "events", "--stats", "ID"), "host.rc", "host.out",
        differs="events --stats: the keys and types of the stats object differ from runc 1.5's (see the row's diff)"),
    row("update/--memory", running("update-memory", "update", "--memory", "64M", "ID"), "host.rc", "host.err"),
    row("update/--pids-limit", running("update-pids", "update", "--pids-limit", "50", "ID"), "host.rc", "host.err"),
    row("update/--cpu-share+quota", running("update-cpu", "update", "--cpu-share", "512", "--cpu-quota", "20000",
                                            "ID"), "host.rc", "host.err"),
    row("update/-r", running("update-r", "update", "-r", "BUNDLE/resources.json", "ID",
                             files={"resources.json": '{"pids": {"limit": 30}, "memory": {"limit": 67108864}}'}),
        "host.rc", "host.err"),
    row("update/--memory--1-with-swap", running("update-unlimited", "update", "--memory", "-1", "ID", config=lambda c:
                                                c["linux"].update(resources={"memory": {"limit": 64 << 20,
                                                                                        "swap": 96 << 20}})),
        "host.rc", "host.err"),
    row("update/stopped", stopped("update-stopped", "update", "--memory", "64M", "ID"), "host.rc", "host.err"),
    # features
    row("features/keys", created("features", "features"), "host.rc", "host.out",
        differs="features: pyrt's lists differ from runc 1.5's (see the row's diff)"),
]


@pytest.mark.parametrize(("scenario", "keys"), ROWS)
def test_cli(differ, scenario, keys):
    compare(differ(scenario), keys)



def terminal_output(binary: str, workdir: Path) -> bytes:
    """What the pty master an engine gets through --console-socket reads of a terminal: true
    container's output."""
    import os
    import shutil
    import subprocess

    from conftest import BUSYBOX_ROOTFS, base_config
    from test_console import Receiver

    shutil.rmtree(workdir, ignore_errors=True)
    bundle = workdir / "bundle"
    bundle.mkdir(parents=True)
    config = base_config(["sh", "-c", "echo a; echo b"])
    config["process"]["terminal"] = True
    config["root"]["path"] = str(BUSYBOX_ROOTFS)
    (bundle / "config.json").write_text(json.dumps(config))
    rt, cid = [binary, "--root", str(workdir / "state")], "d" + uuid.uuid4().hex[:10]
    receiver = Receiver(workdir / "console.sock")
    try:
        create = subprocess.Popen([*rt, "create", "--bundle", str(bundle), "--console-socket", receiver.path, cid],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        master, _, _ = receiver.receive()
        assert create.wait(timeout=30) == 0
        subprocess.run([*rt, "start", cid], check=True, timeout=30)
        out = b""
        while b"b" not in out:
            chunk = os.read(master, 4096)
            if not chunk:
                break
            out += chunk
        os.close(master)
        return out
    finally:
        receiver.close()
        subprocess.run([*rt, "delete", "--force", cid], capture_output=True, timeout=30)


def test_terminal_output_line_endings(differ, tmp_path):
    """process.terminal with --console-socket: the bytes the engine reads from the pty master."""
    from conftest import BINARY

    ours, runc = (terminal_output(b, tmp_path / name) for name, b in (("pyrt", BINARY), ("runc", str(RUNC_1_5))))
    assert ours == runc, (ours, runc)


def test_run_with_a_terminal_passes_newlines_unchanged(differ, tmp_path):
    """`run` of a terminal: true container without --console-socket: the runtime relays the
    pty; what reaches its stdout (here a pipe) has the program's "\n", not the pty's "\r\n"."""
    from conftest import BINARY, BUSYBOX_ROOTFS

    out = {}
    for name, binary in (("pyrt", BINARY), ("runc", str(RUNC_1_5))):
        bundle = tmp_path / name
        bundle.mkdir()
        config = base_config(["printf", "a\nb\n"])
        config["root"]["path"] = str(BUSYBOX_ROOTFS)
        config["root"]["readonly"] = True
        config["process"]["terminal"] = True
        (bundle / "config.json").write_text(json.dumps(config))
        master, slave = os.openpty()  # runc wants its stdin a terminal
        try:
            r = subprocess.run([binary, "--root", str(tmp_path / f"{name}-state"), "run", "--bundle", str(bundle),
                                "t" + uuid.uuid4().hex[:8]], stdin=slave, capture_output=True, timeout=30)
        finally:
            os.close(master), os.close(slave)
        out[name] = (r.returncode, r.stdout.replace(b"\0", b""))  # runc writes a NUL byte first
    assert out["pyrt"] == out["runc"] == (0, b"a\nb\n"), out


def test_list_with_a_missing_root(differ, tmp_path):
    """`list` when --root does not exist (yet): what a fresh host shows."""
    from conftest import BINARY

    out = {}
    for name, binary in (("pyrt", BINARY), ("runc", str(RUNC_1_5))):
        r = subprocess.run([binary, "--root", str(tmp_path / name / "nosuch"), "list"], capture_output=True, text=True,
                           timeout=30)
        out[name] = (r.returncode, r.stdout.split(), len(r.stderr.splitlines()))
    assert out["pyrt"] == out["runc"], out
