"""Rootless podman running the runtime under test (issue 10): a user this module creates, with
/etc/subuid and /etc/subgid ranges, runs, execs into and removes containers.

podman runs the runtime as uid 0 of its own user namespace (`podman unshare`: the user mapped to
0, its subordinate ids above), so the runtime must know it is not the host's root (runc's
`--rootless auto`): its state goes under $XDG_RUNTIME_DIR, it makes no cgroup, /dev's nodes are
the host's, bound. The image store is vfs and the network none (no fuse-overlayfs, no
slirp4netns). Afterwards nothing is left: the user, its ranges (both files restored byte for
byte), its storage, its processes (those of its uid and of its subordinate ids).
`ENGINE_RUNTIME=/work/shared/bin/runc-1.5` runs the same scenarios with runc.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import engines
import pytest
from conftest import reap

BUSYBOX = "localhost/busybox:latest"
#: The user's subordinate ids (newuidmap/newgidmap map them above its own id)
SUB_BASE, SUB_SIZE = 510000, 65536
#: The runtime's default root under $XDG_RUNTIME_DIR (runc's, crun's, or pyrt's)
STATE_DIR = next((n for n in ("runc", "crun") if engines.RUNTIME_NAME.startswith(n)), "pyrt")


def _uids(pid: str) -> set[int]:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return {int(u) for u in line.split()[1:]}
    return set()


def processes_of(uid: int) -> list[str]:
    """The processes of the user or of its subordinate ids (a container's), as "pid comm"."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            uids = _uids(pid)
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if any(u == uid or SUB_BASE <= u < SUB_BASE + SUB_SIZE for u in uids):
            found.append(f"{pid} {comm}")
    return found


class RootlessPodman:
    """podman as the user, everything it writes under `base` (world-searchable, the user's):
    storage (vfs), XDG_RUNTIME_DIR, HOME, TMPDIR, its configuration."""

    def __init__(self, user: pwd.struct_passwd, base: Path) -> None:
        self.user, self.base = user, base
        for d in ("home", "run", "tmp"):
            (base / d).mkdir()
        (base / "storage.conf").write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{base}/storage"\nrunroot = "{base}/run/containers"\n')
        (base / "containers.conf").write_text(
            '[containers]\ndefault_ulimits = ["nofile=20000:20000"]\nnetns = "none"\n'
            '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
            f'events_logfile_path = "{base}/events.log"\n'
            f'runtime = "{engines.RUNTIME_NAME}"\n'
            f'runtime_supports_json = ["crun", "runc", "pyrt", "{engines.RUNTIME_NAME}"]\n'
            f'[engine.runtimes]\n"{engines.RUNTIME_NAME}" = ["{engines.RUNTIME}"]\n')
        self.env = {"PATH": engines.BASE_PATH, "HOME": str(base / "home"), "TMPDIR": str(base / "tmp"),
                    "XDG_RUNTIME_DIR": str(base / "run"), "USER": user.pw_name,
                    "CONTAINERS_CONF": str(base / "containers.conf"),
                    "CONTAINERS_STORAGE_CONF": str(base / "storage.conf")}
        subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(base)], check=True)

    def __call__(self, *args: str, timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess:
        argv = ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}", "--init-groups",
                "podman", "--runtime", engines.RUNTIME, *args]
        # output through files: conmon and the container inherit podman's stdio
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            r = subprocess.run(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=self.env, cwd=self.base,
                               timeout=timeout)
            out.seek(0)
            err.seek(0)
            r = subprocess.CompletedProcess(argv, r.returncode, out.read(), err.read())
        if check:
            assert r.returncode == 0, f"podman {' '.join(args)}: {r.stderr}"
        return r

    def container_ids(self) -> list[str]:
        return self("ps", "--all", "--quiet", "--no-trunc", check=True).stdout.split()

    def runtime_state(self) -> list[str]:
        """What the runtime keeps under $XDG_RUNTIME_DIR (pyrt's default root there)."""
        root = self.base / "run" / STATE_DIR
        return sorted(os.listdir(root)) if root.is_dir() else []


@pytest.fixture(scope="module")
def user():
    """The user and its ranges: /etc/subuid and /etc/subgid are put back exactly as they were
    (useradd may add a range of its own: ours replaces it), the user removed with its processes."""
    files = [Path("/etc/subuid"), Path("/etc/subgid")]
    saved = {p: p.read_bytes() if p.exists() else None for p in files}
    name = "pyrtpd" + uuid.uuid4().hex[:6]
    subprocess.run(["useradd", "-M", "-s", "/bin/sh", name], check=True)
    try:
        for p in files:
            p.write_bytes((saved[p] or b"") + f"{name}:{SUB_BASE}:{SUB_SIZE}\n".encode())
        yield pwd.getpwnam(name)
    finally:
        uid = pwd.getpwnam(name).pw_uid
        subprocess.run(["pkill", "-KILL", "-u", str(uid)], check=False)  # only this user's, by its uid
        for _ in range(50):
            reap()
            if not processes_of(uid):
                break
            time.sleep(0.05)
        subprocess.run(["userdel", name], check=True)
        for p, data in saved.items():
            if data is None:
                p.unlink(missing_ok=True)
            else:
                p.write_bytes(data)


@pytest.fixture(scope="module")
def podman_store(user):
    """The user's podman with the busybox image (imported from the local rootfs, never pulled);
    at the end its storage is reset and removed, and only podman's pause process (the holder of
    its user namespace, killed then) may be left of the user's processes."""
    base = Path(tempfile.mkdtemp(prefix="pyrt-rlpodman-"))
    base.chmod(0o755)
    try:
        p = RootlessPodman(user, base)
        reach = subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups",
                                "test", "-x", engines.RUNTIME])
        assert reach.returncode == 0, f"{engines.RUNTIME}: the user cannot execute the runtime (a 0700 directory?)"
        tar = base / "tmp" / "rootfs.tar"
        tar.write_bytes(engines.rootfs_tar(engines.BUSYBOX_ROOTFS))
        tar.chmod(0o644)
        p("import", "--quiet", "--change", 'CMD ["/bin/sh"]', str(tar), BUSYBOX, check=True)
        tar.unlink()
        yield p
        p("system", "reset", "--force", check=True)
        reap()
        left = [x for x in processes_of(user.pw_uid) if not x.endswith(" catatonit")]
        assert not left, f"processes left: {left}"
        assert not (base / "storage").exists() or not any((base / "storage").rglob("*")), "storage left"
    finally:
        shutil.rmtree(base)


@pytest.fixture
def podman(podman_store, user):
    """The module's podman; after the test no container of podman's, no runtime state, no process
    but podman's pause process."""
    yield podman_store
    for _ in range(100):  # conmon's cleanup runs after the container exits
        reap()
        left = [f"container {c}" for c in podman_store.container_ids()]
        left += [f"{STATE_DIR} state {s}" for s in podman_store.runtime_state()]
        left += [f"process {x}" for x in processes_of(user.pw_uid) if not x.endswith(" catatonit")]
        if not left:
            break
        time.sleep(0.1)
    assert not left, "left behind: " + ", ".join(left)


def test_run_rm(podman, user):
    r = podman("run", "--rm", BUSYBOX, "sh", "-c", "id -u; cat /proc/self/uid_map; stat -c '%t:%T %U' /dev/null")
    assert r.returncode == 0, r.stderr
    lines = [line.split() for line in r.stdout.splitlines()]
    assert lines[0] == ["0"]
    # podman's namespace: root is the user, the subordinate ids follow
    assert lines[1] == ["0", str(user.pw_uid), "1"] and lines[2] == ["1", str(SUB_BASE), str(SUB_SIZE)]
    assert lines[3] == ["1:3", "nobody"]  # the host's /dev/null, bound (its root is unmapped here)


def test_run_exec_rm(podman, user):
    cid = podman("run", "-d", "--name", "rl1", BUSYBOX, "sleep", "1000", check=True).stdout.strip()
    st = json.loads(podman("inspect", "--type", "container", "rl1", check=True).stdout)[0]["State"]
    assert st["Status"] == "running"
    assert _uids(str(st["Pid"])) == {user.pw_uid}  # the container's root is the user on the host
    assert podman.runtime_state() == [cid]  # the runtime's default root there: $XDG_RUNTIME_DIR/pyrt (runc's: /runc)
    r = podman("exec", "rl1", "sh", "-c", "id -u; cat /proc/1/cmdline")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[0] == "0" and r.stdout.split("\n")[1].split("\0")[0] == "sleep"
    r = podman("exec", "--user", "1000", "rl1", "sh", "-c", "id -u")  # a subordinate id on the host
    assert (r.returncode, r.stdout) == (0, "1000\n"), r.stderr
    assert podman("exec", "rl1", "sh", "-c", "exit 4").returncode == 4
    podman("rm", "--force", "--time", "0", "rl1", check=True)
    assert podman.container_ids() == []


def test_exit_code_and_missing_command(podman):
    assert podman("run", "--rm", BUSYBOX, "sh", "-c", "exit 3").returncode == 3
    r = podman("run", "--rm", BUSYBOX, "/nonexistent")
    assert r.returncode == 127, r.stderr
