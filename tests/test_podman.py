"""podman (through conmon) running pyrt end to end: issue 3 §5.

One private podman (image store, run dir, config, cgroup parent) per module; images are made
here from the busybox and hello-world rootfs with `podman import`. After each test nothing of its
containers may be left: podman's record, the runtime's state dir, mounts, processes, cgroups.
The runtime is tests/engines.py's RUNTIME: `ENGINE_RUNTIME=/usr/sbin/runc` checks the scenarios
themselves against runc.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import engines
import pytest

pytestmark = pytest.mark.pyrt_only

BUSYBOX = "localhost/busybox:latest"
HELLO = "localhost/hello:latest"


@pytest.fixture(scope="module")
def podman_store(tmp_path_factory):
    p = engines.Podman(tmp_path_factory.mktemp("podman"))
    try:
        p.import_image(engines.BUSYBOX_ROOTFS, BUSYBOX, 'CMD ["/bin/sh"]')
        p.import_image(engines.HELLO_ROOTFS, HELLO, 'ENTRYPOINT ["/hello"]')
        yield p
    finally:
        left = p.close()
        assert not left, "podman left:\n  " + "\n  ".join(left)


@pytest.fixture
def podman(podman_store):
    """The module's podman; fails the test if its containers left anything behind."""
    podman_store.new_container_ids()
    yield podman_store
    leaks = podman_store.leaks(podman_store.new_container_ids())
    if leaks:
        pytest.fail("leaked:\n  " + "\n  ".join(leaks))


def state(podman, name: str) -> dict:
    return podman.inspect(name)["State"]


def test_run_rm_echo(podman):
    r = podman("run", "--rm", BUSYBOX, "echo", "hi")
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    assert podman.container_ids() == []


def test_default_seccomp_profile_applies(podman):
    # podman always sends its default profile; the container's processes run under the filter
    r = podman("run", "--rm", BUSYBOX, "grep", "-E", "^(Seccomp|NoNewPrivs):", "/proc/self/status")
    assert r.returncode == 0, r.stderr
    assert "Seccomp:\t2" in r.stdout, r.stdout


def test_cleanup_environment():
    # podman's cleanup process runs `RUNTIME delete --force ID` with no PATH and no HOME, stdio
    # on /dev/null; an already deleted container is a success
    r = subprocess.run(["env", "-i", engines.RUNTIME, "delete", "--force", "no-such-container"], cwd="/",
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    assert r.returncode == 0


def test_exit_code_propagates(podman):
    r = podman("run", "--rm", BUSYBOX, "sh", "-c", "exit 3")
    assert r.returncode == 3, r.stderr


def test_missing_command_is_127(podman):
    # podman reads the runtime's JSON log (--log-format=json) and maps its message to 127
    r = podman("run", "--rm", BUSYBOX, "/nonexistent")
    assert r.returncode == 127, r.stderr
    assert '"/nonexistent"' in r.stderr and "no such file or directory" in r.stderr, r.stderr
    # the message came from the JSON log record (a text log would reach the user as "level=error ...")
    assert "OCI runtime attempted to invoke a command that was not found" in r.stderr, r.stderr
    assert "level=error" not in r.stderr, r.stderr


def test_not_executable_is_126(podman):
    r = podman("run", "--rm", BUSYBOX, "/etc/passwd")
    assert r.returncode == 126, r.stderr
    assert "permission denied" in r.stderr and "OCI permission denied" in r.stderr, r.stderr


def test_read_only_with_tmpfs_copyup(podman):
    # --read-only and --tmpfs give tmpfs mounts with runc's "tmpcopyup": they start with a copy of
    # the directory they cover
    r = podman("run", "--rm", "--read-only", "--tmpfs", "/etc", BUSYBOX, "sh", "-c",
               "touch /x 2>/dev/null && echo root-writable; touch /tmp/y /etc/y && head -1 /etc/passwd")
    assert (r.returncode, r.stdout) == (0, "root:x:0:0:root:/root:/bin/sh\n"), r.stderr
    assert not (engines.BUSYBOX_ROOTFS / "etc" / "y").exists()


def test_privileged(podman):
    # every capability, no seccomp, the host's devices (given with their st_mode file type bits)
    r = podman("run", "--rm", "--privileged", BUSYBOX, "sh", "-c",
               "grep -E '^(CapEff|Seccomp):' /proc/self/status; readlink /dev/ptmx; test -c /dev/kmsg && echo kmsg")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[1:] == ["Seccomp:\t0", "pts/ptmx", "kmsg", ""], r.stdout
    assert int(r.stdout.split()[1], 16) == int(Path("/proc/self/status").read_text().split("CapBnd:")[1].split()[0], 16)


def test_detached_exec_stop_rm(podman):
    cid = podman.ok("run", "-d", "--name", "det", BUSYBOX, "sleep", "1000").stdout.strip()
    st = state(podman, "det")
    assert st["Status"] == "running" and st["Pid"] > 0

    r = podman("exec", "det", "echo", "from-exec")
    assert (r.returncode, r.stdout) == (0, "from-exec\n"), r.stderr
    assert podman("exec", "det", "sh", "-c", "exit 5").returncode == 5
    r = podman("exec", "det", "cat", "/proc/1/cmdline")  # the exec'd process is in the container's pid ns
    assert r.stdout.split("\0")[0] == "sleep", r.stdout

    # exec -it under a terminal: an interactive shell in the container
    t = podman.pty("exec", "-it", "det", "sh")
    try:
        t.expect("# ")
        t.send("tty; echo $((6*7))\n")
        t.expect("42")
        t.send("exit 4\n")
        assert t.wait() == 4, t.text
    finally:
        t.close()
    assert "/dev/pts/" in t.text, t.text

    # stop: TERM (ignored by a pid 1 without a handler), then KILL once the 2 s timeout is over
    start = time.monotonic()
    podman.ok("stop", "-t", "2", "det")
    assert time.monotonic() - start >= 1.9
    st = state(podman, "det")
    assert (st["Status"], st["ExitCode"]) == ("exited", 137)
    podman.ok("rm", "det")
    assert cid not in podman.container_ids()


def test_stop_sends_term_first(podman):
    podman.ok("run", "-d", "--name", "term", BUSYBOX, "sh", "-c",
              "trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.1; done")
    engines.wait_for(lambda: "ready" in podman("logs", "term").stdout, what="the trap")
    start = time.monotonic()
    podman.ok("stop", "-t", "30", "term")
    assert time.monotonic() - start < 15  # the TERM handler ran: no wait for the KILL
    assert state(podman, "term")["ExitCode"] == 0
    assert "got-term" in podman.ok("logs", "term").stdout
    podman.ok("rm", "term")


def test_run_interactive_terminal(podman):
    t = podman.pty("run", "-it", "--rm", BUSYBOX, "sh", rows=33, cols=101)
    try:
        t.expect("# ")
        t.send("tty; stty size; echo $((6*7))\n")
        t.expect("42")
        t.send("exit 6\n")
        assert t.wait() == 6, t.text
    finally:
        t.close()
    assert "/dev/pts/0" in t.text and "33 101" in t.text, t.text


def test_kill_usr1(podman):
    podman.ok("run", "-d", "--name", "usr1", BUSYBOX, "sh", "-c",
              "trap 'echo got-usr1' USR1; echo ready; while :; do sleep 0.1; done")
    engines.wait_for(lambda: "ready" in podman("logs", "usr1").stdout, what="the trap")
    podman.ok("kill", "-s", "USR1", "usr1")  # podman: RT kill ID 10
    engines.wait_for(lambda: "got-usr1" in podman("logs", "usr1").stdout, what="the USR1 handler")
    assert state(podman, "usr1")["Status"] == "running"
    podman.ok("rm", "--force", "--time", "0", "usr1")


def test_pause_unpause(podman):
    podman.ok("run", "-d", "--name", "pz", BUSYBOX, "sh", "-c",
              "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done")
    counter = Path(f"/proc/{state(podman, 'pz')['Pid']}/root/tmp/count")
    engines.wait_for(lambda: counter.exists() and counter.read_text().strip(), what="the counter")

    podman.ok("pause", "pz")
    assert state(podman, "pz")["Status"] == "paused"
    frozen = counter.read_text()
    time.sleep(0.5)
    assert counter.read_text() == frozen  # nothing runs while paused

    podman.ok("unpause", "pz")
    assert state(podman, "pz")["Status"] == "running"
    engines.wait_for(lambda: counter.read_text() != frozen, what="the counter to move again")
    podman.ok("rm", "--force", "--time", "0", "pz")


def _cgroup_file(pid: int, controller: str, v1_name: str, v2_name: str) -> str:
    """A file of the cgroup `pid` is in, as the kernel has it (v1 hierarchy, else cgroup2)."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path(f"/sys/fs/cgroup/{controller}{path}/{v1_name}").read_text().strip()
    path = next(line.split(":", 2)[2] for line in lines if line.startswith("0::"))
    return Path(f"/sys/fs/cgroup{path}/{v2_name}").read_text().strip()


def test_update_memory(podman):
    podman.ok("run", "-d", "--name", "upd", BUSYBOX, "sleep", "1000")
    pid = state(podman, "upd")["Pid"]
    assert _cgroup_file(pid, "pids", "pids.max", "pids.max") == "2048"  # podman's default pids limit
    podman.ok("update", "--memory", "256m", "upd")  # podman: RT update --resources=FILE ID
    assert _cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max") == str(256 * 1024 * 1024)
    podman.ok("rm", "--force", "--time", "0", "upd")


def test_hello_world_host_network(podman):
    port = engines.free_port(8080)
    podman.ok("run", "-d", "--name", "hello", "--network=host", "-e", f"HELLO_ADDR=127.0.0.1:{port}", HELLO)
    assert engines.http_get(f"http://127.0.0.1:{port}/") == "Hello World!\n"
    podman.ok("stop", "-t", "10", "hello")  # the server stops cleanly on TERM
    assert state(podman, "hello")["ExitCode"] == 0
    podman.ok("rm", "hello")


def test_uidmap_user_namespace(podman):
    """podman --uidmap/--gidmap: a user namespace with those mappings (its rootfs chowned by podman)."""
    r = podman("run", "--rm", "--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536", BUSYBOX,
               "sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /tmp/x && echo ok")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "100000", "65536"] * 2 + ["0", "ok"]


@pytest.fixture
def containers_subids():
    """A "containers" range in /etc/subuid and /etc/subgid (podman --userns=auto takes from it),
    added for the test when missing and the files put back after."""
    saved = {}
    for path in (Path("/etc/subuid"), Path("/etc/subgid")):
        text = path.read_text() if path.exists() else None
        saved[path] = text
        if not any(line.startswith("containers:") for line in (text or "").splitlines()):
            path.write_text((text or "") + "containers:2000000000:10000000\n")
    yield
    for path, text in saved.items():
        if text is None:
            path.unlink()
        else:
            path.write_text(text)


def test_userns_auto(podman, containers_subids):
    """podman --userns=auto picks a range of /etc/subuid's "containers" entry."""
    r = podman("run", "--rm", "--userns=auto:size=65536", BUSYBOX, "cat", "/proc/self/uid_map")
    assert r.returncode == 0, r.stderr
    inside, host, size = r.stdout.split()
    assert inside == "0" and int(host) > 0 and size == "65536"
