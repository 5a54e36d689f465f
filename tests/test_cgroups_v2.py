"""Limits in a pure cgroup v2 system: each one shown to hold, not just written.

Marked `cgroup2`: `make test` runs these directly on a host with cgroup v2 controllers and
inside the VM (tools/run-in-vm.sh) otherwise. Python is ~20x slower there, so each test
starts as few containers as it can.
"""

from __future__ import annotations

import json
import time

import cgroupfs
import pytest
from cgroupfs import CTR_DEVICES, finish, output, started
from conftest import OLD_RUNC

pytestmark = pytest.mark.cgroup2


@pytest.fixture(autouse=True)
def _needs_cgroup2_controllers():
    if not cgroupfs.V2_HOST or "memory" not in cgroupfs.v2_controllers():
        pytest.fail("these tests need a cgroup v2 host with controllers: `make test-cgroup2` runs them in a VM")


def test_memory_max_oom_kill(rt, bundle):
    cgroupfs.memory_limit_oom_kills(rt, bundle)


def test_pids_max(rt, bundle):
    cgroupfs.pids_limit_stops_forks(rt, bundle)


def test_cpu_max_throttles(rt, bundle):
    cgroupfs.cpu_quota_throttles(rt, bundle)


def test_bpf_device_rules(rt, bundle):
    cgroupfs.device_rules_deny_and_allow(rt, bundle)


@pytest.mark.pyrt_only
def test_bpf_denies_mknod_of_a_disk(rt, bundle):
    """podman's rules (deny all): the standard devices work, a disk node cannot be made."""
    for kind in ("bounding", "effective", "permitted"):
        bundle.process["capabilities"][kind].append("CAP_MKNOD")
    bundle.config["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}], "pids": {"limit": 2048}}
    bundle.args("sh", "-c", "echo x > /dev/null && head -c 2 /dev/zero | wc -c; mknod /dev/vda b 254 0 && "
                "echo disk-made").write()
    r = rt("run", "--bundle", str(bundle.path), rt.new_id())
    assert r.stdout.split() == ["2"], r.stdout + r.stderr
    assert "Operation not permitted" in r.stderr


def test_freeze(rt, bundle):
    cgroupfs.freeze_stops_processes(rt, bundle)


def test_update(rt, bundle):
    cgroupfs.update_changes_and_enforces(rt, bundle)


def test_events_stats(rt, bundle):
    cgroupfs.stats_match_files(rt, bundle)


def test_cgroup2_mount_in_cgroup_namespace(rt, bundle):
    cgroupfs.cgroup_mount_shows_own_cgroup(rt, bundle)


def test_io_max_throttles_reads(rt, bundle):
    """io.max on the VM's /dev/vda (254:0): 4 MiB at 1 MiB/s takes seconds."""
    bundle.config["linux"]["devices"] = [{"path": "/dev/vda", "type": "b", "major": 254, "minor": 0,
                                          "fileMode": 0o600}]
    bundle.config["linux"]["resources"] = {
        "devices": [{"allow": True, "type": "b", "major": 254, "minor": 0, "access": "rw"}],
        "blockIO": {"throttleReadBpsDevice": [{"major": 254, "minor": 0, "rate": 1 << 20}]}}
    bundle.args("dd", "if=/dev/vda", "of=/dev/null", "bs=64k", "count=64", "iflag=direct")
    cid = rt.create(bundle)
    files = cgroupfs.CgFiles(rt.state(cid)["pid"])
    io_max = (files.v2 / "io.max").read_text().split()
    assert io_max == ["254:0", "rbps=1048576", "wbps=max", "riops=max", "wiops=max"]
    t0 = time.monotonic()
    rt.ok("start", cid)
    rt.wait_status(cid, "stopped", timeout=60)
    elapsed = time.monotonic() - t0
    assert "64+0 records out" in output(bundle, "stderr"), output(bundle, "stderr")
    assert elapsed >= 2.0, elapsed
    stat = (files.v2 / "io.stat").read_text()
    assert "254:0" in stat and int(stat.split("rbytes=")[1].split()[0]) >= 4 << 20
    rt.ok("delete", cid)


@pytest.mark.not_runc_1_1  # runc 1.1 still uses the linear cpu.weight formula
def test_v2_conversions_and_unified(rt, bundle):
    """The v1 -> v2 conversions and `unified` keys, as files (one container for all); runc 1.5's."""
    bundle.config["linux"]["resources"] = {
        "memory": {"limit": 32 << 20, "swap": 48 << 20, "reservation": 8 << 20},
        "cpu": {"shares": 1024, "quota": 50000, "period": 200000, "cpus": "0", "mems": "0"},
        "pids": {"limit": -1},
        "blockIO": {"weight": 1000},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
        "unified": {"memory.high": "30000000", "pids.max": "77", "cgroup.max.descendants": "3"},
    }
    bundle.args("true")
    cid = rt.create(bundle)
    d = cgroupfs.CgFiles(rt.state(cid)["pid"]).v2
    expect = {"memory.max": str(32 << 20), "memory.swap.max": str(16 << 20), "memory.low": str(8 << 20),
              "cpu.weight": "100", "cpu.max": "50000 200000", "cpuset.cpus": "0", "cpuset.mems": "0",
              "pids.max": "77", "hugetlb.2MB.max": "0", "memory.high": "29999104", "cgroup.max.descendants": "3"}
    assert {name: (d / name).read_text().strip() for name in expect} == expect
    assert "default 10000" in (d / "io.weight").read_text()
    rt.ok("delete", cid)


@pytest.mark.pyrt_only
def test_v2_warnings_and_errors(rt, bundle):
    bundle.config["linux"]["resources"] = {"memory": {"swappiness": 10}}
    bundle.args("true").write()
    r = rt("run", "--bundle", str(bundle.path), rt.new_id())
    assert r.returncode == 0 and "memory.swappiness: ignored" in r.stderr, r.stderr
    for resources, message in (({"cpu": {"realtimeRuntime": 1000}}, "cpu.realtimeRuntime"),
                               ({"network": {"classID": 1}}, "net_cls"),
                               ({"memory": {"swap": 1 << 20}}, "memory.swap"),
                               ({"unified": {"memory.nosuch": "1"}}, "memory.nosuch")):
        bundle.config["linux"]["resources"] = resources
        bundle.write()
        r = rt("create", "--bundle", str(bundle.path), rt.new_id())
        assert r.returncode == 1 and message in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr


def test_ctr_defaults_on_v2(rt, bundle):
    bundle.config["linux"]["resources"] = {"devices": CTR_DEVICES, "cpu": {"shares": 1024}}
    bundle.args("sh", "-c", "echo x > /dev/null && echo ok")
    cid, _, files = started(rt, bundle)
    rt.wait_status(cid, "stopped")
    if not OLD_RUNC:  # runc 1.1 still uses the linear formula (39)
        assert (files.v2 / "cpu.weight").read_text().strip() == "100"
    rt.ok("delete", cid)
    assert output(bundle) == "ok\n", output(bundle, "stderr")


def test_stats_after_an_oom_kill(rt, bundle):
    bundle.config["linux"]["resources"] = {"memory": {"limit": 24 << 20, "swap": 24 << 20}}
    bundle.args("sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 100")
    cid, _, files = started(rt, bundle)
    cgroupfs.wait_for(files.oom_kills, timeout=60, what="the OOM kill")
    stats = json.loads(rt.ok("events", "--stats", cid).stdout)["data"]["memory"]
    assert stats["usage"]["limit"] == 24 << 20
    if not OLD_RUNC:  # memory.peak: runc 1.1 does not report it on v2
        assert stats["usage"]["max"] >= 20 << 20
    finish(rt, cid)
