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

import cgroupfs
import pytest
from cgroupfs import CTR_DEVICES, UNIFIED, V2_HOST, finish, output, started
from conftest import OLD_RUNC, wait_for


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
    from pyrt import resources

    class Cg:
        dir = str(UNIFIED / f"pyrt-test-bpf-{uuid.uuid4().hex[:8]}")

    os.mkdir(Cg.dir)
    try:
        rules = ((False, "a", -1, -1, "rwm"), (True, "c", 1, 3, "rwm"), (True, "c", 1, 5, "r"),
                 (False, "c", 1, 3, "w"))
        resources._device_filter(Cg, resources.Write("test", "devices", 2, "devices", "", rules))
        script = (f"echo $$ > {Cg.dir}/cgroup.procs; cat /dev/null && echo null-read; true > /dev/null && "
                  "echo null-write; head -c1 /dev/zero | wc -c; true > /dev/zero && echo zero-write; "
                  "true < /dev/full && echo full")
        r = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
        assert r.stdout.split() == ["null-read", "1"], r
        allow_all = ((True, "a", -1, -1, "rwm"),)
        resources._device_filter(Cg, resources.Write("test", "devices", 2, "devices", "", allow_all))
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
    bundle.config["linux"]["cgroupsPath"] = f"{parent}/{cid}"
    try:
        rt.create(bundle.args("true"), cid)
    finally:
        rt("delete", "--force", cid)
        for d in (half_made, cpuset / "pyrt"):
            with contextlib.suppress(OSError):
                d.rmdir()
