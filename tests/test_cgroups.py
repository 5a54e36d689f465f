"""cgroups on this host: every limit enforced where its controller lives (v1 hierarchies on a
hybrid host, cgroup2 on a v2 host), device rules, pause/resume, kill --all, ps, update, events,
the cgroup mount, and the errors for what cannot be applied. The same scenarios run in a pure
cgroup v2 system from test_cgroups_v2.py."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import cgroupfs
import pytest
from cgroupfs import CTR_DEVICES, UNIFIED, V2_HOST, finish, output, started
from conftest import IS_RUNC, OLD_RUNC, Runtime, wait_for


def test_memory_limit_oom_kills(rt, bundle):
    cgroupfs.memory_limit_oom_kills(rt, bundle)


def test_pids_limit_stops_forks(rt, bundle):
    cgroupfs.pids_limit_stops_forks(rt, bundle)


def test_cpu_quota_throttles(rt, bundle):
    cgroupfs.cpu_quota_throttles(rt, bundle)


def test_device_rules(rt, bundle):
    cgroupfs.device_rules_deny_and_allow(rt, bundle)


def test_pause_resume(rt, bundle):
    cgroupfs.freeze_stops_processes(rt, bundle)


def test_update(rt, bundle):
    cgroupfs.update_changes_and_enforces(rt, bundle)


def test_events_stats(rt, bundle):
    cgroupfs.stats_match_files(rt, bundle)


def test_cgroup_mount_in_cgroup_namespace(rt, bundle):
    cgroupfs.cgroup_mount_shows_own_cgroup(rt, bundle, read_only=False)


@pytest.mark.pyrt_only  # runc 1.5 leaves the v1 tmpfs at /sys/fs/cgroup writable (its subsystem mounts are ro)
def test_cgroup_mount_is_read_only_on_a_hybrid_host(rt, bundle):
    cgroupfs.cgroup_mount_shows_own_cgroup(rt, bundle)


def test_podman_resources(rt, bundle):
    """podman's linux.resources: deny all devices, pids 2048; /dev/null stays usable."""
    bundle.config["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}], "pids": {"limit": 2048}}
    bundle.args("sh", "-c", "echo hi > /dev/null && cat /proc/self/cgroup")
    cid, _, files = started(rt, bundle)
    rt.wait_status(cid, "stopped")
    assert files.read("pids", "pids.max", "pids.max") == "2048"
    rt.ok("delete", cid)
    assert "0::/" in output(bundle), output(bundle, "stderr")


def test_ctr_defaults(rt, bundle):
    """containerd's default: its device list and cpu.shares 1024 (on v2: the default weight)."""
    bundle.config["linux"]["resources"] = {"devices": CTR_DEVICES, "cpu": {"shares": 1024}}
    bundle.args("sleep", "100")
    cid, _, files = started(rt, bundle)
    if "cpu" in files.v1:
        assert files.read("cpu", "cpu.shares", "") == "1024"
    elif not OLD_RUNC:  # runc 1.1 still uses the linear formula (39)
        assert (files.v2 / "cpu.weight").read_text().strip() == "100"
    finish(rt, cid)


def test_ps_and_kill_all(rt, bundle):
    bundle.args("sh", "-c", "sleep 100 & sleep 100 & wait")
    cid, pid, files = started(rt, bundle)
    procs = wait_for(lambda: len(files.v2.joinpath("cgroup.procs").read_text().split()) == 3 and
                     files.v2.joinpath("cgroup.procs").read_text().split(), what="three processes")
    listed = json.loads(rt.ok("ps", "--format", "json", cid).stdout)
    assert sorted(listed) == sorted(int(p) for p in procs) and pid in listed
    table = rt.ok("ps", cid).stdout.splitlines()
    assert "PID" in table[0] and len(table) == 4
    rt.ok("kill", "--all", cid, "KILL")
    rt.wait_status(cid, "stopped")
    wait_for(lambda: not any(_alive(p) for p in listed), what="every process to die")
    rt.ok("delete", cid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_events_stream_reports_oom(rt, bundle, tmp_path):
    bundle.config["linux"]["resources"] = {"memory": {"limit": 24 << 20, "swap": 24 << 20}}
    bundle.args("sh", "-c", "sleep 1; dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 100")
    cid = rt.create(bundle)
    out = tmp_path / "events"
    with open(out, "w") as f:
        events = subprocess.Popen(rt.cmd("events", "--interval", "300ms", cid), stdout=f, stderr=subprocess.STDOUT)
    try:
        rt.ok("start", cid)
        wait_for(lambda: '"oom"' in out.read_text(), what="an oom event")
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert {"type": "oom", "id": cid} in [{k: e[k] for k in ("type", "id")} for e in lines]
        assert any(e["type"] == "stats" and e["data"]["memory"]["usage"]["limit"] == 24 << 20 for e in lines)
    finally:
        finish(rt, cid)
        events.wait(timeout=10) if not OLD_RUNC else events.kill()  # runc 1.1's outlives it
        events.wait()


# ----------------------------------------------------------------------------- pyrt only


@pytest.mark.pyrt_only
def test_mknod_of_a_disk_is_denied(rt, bundle):
    for kind in ("bounding", "effective", "permitted"):
        bundle.process["capabilities"][kind].append("CAP_MKNOD")
    bundle.config["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    bundle.args("sh", "-c", "mknod /dev/null2 c 1 3 && echo x > /dev/null2 && echo null-ok; mknod /dev/sda b 8 0 "
                "&& echo disk-made").write()
    r = rt("run", "--bundle", str(bundle.path), rt.new_id())
    assert "null-ok" in r.stdout, r.stderr
    assert "disk-made" not in r.stdout and "Operation not permitted" in r.stderr


BAD = [
    ({"unified": {"nosuch.max": "1"}}, "linux.resources.unified.nosuch.max: nosuch is not a cgroup v2 controller"),
    ({"unified": {"../pids.max": "1"}}, "linux.resources.unified.../pids.max: not a cgroup file name"),
    ({"unified": {"pids/../../pids.max": "1"}}, "not a cgroup file name"),
    ({"unified": {"..": "1"}}, "not a cgroup file name"),
    ({"unified": {"cgroup.procs": "1"}}, "linux.resources.unified.cgroup.procs: only"),
    ({"unified": {"pids.max": 5}}, "linux.resources.unified.pids.max: the value must be a string"),
    ({"memory": {"limit": -5}}, "linux.resources.memory.limit: -5 is out of range"),
    ({"memory": {"limit": "1G"}}, "linux.resources.memory.limit: '1G' is not an integer"),
    ({"memory": {"limit": 1 << 20, "swap": 1 << 19}}, "linux.resources.memory.swap"),
    ({"memory": {"limitt": 1}}, "linux.resources.memory.limitt: unknown field"),
    ({"pids": {"limit": 10**12}}, "linux.resources.pids.limit"),
    ({"cpu": {"shares": 1}}, "linux.resources.cpu.shares: 1 is out of range"),
    ({"cpu": {"period": 10}}, "linux.resources.cpu.period"),
    ({"cpu": {"quota": -7}}, "linux.resources.cpu.quota"),
    ({"cpu": {"cpus": "0-a"}}, "linux.resources.cpu.cpus"),
    ({"devices": [{"allow": True, "access": "rwx"}]}, "linux.resources.devices[0].access"),
    ({"devices": [{"type": "c"}]}, "linux.resources.devices[0].allow: is required"),
    ({"blockIO": {"weight": 5000}}, "linux.resources.blockIO.weight"),
    ({"hugepageLimits": [{"pageSize": "2XB", "limit": 1}]}, "linux.resources.hugepageLimits[0].pageSize"),
    ({"sprockets": {}}, "linux.resources.sprockets: unknown field"),
]


@pytest.mark.pyrt_only
@pytest.mark.parametrize("resources,message", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_resources_are_refused(rt, bundle, resources, message):
    bundle.config["linux"]["resources"] = resources
    cid = rt.new_id()
    bundle.write()
    r = rt("create", "--bundle", str(bundle.path), cid)
    assert r.returncode == 1
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert rt("state", cid).returncode == 1


@pytest.mark.pyrt_only
@pytest.mark.parametrize("path", ["../../escape", "/a/../../b", "x/..", "system.slice:pyrt:x"])
def test_bad_cgroups_path(rt, bundle, path):
    bundle.config["linux"]["cgroupsPath"] = path
    bundle.write()
    r = rt("create", "--bundle", str(bundle.path), rt.new_id())
    assert r.returncode == 1 and "linux.cgroupsPath" in r.stderr, r.stderr


@pytest.mark.pyrt_only
def test_unavailable_controller_is_an_error(rt, bundle):
    bundle.config["linux"]["resources"] = {"network": {"classID": 0x100001}}
    bundle.write()
    r = rt("create", "--bundle", str(bundle.path), rt.new_id())
    if "net_cls" not in cgroupfs.v1_mounts():
        assert r.returncode == 1 and "linux.resources.network.classID" in r.stderr and "net_cls" in r.stderr, r.stderr
    if not V2_HOST and "hugetlb" not in cgroupfs.v1_mounts() and "hugetlb" not in cgroupfs.v2_controllers():
        bundle.config["linux"]["resources"] = {"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}
        bundle.write()
        r = rt("create", "--bundle", str(bundle.path), rt.new_id())
        assert r.returncode == 1 and "hugepageLimits[0]" in r.stderr and "hugetlb" in r.stderr, r.stderr


@pytest.mark.pyrt_only
def test_update_bad_input_writes_nothing(rt, bundle):
    bundle.config["linux"]["resources"] = {"pids": {"limit": 100}}
    bundle.args("sleep", "100")
    cid, _, files = started(rt, bundle)
    for args, message in ((("--memory", "lots"), "--memory"), (("--pids-limit", "-5"), "pids.limit"),
                          (("--pids-limit", "7", "--cpu-shares", "1"), "cpu.shares"),
                          (("--cpu-period", "x"), "--cpu-period")):
        r = rt("update", cid, *args)
        assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = rt("update", "-r", "-", cid, input=json.dumps({"pids": {"limit": 7}, "unified": {"../x": "1"}}))
    assert r.returncode == 1 and "unified" in r.stderr
    assert files.read("pids", "pids.max", "pids.max") == "100"
    finish(rt, cid)
    r = rt("update", "--pids-limit", "5", cid)
    assert r.returncode == 1


def test_update_stopped_container(rt, bundle):
    cid = rt.create(bundle.args("true"))
    rt.ok("start", cid)
    rt.wait_status(cid, "stopped")
    r = rt("update", "--pids-limit", "5", cid)
    assert r.returncode == 1 and "container not running" in r.stderr
    rt.ok("delete", cid)


@pytest.mark.pyrt_only
def test_created_parents_are_removed_joined_cgroups_kept(rt, bundle):
    parent = f"pyrt-test-{uuid.uuid4().hex[:8]}"
    joined = f"pyrt-join-{uuid.uuid4().hex[:8]}"
    bases = [UNIFIED, *dict.fromkeys(p for c, p in cgroupfs.v1_mounts().items() if not V2_HOST)]
    bundle.config["linux"]["cgroupsPath"] = f"/{parent}/sub/ctr"
    cid, _, files = started(rt, bundle.args("sleep", "100"))
    assert files.v2 == UNIFIED / parent / "sub" / "ctr"
    assert all(p.parts[-3:] == (parent, "sub", "ctr") for p in files.v1.values())
    finish(rt, cid)
    assert not any((b / parent).exists() for b in bases)

    for b in bases:
        (b / joined).mkdir()
        for name in ("cpuset.cpus", "cpuset.mems"):  # a v1 cpuset needs them before anyone joins
            if (b / name).exists():
                (b / joined / name).write_text((b / name).read_text())
    try:
        bundle.config["linux"]["cgroupsPath"] = f"/{joined}"
        cid, _, files = started(rt, bundle)
        assert files.v2 == UNIFIED / joined
        finish(rt, cid)
        assert all((b / joined).exists() for b in bases)
    finally:
        for b in bases:
            (b / joined).rmdir()


@pytest.mark.pyrt_only
def test_bpf_device_filter_on_the_kernel(tmp_path):
    """The v2 device program (native/bpf.c) on this kernel's cgroup2 tree: last match wins,
    allow needs every access bit, deny any; replacing it detaches the old program."""
    from pyrt import cgwrites

    class Cg:
        dir = str(UNIFIED / f"pyrt-test-bpf-{uuid.uuid4().hex[:8]}")

    os.mkdir(Cg.dir)
    try:
        rules = ((False, "a", -1, -1, "rwm"), (True, "c", 1, 3, "rwm"), (True, "c", 1, 5, "r"),
                 (False, "c", 1, 3, "w"))
        cgwrites._device_filter(Cg, cgwrites.Write("test.devices", 2, "devices", "", rules))
        script = (f"echo $$ > {Cg.dir}/cgroup.procs; cat /dev/null && echo null-read; true > /dev/null && "
                  "echo null-write; head -c1 /dev/zero | wc -c; true > /dev/zero && echo zero-write; "
                  "true < /dev/full && echo full")
        r = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
        assert r.stdout.split() == ["null-read", "1"], r
        allow_all = ((True, "a", -1, -1, "rwm"),)
        cgwrites._device_filter(Cg, cgwrites.Write("test.devices", 2, "devices", "", allow_all))
        r = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
        assert r.stdout.split() == ["null-read", "null-write", "1", "zero-write", "full"], r
    finally:
        time.sleep(0.05)
        os.rmdir(Cg.dir)


def test_cgroup_is_in_place_before_the_process_runs(rt, bundle):
    """The first thing the container's process sees is its own cgroup, in every hierarchy."""
    bundle.args("cat", "/proc/self/cgroup")
    cid, pid, files = started(rt, bundle)
    rt.wait_status(cid, "stopped")
    rt.ok("delete", cid)
    seen = output(bundle).splitlines()
    assert seen and all(line.endswith(cid) for line in seen), seen
    assert len(seen) == 1 + len(set(files.v1.values()))


def test_cgroup2_mount_type(rt, bundle):
    """A `cgroup2` mount is the container's own cgroup2 directory (its processes only), on a
    hybrid host as on a v2 one."""
    bundle.config["linux"]["namespaces"].append({"type": "cgroup"})
    bundle.config["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup2", "source": "cgroup2",
                                    "options": ["nosuid", "noexec", "nodev", "ro"]})
    bundle.args("sh", "-c", "grep ' /sys/fs/cgroup ' /proc/self/mountinfo; cat /sys/fs/cgroup/cgroup.procs").write()
    r = rt("run", "--bundle", str(bundle.path), rt.new_id())
    assert r.returncode == 0, r.stderr
    mount, *procs = r.stdout.splitlines()
    assert " - cgroup2 " in mount and " ro," in mount, mount
    assert procs == ["1"], procs  # sh exec'd cat: the only process, pid 1 in its namespaces


def test_half_made_cpuset_parent_gets_filled(rt, bundle):
    """A v1 cpuset parent that a concurrent (or killed) create made but has not given CPUs and
    memory nodes yet refuses every task (ENOSPC): create waits for it, and fills it itself if it
    stays empty, since pyrt made it (it carries pyrt's mark)."""
    cpuset = cgroupfs.v1_mounts().get("cpuset")
    if cpuset is None:
        pytest.fail("this hybrid-host test needs the v1 cpuset hierarchy")
    parent = f"par{uuid.uuid4().hex[:8]}"
    half_made = cpuset / "pyrt" / parent
    half_made.mkdir(parents=True)
    for d in (cpuset / "pyrt", half_made):
        if not os.listxattr(d):
            os.setxattr(d, "trusted.pyrt.created", b"1")
    assert not (half_made / "cpuset.cpus").read_text().strip()
    cid = rt.new_id()
    bundle.config["linux"]["cgroupsPath"] = f"/pyrt/{parent}/{cid}"  # below the half-made parent
    try:
        rt.create(bundle.args("true"), cid)
        cpus = (cpuset / "cpuset.cpus").read_text().strip()
        assert (half_made / "cpuset.cpus").read_text().strip() == cpus
        assert (half_made / cid / "cpuset.cpus").read_text().strip() == cpus
    finally:
        rt("delete", "--force", cid)
        for d in (half_made, cpuset / "pyrt"):
            with contextlib.suppress(OSError):
                d.rmdir()


@pytest.mark.pyrt_only
def test_undo_walks_past_a_parent_that_is_gone(rt, bundle, tmp_path):
    """A create killed before its mkdirs journals the leaf it was about to make below parents
    that existed (pyrt's shared ones). If the nearest parent is gone by the time `delete
    --force` undoes the journal (the last container below it took it along), the shared parent
    above it, empty now, is still pyrt's to remove: the undo used to stop at the missing one and
    leave it in every hierarchy."""
    top, mid = f"pyrt-test-{uuid.uuid4().hex[:8]}", "sub"
    bases = [UNIFIED, *dict.fromkeys(cgroupfs.v1_mounts().values())] if not V2_HOST else [UNIFIED]

    def shared_parents():  # what earlier containers left: parents pyrt made, shared
        for b in bases:
            (b / top / mid).mkdir(parents=True, exist_ok=True)
            for d in (b / top, b / top / mid):
                os.setxattr(d, "trusted.pyrt.created", b"1")
                for name in ("cpuset.cpus", "cpuset.mems"):
                    if (d / name).exists() and not (d / name).read_text().strip():
                        (d / name).write_text((d.parent / name).read_text())

    shared_parents()
    try:
        cid = rt.new_id()
        bundle.config["linux"]["cgroupsPath"] = f"/{top}/{mid}/{cid}"
        bundle.args("true").write()
        argv = rt.cmd("create", "--bundle", str(bundle.path), cid)
        trace = tmp_path / "trace"  # a first create, traced: which mkdir makes the leaf
        quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        subprocess.run(["strace", "-o", str(trace), "-e", "trace=mkdir", *argv], check=True, **quiet)
        rt.ok("delete", "--force", cid)  # which took the empty shared parents along: again
        shared_parents()
        calls = [line for line in trace.read_text().splitlines() if line.startswith("mkdir(")]
        leaf = 1 + next(i for i, line in enumerate(calls) if f"/{top}/{mid}/{cid}" in line)
        subprocess.run(["strace", "-o", "/dev/null", "-e", "trace=mkdir", "-e", f"inject=mkdir:signal=KILL:when={leaf}",
                        *argv], **quiet)
        journal = (rt.root / cid / "journal").read_text()
        assert f"/{top}/{mid}/{cid}" in journal and not any((b / top / mid / cid).exists() for b in bases), journal
        for b in bases:
            (b / top / mid).rmdir()
        rt.ok("delete", "--force", cid)
        assert not [str(b / top) for b in bases if (b / top).exists()]
    finally:
        for b in bases:
            for d in (b / top / mid, b / top):
                with contextlib.suppress(OSError):
                    d.rmdir()


# ----------------------------------------------------------------------------- whose processes


class HostCgroup:
    """A cgroup an admin made (no pyrt mark) in every hierarchy, as a linux.cgroupsPath may
    name one, and unrelated processes ("foreign": not any container's) placed in it or below it.
    close() kills them and removes it all."""

    def __init__(self) -> None:
        self.name = f"pyrt-join-{uuid.uuid4().hex[:8]}"
        self.bases = [UNIFIED] if V2_HOST else [UNIFIED, *dict.fromkeys(cgroupfs.v1_mounts().values())]
        self.foreign: list[subprocess.Popen] = []
        for b in self.bases:
            self.mkdir(b)

    def mkdir(self, base: Path, *sub: str) -> Path:
        path = base.joinpath(self.name, *sub)
        path.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):  # a v1 cpuset needs them before anyone joins
            if base != UNIFIED and (path / name).exists() and not (path / name).read_text().strip():
                (path / name).write_text((path.parent / name).read_text())
        return path

    def add_foreign(self, *sub: str, base: Path = UNIFIED) -> subprocess.Popen:
        p = subprocess.Popen(["sleep", "1000"])
        self.foreign.append(p)
        (self.mkdir(base, *sub) / "cgroup.procs").write_text(str(p.pid))
        return p

    def close(self) -> None:
        for p in self.foreign:
            p.kill()
            p.wait()
        for b in self.bases:
            for dirpath, _, _ in sorted(os.walk(b / self.name), key=lambda w: -w[0].count("/")):
                if os.path.isdir(dirpath):
                    _rmdir_when_empty(dirpath)


def _rmdir_when_empty(path: str) -> None:
    for _ in range(200):
        try:
            os.rmdir(path)
            return
        except OSError:
            time.sleep(0.01)
    os.rmdir(path)


@pytest.fixture
def host_cgroup():
    hc = HostCgroup()
    yield hc
    hc.close()


def _running(p: subprocess.Popen) -> bool:
    return p.poll() is None and _alive(p.pid) and "State:\tT" not in Path(f"/proc/{p.pid}/status").read_text()


def _without_pid_namespace(bundle) -> None:
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"] if n["type"] != "pid"]


@pytest.mark.parametrize("pidns", [True, pytest.param(False, marks=pytest.mark.pyrt_only)], ids=["pidns", "hostpid"])
def test_kill_all_and_delete_spare_foreign_processes(rt, bundle, host_cgroup, pidns):
    """issue 8 §1.2: a joined cgroup's subtree is not the container's. A process an admin puts
    below it (or, with a pid namespace, in it) survives `kill --all` and `delete --force`: pyrt
    signals the container's own processes only, never through cgroup.kill of a subtree."""
    bundle.config["linux"]["cgroupsPath"] = "/" + host_cgroup.name
    if not pidns:
        _without_pid_namespace(bundle)
    cid = rt.create(bundle.args("sh", "-c", "sleep 100 & sleep 100"))
    rt.ok("start", cid)
    below = host_cgroup.add_foreign("child")
    beside = host_cgroup.add_foreign() if pidns else None  # in the cgroup itself, outside the pid namespace
    mine = wait_for(lambda: len(procs := rt_pids(rt, cid)) >= 2 and procs, what="the container's processes")
    assert below.pid not in mine and (beside is None or beside.pid not in mine)
    rt.ok("kill", "--all", cid, "KILL")
    rt.wait_status(cid, "stopped")
    wait_for(lambda: not any(_alive(p) for p in mine), what="the container's processes to die")
    r = rt("delete", "--force", cid)
    assert _running(below) and (beside is None or _running(beside))
    if not IS_RUNC:  # runc 1.5 fails to remove the cgroup (a child it did not make) and says so
        assert r.returncode == 0, r.stderr
        assert (UNIFIED / host_cgroup.name / "child").is_dir()  # joined: left in place, as it was


def rt_pids(rt, cid: str) -> list[int]:
    return json.loads(rt.ok("ps", "--format", "json", cid).stdout)


@pytest.mark.pyrt_only
def test_delete_force_of_a_running_container_spares_foreign_processes(rt, bundle, host_cgroup):
    """The issue's own steps: create, start, `delete --force` with a foreign process below the
    joined cgroup (it came after create: a non-empty cgroup is refused)."""
    bundle.config["linux"]["cgroupsPath"] = "/" + host_cgroup.name
    cid = rt.create(bundle.args("sleep", "100"))
    rt.ok("start", cid)
    foreign = host_cgroup.add_foreign("child")
    rt.ok("delete", "--force", cid)
    assert _running(foreign)


@pytest.mark.pyrt_only
def test_pause_and_update_refuse_a_joined_cgroup_shared_with_others(rt, bundle, host_cgroup):
    """Freezing a joined cgroup freezes its whole subtree, and a limit reaches all of it: with
    a foreign process in it, pause and update refuse (one line naming it) and change nothing."""
    bundle.config["linux"]["cgroupsPath"] = "/" + host_cgroup.name
    cid = rt.create(bundle.args("sleep", "100"))
    rt.ok("start", cid)
    foreign = host_cgroup.add_foreign("child")
    r = rt("pause", cid)
    assert r.returncode == 1 and f"pid {foreign.pid}" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert rt.state(cid)["status"] == "running" and _running(foreign)
    assert (UNIFIED / host_cgroup.name / "cgroup.freeze").read_text().strip() == "0"
    r = rt("update", "--pids-limit", "7", cid)
    assert r.returncode == 1 and "not the container's" in r.stderr, r.stderr
    foreign.kill()
    foreign.wait()
    rt.ok("pause", cid)  # the container alone again: as before
    assert rt.state(cid)["status"] == "paused"
    rt.ok("resume", cid)
    rt.ok("update", "--pids-limit", "7", cid)
    rt.ok("delete", "--force", cid)


@pytest.mark.pyrt_only
def test_update_refuses_a_joined_v1_cgroup_shared_with_others(rt, bundle, host_cgroup):
    """The same on a v1 hierarchy of a hybrid host: a foreign process below the joined cgroup
    in the pids hierarchy only."""
    pids = cgroupfs.v1_mounts().get("pids")
    if V2_HOST or pids is None:
        pytest.fail("this hybrid-host test needs the v1 pids hierarchy")
    bundle.config["linux"]["cgroupsPath"] = "/" + host_cgroup.name
    cid = rt.create(bundle.args("sleep", "100"))
    rt.ok("start", cid)
    foreign = host_cgroup.add_foreign("child", base=pids)
    r = rt("update", "--pids-limit", "1", cid)
    assert r.returncode == 1 and str(pids / host_cgroup.name) in r.stderr, r.stderr
    assert (pids / host_cgroup.name / "pids.max").read_text().strip() == "max"
    rt.ok("delete", "--force", cid)
    assert _running(foreign)


@pytest.mark.pyrt_only
@pytest.mark.parametrize("where", ["unified", "v1"])
def test_a_non_empty_cgroup_is_refused(rt, bundle, host_cgroup, where):
    """A create never shares a cgroup: a joined one must hold no process in its subtree (runc's
    words; runc checks one v1 hierarchy of a hybrid host, pyrt every one)."""
    base = UNIFIED if where == "unified" or V2_HOST else cgroupfs.v1_mounts()["memory"]
    host_cgroup.add_foreign("child", base=base)
    bundle.config["linux"]["cgroupsPath"] = "/" + host_cgroup.name
    bundle.write()
    cid = rt.new_id()
    r = rt("create", "--bundle", str(bundle.path), cid)
    assert r.returncode == 1 and "container's cgroup is not empty: 1 process(es) found" in r.stderr, r.stderr
    assert str(base / host_cgroup.name) in r.stderr and len(r.stderr.splitlines()) == 1
    assert all((b / host_cgroup.name).is_dir() for b in host_cgroup.bases)


@pytest.mark.pyrt_only
def test_a_frozen_cgroup_is_refused(rt, bundle, host_cgroup):
    """As runc: a frozen cgroup is not joined (the init would freeze in it and create hang)."""
    freeze = UNIFIED / host_cgroup.name / "cgroup.freeze"
    freeze.write_text("1")
    bundle.config["linux"]["cgroupsPath"] = "/" + host_cgroup.name
    code, message = cgroupfs.create_while_frozen(rt, bundle, lambda: freeze.write_text("0"))
    assert code == 1 and "container's cgroup unexpectedly frozen" in message, (code, message)


# ----------------------------------------------------------------------------- one cgroup, one container


@pytest.mark.pyrt_only
def test_same_id_under_two_roots_gets_two_cgroups(rt, bundle, tmp_path):
    """issue 8 §2: the default cgroup path is per --root (pyrt/<tag of the root>/<id>): the
    same id under two roots runs in two cgroups, and deleting one leaves the other running."""
    other = Runtime(tmp_path / "state2")
    cid = rt.create(bundle.args("sleep", "100"))
    try:
        other.create(bundle, cid)
        pids = [rt.state(cid)["pid"], other.state(cid)["pid"]]
        paths = [Path(f"/proc/{p}/cgroup").read_text().splitlines()[-1] for p in pids]
        assert paths[0] != paths[1] and all(p.endswith("/" + cid) for p in paths), paths
        rt.ok("delete", "--force", cid)
        assert other.state(cid)["status"] == "created" and _alive(pids[1])
    finally:
        other.cleanup()
    leftover = [b / "pyrt" / cgroups_tag(r) for b in cgroupfs_bases() for r in (rt.root, other.root)]
    assert not any(p.exists() for p in leftover), leftover


def cgroups_tag(root: Path) -> str:
    import zlib

    return f"{zlib.crc32(str(root).encode()):08x}"


def cgroupfs_bases() -> list[Path]:
    return [UNIFIED] if V2_HOST else [UNIFIED, *dict.fromkeys(cgroupfs.v1_mounts().values())]


def test_a_stopped_containers_cgroup_is_not_shared(rt, bundle, tmp_path):
    """A stopped container (not deleted yet) still owns its cgroup: a container of another
    root naming the same path must not land in it, or deleting the first would kill it. pyrt
    refuses the second create; runc joins the empty cgroup, and delete spares it."""
    path = f"/pyrt-test-{uuid.uuid4().hex[:8]}"
    bundle.config["linux"]["cgroupsPath"] = path
    first = rt.create(bundle.args("true"))
    rt.ok("start", first)
    rt.wait_status(first, "stopped")
    other = Runtime(tmp_path / "state2")
    try:
        bundle.args("sleep", "100").write()
        second = other.new_id()
        with open(tmp_path / "err", "w+") as err:  # not a pipe: an init would keep it open
            code = subprocess.run(other.cmd("create", "--bundle", str(bundle.path), second), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=err, timeout=30).returncode
            err.seek(0)
            message = err.read()
        if not IS_RUNC:
            assert code == 1 and f"is the cgroup of container {rt.root}/{first}" in message, message
        if code == 0:
            pid = other.state(second)["pid"]
            rt("delete", first)  # runc 1.5: fails to remove the cgroup the second one is in
            assert other.state(second)["status"] == "created" and _alive(pid)
        else:
            rt.ok("delete", first)
    finally:
        other.cleanup()


@pytest.mark.pyrt_only
def test_a_cgroup_inside_another_containers_is_refused(rt, bundle):
    """Nor may a container's cgroup lie below another's: its subtree is the other's, and
    deleting that one would kill this one."""
    path = f"/pyrt-test-{uuid.uuid4().hex[:8]}"
    bundle.config["linux"]["cgroupsPath"] = path
    first = rt.create(bundle.args("sleep", "100"))
    bundle.config["linux"]["cgroupsPath"] = path + "/inner"
    bundle.write()
    r = rt("create", "--bundle", str(bundle.path), rt.new_id())
    assert r.returncode == 1 and f"{UNIFIED}{path} is the cgroup of container {rt.root}/{first}" in r.stderr, r.stderr
    assert rt.state(first)["status"] == "created"
    rt.ok("delete", "--force", first)


@pytest.mark.pyrt_only
def test_concurrent_creates_never_share_a_cgroup(rt, bundle, tmp_path):
    """Two creates naming one absolute cgroupsPath at the same moment (two roots): one wins,
    the other is refused, whatever the interleaving (pyrt's cgroup lock makes check, mkdir and
    mark one step)."""
    bundle.config["linux"]["cgroupsPath"] = f"/pyrt-test-{uuid.uuid4().hex[:8]}"
    bundle.args("sleep", "100").write()
    roots = [rt, Runtime(tmp_path / "state2")]
    try:
        for _ in range(5):
            cid = rt.new_id()
            roots[1].ids.add(cid)
            errs = [tmp_path / f"err{i}" for i in range(2)]  # files, not pipes: an init keeps them
            procs = []
            for r, err in zip(roots, errs, strict=True):
                with open(err, "w") as f:
                    procs.append(subprocess.Popen(r.cmd("create", "--bundle", str(bundle.path), cid),
                                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=f))
            codes = [p.wait(timeout=30) for p in procs]
            for r in roots:
                r("delete", "--force", cid)
            messages = [err.read_text() for err in errs]
            assert sorted(codes) == [0, 1], messages
            assert "is the cgroup of container" in "".join(messages), messages
    finally:
        roots[1].cleanup()
