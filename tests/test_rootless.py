"""pyrt run by a user, not root (--rootless auto): a test user this module creates and removes
runs the whole lifecycle on a `spec --rootless` config (its uid mapped to the container's root,
no network namespace, no cgroup: none is delegated to it here). runc 1.5 is the oracle for the
tests not marked pyrt_only."""

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

import pytest
from conftest import BINARY, BUSYBOX_ROOTFS, IS_RUNC, reap


@pytest.fixture(scope="module")
def user():
    """A user of its own for the module (no home, no password), removed with all it owns."""
    name = "pyrtrl" + uuid.uuid4().hex[:6]
    subprocess.run(["useradd", "-M", "-s", "/bin/sh", name], check=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)  # only this user's, by its uid
        subprocess.run(["userdel", name], check=True)


@pytest.fixture
def home(user):
    """A world-searchable directory the user owns: its bundle (busybox, `spec --rootless`) and
    its XDG_RUNTIME_DIR. Checked empty of state and processes afterwards."""
    top = Path(tempfile.mkdtemp(prefix="pyrt-rootless-"))
    top.chmod(0o755)
    shutil.copytree(BUSYBOX_ROOTFS, top / "bundle" / "rootfs", symlinks=True)
    (top / "run").mkdir()
    subprocess.run(["chown", "-hR", f"{user.pw_uid}:{user.pw_gid}", str(top)], check=True)
    yield top
    left: list[str] = []
    for _ in range(50):  # the container's processes end up our children (subreaper): reap them first
        reap()
        left = subprocess.run(["pgrep", "-u", str(user.pw_uid)], capture_output=True, text=True).stdout.split()
        if not left:
            break
        time.sleep(0.05)
    state = [p.name for p in (top / "run").rglob("*") if p.is_dir() and p.parent.name in ("pyrt", "runc", "state")]
    subprocess.run(["pkill", "-KILL", "-u", str(user.pw_uid)], check=False)
    time.sleep(0.1)
    shutil.rmtree(top)
    assert not left, f"processes left: {left}"
    assert not state, f"state left: {state}"


def as_user(user, home: Path, *args: str, root: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    """The runtime as the user. Its output goes through files: a container started in the
    background inherits them (a pipe would stay open as long as it runs)."""
    argv = [BINARY, *(("--root", str(home / "run" / "state")) if root else ()), *args]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        r = subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups",
                            "env", f"XDG_RUNTIME_DIR={home / 'run'}", *argv], stdout=out, stderr=err,
                           timeout=timeout, cwd=home / "bundle", stdin=subprocess.DEVNULL)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(r.args, r.returncode, out.read(), err.read())


def spec(user, home: Path, *args: str) -> None:
    r = as_user(user, home, "spec", "--rootless", root=False)
    assert r.returncode == 0, r.stderr
    path = home / "bundle" / "config.json"
    c = json.loads(path.read_text())
    c["process"]["terminal"] = False
    c["process"]["args"] = list(args)
    path.write_text(json.dumps(c))


def test_spec_rootless_maps_the_caller(user, home):
    spec(user, home, "true")
    c = json.loads((home / "bundle" / "config.json").read_text())
    assert c["linux"]["uidMappings"] == [{"containerID": 0, "hostID": user.pw_uid, "size": 1}]
    assert c["linux"]["gidMappings"] == [{"containerID": 0, "hostID": user.pw_gid, "size": 1}]
    assert {n["type"] for n in c["linux"]["namespaces"]} == {"pid", "ipc", "uts", "mount", "user"}
    assert "resources" not in c["linux"]


def test_run_as_root_of_its_namespace(user, home):
    spec(user, home, "sh", "-c", "id -u; cat /proc/self/uid_map; echo $$; touch /dev/shm/x && echo ok")
    r = as_user(user, home, "run", "r1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "0", str(user.pw_uid), "1", "1", "ok"]


def test_lifecycle(user, home):
    spec(user, home, "sleep", "60")
    assert as_user(user, home, "create", "c1").returncode == 0
    assert as_user(user, home, "start", "c1").returncode == 0
    st = json.loads(as_user(user, home, "state", "c1").stdout)
    assert st["status"] == "running"
    assert os.stat(f"/proc/{st['pid']}").st_uid == user.pw_uid  # the host sees the user's process
    r = as_user(user, home, "exec", "c1", "sh", "-c", "id -u; readlink /proc/self/ns/pid")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "0" and r.stdout.split()[1] == os.readlink(f"/proc/{st['pid']}/ns/pid")
    assert as_user(user, home, "kill", "c1", "KILL").returncode == 0
    for _ in range(100):
        if json.loads(as_user(user, home, "state", "c1").stdout)["status"] == "stopped":
            break
        time.sleep(0.05)
    r = as_user(user, home, "delete", "c1")
    assert r.returncode == 0, r.stderr
    assert as_user(user, home, "state", "c1").returncode != 0


def test_delete_force_of_a_running_container(user, home):
    spec(user, home, "sleep", "60")
    assert as_user(user, home, "run", "-d", "c2").returncode == 0
    r = as_user(user, home, "delete", "--force", "c2")
    assert r.returncode == 0, r.stderr


def test_cannot_touch_what_root_owns(user, home):
    """Root inside, the user outside: a host file of root's stays root's."""
    victim = home / "rootfile"
    victim.write_text("root's\n")
    spec(user, home, "sh", "-c", "echo x > /mnt/f; chmod 777 /mnt/f; echo done")
    c = json.loads((home / "bundle" / "config.json").read_text())
    c["mounts"].append({"destination": "/mnt/f", "type": "bind", "source": str(victim), "options": ["bind"]})
    (home / "bundle" / "config.json").write_text(json.dumps(c))
    r = as_user(user, home, "run", "c3")
    assert "done" in r.stdout
    assert victim.read_text() == "root's\n" and victim.stat().st_mode & 0o777 == 0o644


@pytest.mark.pyrt_only
def test_state_under_xdg_runtime_dir_by_default(user, home):
    spec(user, home, "sleep", "60")
    r = as_user(user, home, "create", "d1", root=False)
    assert r.returncode == 0, r.stderr
    assert (home / "run" / "pyrt" / "d1" / "state.json").exists()
    assert as_user(user, home, "delete", "--force", "d1", root=False).returncode == 0
    assert not (home / "run" / "pyrt" / "d1").exists()


@pytest.mark.pyrt_only
def test_limits_without_a_cgroup_are_refused_and_leave_nothing(user, home):
    spec(user, home, "true")
    path = home / "bundle" / "config.json"
    c = json.loads(path.read_text())
    c["linux"]["resources"] = {"pids": {"limit": 10}}
    path.write_text(json.dumps(c))
    r = as_user(user, home, "create", "e1")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "linux.resources: rootless and no writable cgroup: cannot apply pids limits" in r.stderr
    assert not list((home / "run").rglob("e1"))


@pytest.mark.pyrt_only
def test_pause_says_why_not(user, home):
    spec(user, home, "sleep", "60")
    assert as_user(user, home, "run", "-d", "p1").returncode == 0
    r = as_user(user, home, "pause", "p1")
    assert r.returncode == 1 and "a rootless container without a cgroup has none to pause" in r.stderr
    assert as_user(user, home, "delete", "--force", "p1").returncode == 0


@pytest.mark.skipif(IS_RUNC, reason="pyrt's flag")
def test_rootless_false_keeps_root_default(user, home):
    r = as_user(user, home, "--rootless", "false", "list", root=False)
    assert r.returncode != 0 and "/run/pyrt" in r.stderr


@pytest.fixture
def subids(user):
    """/etc/subuid and /etc/subgid ranges for the user (newuidmap and newgidmap check them), put
    back as they were after the test."""
    saved = {}
    for path in (Path("/etc/subuid"), Path("/etc/subgid")):
        saved[path] = path.read_text() if path.exists() else None
        path.write_text((saved[path] or "") + f"{user.pw_name}:300000:65536\n")
    yield 300000
    for path, text in saved.items():
        if text is None:
            path.unlink()
        else:
            path.write_text(text)


def test_subordinate_ids_through_newuidmap(user, home, subids):
    """Mappings beyond the user's own ids go through newuidmap/newgidmap (the user's /etc/subuid
    range): a process of uid 1000 inside, setgroups kept."""
    spec(user, home, "sh", "-c", "cat /proc/self/uid_map; id -u; id -G; cat /proc/self/setgroups")
    path = home / "bundle" / "config.json"
    c = json.loads(path.read_text())
    for key, own in (("uidMappings", user.pw_uid), ("gidMappings", user.pw_gid)):
        c["linux"][key] = [{"containerID": 0, "hostID": own, "size": 1},
                           {"containerID": 1, "hostID": subids, "size": 65536}]
    # runc 1.5 refuses additionalGids here ("cannot set any additional groups in a rootless container")
    c["process"]["user"] = {"uid": 1000, "gid": 1000, **({} if IS_RUNC else {"additionalGids": [2000]})}
    path.write_text(json.dumps(c))
    r = as_user(user, home, "run", "s1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0].split() == ["0", str(user.pw_uid), "1"] and lines[1].split() == ["1", str(subids), "65536"]
    assert lines[2] == "1000"
    if not IS_RUNC:  # runc 1.5 leaves the groups as they were (0 stays in them)
        assert set(lines[3].split()) == {"1000", "2000"}
    assert lines[4] == "allow"
