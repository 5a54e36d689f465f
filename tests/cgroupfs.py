"""Finding a container's cgroup files from the outside, and the limit scenarios both cgroup
test modules run: test_cgroups.py on this host (v1 controllers on a hybrid host), and
test_cgroups_v2.py in a pure cgroup v2 system (the VM).

Files are located through /proc/PID/cgroup of the container's init, as the kernel reports
them, never through pyrt's state: the same checks hold for runc.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from conftest import wait_for


def _is_cgroup2(path: str) -> bool:
    return os.path.exists(f"{path}/cgroup.controllers") and not os.path.exists(f"{path}/cgroup.clone_children")


V2_HOST = _is_cgroup2("/sys/fs/cgroup")
UNIFIED = Path("/sys/fs/cgroup" if V2_HOST else "/sys/fs/cgroup/unified")


def v2_controllers() -> set[str]:
    return set((UNIFIED / "cgroup.subtree_control").read_text().split())


def v1_mounts() -> dict[str, Path]:
    out: dict[str, Path] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] == "cgroup" and fields[3] == "/":
                for opt in fields[sep + 3].split(","):
                    out.setdefault(opt, Path(fields[4]))
    return out


class CgFiles:
    """The files of the cgroups a process is in: per controller the v1 hierarchy's directory
    when the host has one, else the cgroup2 directory."""

    def __init__(self, pid: int) -> None:
        mounts = v1_mounts()
        self.v1: dict[str, Path] = {}
        self.v2 = UNIFIED
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            hid, controllers, path = line.split(":", 2)
            if hid == "0":
                self.v2 = UNIFIED / path.lstrip("/")
            else:
                for c in controllers.split(","):
                    if c in mounts:
                        self.v1[c] = mounts[c] / path.lstrip("/")

    def path(self, controller: str, v1_file: str, v2_file: str) -> Path:
        return self.v1[controller] / v1_file if controller in self.v1 else self.v2 / v2_file

    def read(self, controller: str, v1_file: str, v2_file: str) -> str:
        return self.path(controller, v1_file, v2_file).read_text().strip()

    def keyed(self, controller: str, v1_file: str, v2_file: str) -> dict[str, int]:
        out = {}
        for line in self.read(controller, v1_file, v2_file).splitlines():
            key, _, value = line.partition(" ")
            out[key] = int(value)
        return out

    def oom_kills(self) -> int:
        return self.keyed("memory", "memory.oom_control", "memory.events").get("oom_kill", 0)


def started(rt, bundle) -> tuple[str, int, CgFiles]:
    """create + start; the id, the init's pid and its cgroup files (read before it can exit)."""
    cid = rt.create(bundle)
    pid = rt.state(cid)["pid"]
    files = CgFiles(pid)
    rt.ok("start", cid)
    return cid, pid, files


def _open_writer(fifo: Path) -> int | None:
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # ENXIO: no reader yet
        return None


def output(bundle, name: str = "stdout") -> str:
    return (bundle.path / name).read_text()


def finish(rt, cid: str) -> None:
    rt("kill", cid, "KILL")
    rt.wait_status(cid, "stopped", timeout=30)
    rt.ok("delete", cid)


# ----------------------------------------------------------------------------- scenarios


def memory_limit_oom_kills(rt, bundle) -> None:
    """A process allocating past the limit is OOM-killed and the kernel counts it."""
    bundle.config["linux"]["resources"] = {"memory": {"limit": 24 << 20, "swap": 24 << 20}}
    bundle.args("sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1; echo dd=$?")
    cid, _, files = started(rt, bundle)
    rt.wait_status(cid, "stopped", timeout=60)
    assert "dd=137" in output(bundle), output(bundle, "stderr")
    assert files.read("memory", "memory.limit_in_bytes", "memory.max") == str(24 << 20)
    assert files.oom_kills() >= 1
    rt.ok("delete", cid)


def pids_limit_stops_forks(rt, bundle) -> None:
    bundle.config["linux"]["resources"] = {"pids": {"limit": 6}}
    bundle.args("sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do echo $i; sleep 30 & done; echo spawned")
    cid, _, files = started(rt, bundle)
    rt.wait_status(cid, "stopped", timeout=30)  # sh exits when a fork fails
    assert "can't fork" in output(bundle, "stderr")
    assert "spawned" not in output(bundle) and int(output(bundle).split()[-1]) == 6  # sh + 5 sleeps
    assert files.read("pids", "pids.max", "pids.max") == "6"
    rt.ok("delete", cid)


def cpu_quota_throttles(rt, bundle) -> None:
    bundle.config["linux"]["resources"] = {"cpu": {"quota": 10000, "period": 100000}}
    bundle.args("sh", "-c", "while :; do :; done")
    cid, _, files = started(rt, bundle)
    throttled = wait_for(lambda: files.keyed("cpu", "cpu.stat", "cpu.stat").get("nr_throttled", 0), what="throttling")
    assert throttled > 0
    assert files.read("cpu", "cpu.cfs_quota_us", "cpu.max").split()[0] in ("10000",)
    finish(rt, cid)


LOOP_CONTROL = {"path": "/dev/loop-control", "type": "c", "major": 10, "minor": 237, "fileMode": 0o666}
#: containerd's default rules (ctr run): deny all, then the devices every container has.
CTR_DEVICES = [{"allow": False, "access": "rwm"}] + [
    {"allow": True, "type": "c", "major": ma, **({"minor": mi} if mi >= 0 else {}), "access": "rwm"}
    for ma, mi in ((1, 3), (1, 8), (1, 7), (5, 0), (1, 5), (1, 9), (5, 1), (136, -1), (5, 2))]


def device_rules_deny_and_allow(rt, bundle) -> None:
    """ctr's rules: the standard devices work, a device node without a rule cannot be opened;
    with an allow rule it can."""
    script = ("echo x > /dev/null && head -c 3 /dev/zero | wc -c && head -c 3 /dev/urandom | wc -c && echo std-ok;"
              " exec 3</dev/loop-control && echo opened")
    bundle.config["linux"]["devices"] = [LOOP_CONTROL]
    bundle.config["linux"]["resources"] = {"devices": CTR_DEVICES}
    bundle.args("sh", "-c", script).write()
    r = rt("run", "--bundle", str(bundle.path), rt.new_id())
    assert "std-ok" in r.stdout, r.stderr
    assert "opened" not in r.stdout and "Operation not permitted" in r.stderr, r.stderr
    bundle.config["linux"]["resources"] = {
        "devices": [*CTR_DEVICES, {"allow": True, "type": "c", "major": 10, "minor": 237, "access": "rw"}]}
    bundle.write()
    r = rt("run", "--bundle", str(bundle.path), rt.new_id())
    assert "opened" in r.stdout, r.stderr


def freeze_stops_processes(rt, bundle) -> None:
    bundle.args("sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.02; done")
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/tmp"]
    tmp = bundle.path / "tmp"
    tmp.mkdir()
    bundle.config["mounts"].append({"destination": "/tmp", "type": "bind", "source": str(tmp), "options": ["bind"]})
    cid, pid, files = started(rt, bundle)
    counter = tmp / "n"
    wait_for(lambda: counter.exists() and counter.read_text().strip(), what="the counter")
    rt.ok("pause", cid)
    assert rt.state(cid)["status"] == "paused"
    before = counter.read_text()
    time.sleep(0.5)
    assert counter.read_text() == before
    # cgroup2's freezer (runc on hybrid hosts uses the v1 one)
    v1_frozen = "freezer" in files.v1 and files.read("freezer", "freezer.state", "") == "FROZEN"
    assert v1_frozen or "frozen 1" in (files.v2 / "cgroup.events").read_text()
    rt.ok("resume", cid)
    assert rt.state(cid)["status"] == "running"
    wait_for(lambda: counter.read_text() != before, what="the counter to move again")
    finish(rt, cid)


def update_changes_and_enforces(rt, bundle) -> None:
    """Flags after the id; new values in the files; the new pids limit stops forks."""
    bundle.config["linux"]["resources"] = {"pids": {"limit": 100}, "memory": {"limit": 64 << 20}}
    fifo = bundle.path / "go"
    os.mkfifo(fifo)
    bundle.config["mounts"].append({"destination": "/tmp/go", "type": "bind", "source": str(fifo),
                                    "options": ["bind"]})
    bundle.args("sh", "-c", "read go < /tmp/go; for i in 1 2 3 4 5 6 7 8; do echo $i; sleep 30 & done; echo spawned")
    cid, _, files = started(rt, bundle)
    rt.ok("update", cid, "--pids-limit", "5", "--memory", str(32 << 20))
    assert files.read("pids", "pids.max", "pids.max") == "5"
    assert files.read("memory", "memory.limit_in_bytes", "memory.max") == str(32 << 20)
    r = rt("update", "--resources", "-", cid, input=json.dumps({"pids": {"limit": 4}}))
    assert r.returncode == 0, r.stderr
    assert files.read("pids", "pids.max", "pids.max") == "4"
    fd = wait_for(lambda: _open_writer(fifo), what="the container to read the fifo")
    os.write(fd, b"go\n")
    os.close(fd)
    rt.wait_status(cid, "stopped", timeout=30)
    assert "can't fork" in output(bundle, "stderr")
    assert int(output(bundle).split()[-1]) == 4  # sh + 3 sleeps
    rt.ok("delete", cid)


def stats_match_files(rt, bundle) -> None:
    bundle.config["linux"]["resources"] = {"pids": {"limit": 50}, "memory": {"limit": 48 << 20}}
    bundle.args("sleep", "100")
    cid, _, files = started(rt, bundle)

    def pids() -> int:
        return int(files.read("pids", "pids.current", "pids.current"))

    before = pids()  # right after start, the runtime's own init may still be on its way out
    r = rt.ok("events", "--stats", cid)
    after = pids()
    event = json.loads(r.stdout)
    assert event["type"] == "stats" and event["id"] == cid
    data = event["data"]
    assert data["memory"]["usage"]["limit"] == 48 << 20
    assert data["memory"]["usage"]["usage"] > 0
    assert data["pids"]["limit"] == 50 and data["pids"]["current"] in (before, after), (data["pids"], before, after)
    assert data["cpu"]["usage"]["total"] > 0
    finish(rt, cid)


def cgroup_mount_shows_own_cgroup(rt, bundle, read_only: bool = True) -> None:
    """With a cgroup namespace, a read-only `cgroup` mount is the container's own cgroup (and,
    with `read_only`, no directory can be made at its top)."""
    bundle.config["linux"]["namespaces"].append({"type": "cgroup"})
    bundle.config["linux"]["resources"] = {"pids": {"limit": 42}}
    bundle.config["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                                    "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]})
    pids_max = "/sys/fs/cgroup/pids.max" if V2_HOST else "/sys/fs/cgroup/pids/pids.max"
    bundle.args("sh", "-c", f"cat {pids_max}; cat /proc/self/cgroup; mkdir /sys/fs/cgroup/x && echo writable").write()
    r = rt("run", "--bundle", str(bundle.path), rt.new_id())
    lines = r.stdout.splitlines()
    assert lines[0] == "42", r.stdout + r.stderr
    assert all(line.endswith(":/") for line in lines[1:] if line != "writable"), r.stdout
    assert "writable" not in r.stdout or not read_only


def create_while_frozen(rt, bundle, thaw) -> tuple[int | None, str]:
    """`create` where the container's cgroup would be frozen: (its exit status, None if it hung
    for 20 s; its stderr). `thaw()` runs after either, so nothing stays stuck. stderr goes to a
    file, not a pipe: a frozen init would hold a pipe open."""
    bundle.write()
    with open(bundle.path / "stderr", "w+") as err:
        create = subprocess.Popen(rt.cmd("create", "--bundle", str(bundle.path), rt.new_id()),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        try:
            code = create.wait(timeout=20)
        except subprocess.TimeoutExpired:
            code = None
        thaw()
        create.wait()
        err.seek(0)
        return code, err.read()
