"""exec: a new process joining a running container, through the command line (runc is the oracle)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import reap

NAMESPACES = ("mnt", "pid", "net", "ipc", "uts")


def running(rt, bundle, *args: str) -> tuple[str, int]:
    """A started container running `args` (default: a long sleep); returns (id, init pid)."""
    bundle.args(*(args or ("sleep", "1000")))
    cid = rt.create(bundle)
    rt.ok("start", cid)
    return cid, rt.wait_status(cid, "running")["pid"]


def container_pids(rt, cid: str) -> list[int]:
    return json.loads(rt.ok("ps", "--format", "json", cid).stdout)


def detached(rt, tmp_path, *args: str) -> subprocess.CompletedProcess:
    """`exec --detach`: the process keeps the runtime's stdio, so give it files, not pipes."""
    with open(tmp_path / "out", "w+") as out, open(tmp_path / "err", "w+") as err:
        r = subprocess.run(rt.cmd("exec", "--detach", *args), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                           timeout=30)
        err.seek(0)
        assert r.returncode == 0, err.read()
    return r


def nspids(pid: int) -> list[str]:
    """A process's pid in each pid namespace it is in, the host's first."""
    status = Path(f"/proc/{pid}/status").read_text()
    return [line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")][0]


def wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        reap()
        time.sleep(0.02)
    assert not os.path.exists(f"/proc/{pid}"), f"process {pid} still there"


def test_exec_output_and_exit_status(rt, bundle):
    cid, _ = running(rt, bundle)
    r = rt("exec", cid, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (r.returncode, r.stdout) == (7, "out\n")
    assert "err" in r.stderr
    assert rt("exec", cid, "sh", "-c", "kill -9 $$").returncode == 137
    r = rt("exec", cid, "sh", "-c", "read x; echo got:$x", input="hello\n")
    assert r.stdout == "got:hello\n"


def test_exec_forwards_signals(rt, bundle, tmp_path):
    """Signals sent to a foreground `exec` go to its process (conmon and shells rely on it)."""
    cid, _ = running(rt, bundle)
    with open(tmp_path / "log", "w") as log:
        p = subprocess.Popen(rt.cmd("exec", cid, "sh", "-c", "trap 'exit 42' USR1; echo up; "
                                    "while :; do sleep 0.05; done"),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True)
        assert p.stdout.readline() == "up\n"  # the trap is set
        p.send_signal(signal.SIGUSR1)
        assert p.wait(timeout=20) == 42
        p.stdout.close()


def test_exec_joins_every_namespace_and_the_cgroup(rt, bundle, tmp_path):
    cid, init = running(rt, bundle)
    pid_file = tmp_path / "exec.pid"
    detached(rt, tmp_path, "--pid-file", str(pid_file), cid, "sleep", "1000")
    pid = int(pid_file.read_text())  # bare digits, as conmon and the shim read it
    try:
        for ns in NAMESPACES:
            assert os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/{init}/ns/{ns}"), ns
        with open(f"/proc/{pid}/cgroup") as a, open(f"/proc/{init}/cgroup") as b:
            assert a.read() == b.read()  # every hierarchy (v1 ones too on a hybrid host)
        assert os.readlink(f"/proc/{pid}/root") == "/"  # resolved in its mount namespace: the rootfs
        assert os.stat(f"/proc/{pid}/root/bin/busybox").st_ino == os.stat(f"/proc/{init}/root/bin/busybox").st_ino
        assert sorted(container_pids(rt, cid)) == sorted([init, pid])
        # a pid inside the container's pid namespace, whose pid 1 is the container's init
        nspid = nspids(pid)
        assert nspid[0] == str(pid) and len(nspid) == 2 and int(nspid[1]) > 1
    finally:
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)
    r = rt("exec", cid, "cat", "/proc/1/cmdline")
    assert r.stdout.split("\0")[:2] == ["sleep", "1000"]


def test_exec_detach_returns_once_the_process_runs(rt, bundle, tmp_path):
    cid, _ = running(rt, bundle)
    pid_file = tmp_path / "pid"
    start = time.monotonic()
    detached(rt, tmp_path, "--pid-file", str(pid_file), cid, "sh", "-c", "sleep 1000; true")
    assert time.monotonic() - start < 20
    pid = int(pid_file.read_text())
    assert Path(f"/proc/{pid}/cmdline").read_text().split("\0")[:2] == ["sh", "-c"]  # exec'd already
    rt.ok("kill", "--all", cid, "KILL")
    wait_gone(pid)


def test_exec_user_groups_env_cwd(rt, bundle):
    bundle.process["env"].append("KEEP=1")
    cid, _ = running(rt, bundle)
    r = rt("exec", "--user", "1000:1001", "--additional-gids", "44", "--additional-gids", "45", "--cwd", "/tmp",
           "--env", "FOO=bar", "--env", "KEEP=2", cid,
           "sh", "-c", "id -u; id -g; id -G; pwd; echo $FOO $KEEP; env | grep -c ^KEEP=")
    assert r.returncode == 0, r.stderr
    uid, gid, groups, cwd, env, count = r.stdout.split("\n")[:6]
    assert (uid, gid, cwd, env, count) == ("1000", "1001", "/tmp", "bar 2", "1")
    assert set(groups.split()) == {"1001", "44", "45"}
    # uid alone keeps the container's gid
    assert rt("exec", "-u", "7", cid, "sh", "-c", "echo $(id -u):$(id -g)").stdout == "7:0\n"


def caps(text: str) -> dict[str, int]:
    return {line.split(":")[0]: int(line.split()[1], 16) for line in text.splitlines() if line.startswith("Cap")}


CONTAINER_CAPS = (1 << 29) | (1 << 5) | (1 << 10)  # AUDIT_WRITE, KILL, NET_BIND_SERVICE (conftest)


def test_exec_capabilities(rt, bundle):
    cid, _ = running(rt, bundle)
    got = caps(rt.ok("exec", cid, "cat", "/proc/self/status").stdout)
    assert got == {"CapInh": 0, "CapPrm": CONTAINER_CAPS, "CapEff": CONTAINER_CAPS, "CapBnd": CONTAINER_CAPS,
                   "CapAmb": 0}  # CapInh 0: CVE-2022-29162
    got = caps(rt.ok("exec", "--cap", "CAP_SYS_ADMIN", cid, "cat", "/proc/self/status").stdout)
    assert got["CapEff"] == got["CapBnd"] == CONTAINER_CAPS | (1 << 21)
    assert got["CapInh"] == 0
    got = caps(rt.ok("exec", "-u", "1000", cid, "cat", "/proc/self/status").stdout)
    assert got["CapEff"] == got["CapPrm"] == 0 and got["CapBnd"] == CONTAINER_CAPS


def test_exec_no_new_privs(rt, bundle):
    bundle.process["noNewPrivileges"] = False
    cid, _ = running(rt, bundle)
    nnp = "grep NoNewPrivs /proc/self/status"
    assert rt.ok("exec", cid, "sh", "-c", nnp).stdout.split() == ["NoNewPrivs:", "0"]
    assert rt.ok("exec", "--no-new-privs", cid, "sh", "-c", nnp).stdout.split() == ["NoNewPrivs:", "1"]


def test_exec_process_json(rt, bundle, tmp_path):
    """What conmon and the containerd shim send: args[0] relative (found on the container's
    PATH), no capabilities (the container's are used), rlimits of its own."""
    cid, _ = running(rt, bundle)
    proc = {
        "args": ["sh", "-c", "echo $0 $X; pwd; id -u; ulimit -n; grep CapEff /proc/self/status"],
        "env": ["PATH=/bin", "X=from-json"], "cwd": "/dev", "user": {"uid": 5, "gid": 6},
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 77, "hard": 77}], "terminal": False,
    }
    path = tmp_path / "process.json"
    path.write_text(json.dumps(proc))
    r = rt("exec", "--process", str(path), cid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:4] == ["sh from-json", "/dev", "5", "77"]
    assert int(r.stdout.split("\n")[4].split()[1], 16) == 0  # uid 5: no effective capabilities


@pytest.mark.pyrt_only
def test_exec_process_json_defaults_to_the_container_rlimits(rt, bundle, tmp_path):
    """process.json without rlimits: the container's apply (runc gives its own, the caller's)."""
    cid, _ = running(rt, bundle)
    path = tmp_path / "process.json"
    path.write_text(json.dumps({"args": ["sh", "-c", "ulimit -n"], "cwd": "/", "env": ["PATH=/bin"]}))
    assert rt.ok("exec", "-p", str(path), cid).stdout == "1024\n"  # conftest's config


def test_exec_passes_only_stdio(rt, bundle, tmp_path):
    """The exec'd process holds fds 0-2 and nothing else of the runtime's (seen from the host:
    listing them from inside would add the lister's own)."""
    cid, _ = running(rt, bundle)
    pid_file = tmp_path / "pid"
    detached(rt, tmp_path, "--pid-file", str(pid_file), cid, "sleep", "1000")
    pid = int(pid_file.read_text())
    try:
        assert sorted(os.listdir(f"/proc/{pid}/fd")) == ["0", "1", "2"]
    finally:
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)


@pytest.mark.pyrt_only
def test_exec_preserve_fds_and_listen_fds(rt, bundle, tmp_path):
    """--preserve-fds N passes exactly fds 3..3+N-1, with LISTEN_FDS and LISTEN_PID as
    systemd's protocol has them (runc sets neither for exec)."""
    cid, _ = running(rt, bundle)
    a, b, pid_file = tmp_path / "a", tmp_path / "b", tmp_path / "pid"
    a.write_text("A\n")
    b.write_text("B\n")
    with open(a) as fa, open(b) as fb, open(tmp_path / "leak", "w") as leak, \
            open(tmp_path / "out", "w") as out:
        # the runtime gets fds 3 and 4 to pass on, and fd 9 that it must not pass on
        setup = "import os, sys; [os.dup2(int(a), b) for a, b in zip(sys.argv[1:4], (3, 4, 9))]; " \
                "os.execvp(sys.argv[4], sys.argv[4:])"
        cmd = rt.cmd("exec", "-d", "--pid-file", str(pid_file), "--preserve-fds", "2", cid, "sleep", "1000")
        r = subprocess.run([sys.executable, "-c", setup, str(fa.fileno()), str(fb.fileno()), str(leak.fileno()),
                            *cmd], stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=30,
                           pass_fds=(fa.fileno(), fb.fileno(), leak.fileno()))
    assert r.returncode == 0, (tmp_path / "out").read_text()
    pid = int(pid_file.read_text())
    try:
        assert sorted(os.listdir(f"/proc/{pid}/fd")) == ["0", "1", "2", "3", "4"]  # not fd 9
        assert os.readlink(f"/proc/{pid}/fd/3") == str(a) and os.readlink(f"/proc/{pid}/fd/4") == str(b)
        env = Path(f"/proc/{pid}/environ").read_text().split("\0")
        assert "LISTEN_FDS=2" in env and f"LISTEN_PID={nspids(pid)[-1]}" in env
    finally:
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)


def test_exec_into_a_created_container(rt, bundle):
    bundle.args("sleep", "1000")
    cid = rt.create(bundle)
    assert rt("exec", cid, "sh", "-c", "cat /proc/1/cmdline; echo; echo ok").stdout.endswith("ok\n")
    assert rt.state(cid)["status"] == "created"


@pytest.mark.pyrt_only
def test_parked_init_is_not_dumpable(rt, bundle):
    """pid 1 of a created container is a pyrt-init stage: the container's root cannot read its
    fds or environment (runc's parked init allows both)."""
    bundle.args("sleep", "1000")
    cid = rt.create(bundle)
    links = " ".join(f"/proc/1/{name}" for name in ("exe", "cwd", "root", "fd/0", "fd/1", "fd/2"))
    r = rt("exec", cid, "sh", "-c", f"for f in {links}; do readlink $f || echo denied; done")
    assert r.stdout.split() == ["denied"] * 6
    for path in ("/proc/1/environ", "/proc/1/mem"):
        r = rt("exec", cid, "head", "-c", "1", path)
        assert r.returncode == 1 and "Permission denied" in r.stderr, r.stderr


@pytest.mark.pyrt_only
def test_exec_follows_the_container_not_the_bundle(rt, bundle):
    """exec uses what the container was created with, even if config.json changed since (runc
    reads the bundle again)."""
    bundle.process["env"].append("WHICH=old")
    cid, _ = running(rt, bundle)
    bundle.process["env"][-1] = "WHICH=new"
    bundle.write()
    assert rt.ok("exec", cid, "sh", "-c", "echo $WHICH").stdout == "old\n"


def test_exec_in_paused_container(rt, bundle):
    cid, _ = running(rt, bundle)
    rt.ok("pause", cid)
    r = rt("exec", cid, "true")
    assert r.returncode == 255 and "paused" in r.stderr
    rt.ok("resume", cid)
    assert rt("exec", cid, "true").returncode == 0


# ----------------------------------------------------------------------------- bad inputs


def one_line_error(r: subprocess.CompletedProcess, status: int = 255) -> str:
    assert r.returncode == status, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_exec_bad_process_json(rt, bundle, tmp_path):
    cid, init = running(rt, bundle)
    path = tmp_path / "process.json"
    for text in ("{bad", "[]", json.dumps({"cwd": "/"}), json.dumps({"args": ["true"], "cwd": "relative"}),
                 json.dumps({"args": ["true"], "cwd": "/", "user": {"uid": -1}})):
        path.write_text(text)
        one_line_error(rt("exec", "--process", str(path), cid))
    one_line_error(rt("exec", "--process", str(tmp_path / "missing.json"), cid))
    assert container_pids(rt, cid) == [init]  # nothing was started


@pytest.mark.pyrt_only
def test_exec_bad_input_messages(rt, bundle, tmp_path):
    cid, _ = running(rt, bundle)
    path = tmp_path / "process.json"
    path.write_text("{bad")
    assert f"{path}: invalid JSON" in one_line_error(rt("exec", "--process", str(path), cid))
    path.write_text(json.dumps({"args": ["true"], "cwd": "relative"}))
    assert f"{path}: cwd: must be an absolute path" in one_line_error(rt("exec", "-p", str(path), cid))
    assert "--user" in one_line_error(rt("exec", "-u", "root", cid, "true"))
    assert "--cwd" in one_line_error(rt("exec", "--cwd", "tmp", cid, "true"))
    assert "CAP_NOPE" in one_line_error(rt("exec", "--cap", "CAP_NOPE", cid, "true"))
    assert "AppArmor" in one_line_error(rt("exec", "--apparmor", "x", cid, "true"))


def test_exec_into_stopped_or_unknown_container(rt, bundle):
    bundle.args("true")
    cid = rt.create(bundle)
    rt.ok("start", cid)
    rt.wait_status(cid, "stopped")
    assert "stopped" in one_line_error(rt("exec", cid, "true"))
    assert "does not exist" in one_line_error(rt("exec", "nosuchcontainer", "true"))


def test_exec_missing_command(rt, bundle):
    cid, init = running(rt, bundle)
    line = one_line_error(rt("exec", cid, "/no/such/program"))
    assert "/no/such/program" in line
    line = one_line_error(rt("exec", cid, "nosuchprogram"))
    assert "executable file not found" in line
    one_line_error(rt("exec", cid, "/etc"))  # a directory
    one_line_error(rt("exec", "--cwd", "/no/such/dir", cid, "true"))
    one_line_error(rt("exec", cid))  # no command at all
    assert container_pids(rt, cid) == [init]


def test_exec_tty_detach_needs_console_socket(rt, bundle):
    cid, _ = running(rt, bundle)
    assert "console socket" in one_line_error(rt("exec", "-t", "-d", cid, "true"))
    assert "console socket" in one_line_error(rt("exec", "--console-socket", "/nonexistent", cid, "true"))


def test_exec_unwritable_pid_file(rt, bundle, tmp_path):
    cid, init = running(rt, bundle)
    one_line_error(rt("exec", "--pid-file", str(tmp_path / "no" / "dir" / "pid"), cid, "sleep", "1000"))
    deadline = time.monotonic() + 10
    while container_pids(rt, cid) != [init] and time.monotonic() < deadline:
        reap()
        time.sleep(0.02)
    assert container_pids(rt, cid) == [init]  # the process started for it is gone again


def test_exec_home_from_the_container_passwd(rt, bundle):
    """No HOME in the env: the user's home from the container's /etc/passwd, else / (runc's)."""
    cid, _ = running(rt, bundle)
    home = "env | grep ^HOME="
    assert rt.ok("exec", cid, "sh", "-c", home).stdout == "HOME=/root\n"
    assert rt.ok("exec", "-u", "65534", cid, "sh", "-c", home).stdout == "HOME=/\n"
    assert rt.ok("exec", "-u", "4242", cid, "sh", "-c", home).stdout == "HOME=/\n"
    assert rt.ok("exec", "--env", "HOME=/tmp", cid, "sh", "-c", home).stdout == "HOME=/tmp\n"
