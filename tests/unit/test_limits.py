"""linux.resources without root: checked at the gate (limits.py) in no host's dialect, then
turned into the cgroup files of a host laid out as v1 (hybrid) or v2 (cgwrites.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyrt import cgwrites, limits
from pyrt.cgroups import Cgroup
from pyrt.errors import PyrtError

WHERE = "config.json: linux.resources"


def v1_host(tmp_path: Path) -> Cgroup:
    """A hybrid host: every controller on its own v1 hierarchy (directories in tmp_path)."""
    v1 = {}
    for c in ("cpu", "cpuset", "memory", "devices", "blkio", "pids", "hugetlb", "net_cls", "net_prio", "rdma"):
        (tmp_path / c).mkdir(parents=True, exist_ok=True)
        v1[c] = str(tmp_path / c)
    cg = Cgroup(str(tmp_path / "unified"), "pyrt/t/c", v1)
    cg._v2_controllers = set()
    return cg


def v2_host(tmp_path: Path) -> Cgroup:
    cg = Cgroup(str(tmp_path), "pyrt/t/c")
    cg._v2_controllers = {"cpu", "cpuset", "memory", "io", "pids", "hugetlb", "rdma"}
    return cg


def files(resources: dict, cg: Cgroup, **kw) -> list[tuple[str, str, object]]:
    """(controller, file, value) of each write, devices rules left out."""
    res = limits.parse(resources, "config.json", "linux.resources")
    return [(w.controller, w.file, w.value) for w in cgwrites.writes(res, cg, **kw) if w.controller != "devices"]


def test_the_same_limits_in_both_dialects(tmp_path):
    res = {"memory": {"limit": 1 << 30, "reservation": 1 << 29, "swap": 2 << 30}, "pids": {"limit": 64},
           "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1"},
           "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}]},
           "hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}], "unified": {"memory.high": "max"}}
    v2 = files(res, v2_host(tmp_path))
    assert v2 == [("memory", "memory.max", str(1 << 30)), ("memory", "memory.swap.max", str(1 << 30)),
                  ("memory", "memory.low", str(1 << 29)), ("cpu", "cpu.weight", "100"),
                  ("cpu", "cpu.max", "50000 100000"), ("cpuset", "cpuset.cpus", "0-1"), ("pids", "pids.max", "64"),
                  ("io", "io.weight", "default 4950"), ("io", "io.max", "8:0 rbps=1000"),
                  ("hugetlb", "hugetlb.2MB.max", str(1 << 21)), ("memory", "memory.high", "max")]
    res.pop("unified")
    v1 = files(res, v1_host(tmp_path / "v1h"))
    assert v1 == [("memory", "memory.limit_in_bytes", str(1 << 30)), ("memory", "memory.memsw.limit_in_bytes",
                                                                      str(2 << 30)),
                  ("memory", "memory.soft_limit_in_bytes", str(1 << 29)), ("cpu", "cpu.cfs_period_us", "100000"),
                  ("cpu", "cpu.cfs_quota_us", "50000"), ("cpu", "cpu.shares", "1024"),
                  ("cpuset", "cpuset.cpus", "0-1"), ("pids", "pids.max", "64"), ("blkio", "blkio.weight", "500"),
                  ("blkio", "blkio.throttle.read_bps_device", "8:0 1000"),
                  ("hugetlb", "hugetlb.2MB.limit_in_bytes", str(1 << 21))]


def test_device_rules(tmp_path):
    """Deny all, the config's rules in order, the devices every container gets, mknod of linux.devices."""
    res = limits.parse({"devices": [{"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rw"}]},
                       "config.json", "linux.resources")

    class Node:
        type, major, minor = "b", 7, 0

    v1 = [(w.file, w.value) for w in cgwrites.writes(res, v1_host(tmp_path), device_nodes=[Node])]
    assert v1[:2] == [("devices.deny", "a"), ("devices.allow", "c 10:200 rw")]
    assert ("devices.allow", "c 136:* rwm") in v1 and v1[-1] == ("devices.allow", "b 7:0 m")
    (v2,) = cgwrites.writes(res, v2_host(tmp_path))
    assert v2.value[:2] == ((False, "a", -1, -1, "rwm"), (True, "c", 10, 200, "rw"))
    assert cgwrites.writes(limits.parse({}, "update", "resources"), v2_host(tmp_path), update=True) == []


@pytest.mark.parametrize("resources,words", [
    ({"memory": {"limit": -5}}, "linux.resources.memory.limit: -5 is out of range (1..9223372036854775807 or -1"),
    ({"memory": {"limit": True}}, "linux.resources.memory.limit: True is not an integer"),
    ({"memory": {"disableOOMKiller": 1}}, "linux.resources.memory.disableOOMKiller: 1 is not true or false"),
    ({"memory": []}, "linux.resources.memory: must be an object"),
    ({"cpu": {"cpus": "3-1"}}, "linux.resources.cpu.cpus: '3-1' is not a list like 0-3,8"),
    ({"cpu": {"mems": 5}}, "linux.resources.cpu.mems: 5 is not a string"),
    ({"pids": {"limit": 1 << 23}}, "linux.resources.pids.limit: 8388608 is out of range"),
    ({"blockIO": {"weightDevice": [{"weight": 100}]}}, "linux.resources.blockIO.weightDevice[0].major: major and"),
    ({"blockIO": {"throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": -1}]}},
     "linux.resources.blockIO.throttleWriteIOPSDevice[0].rate: -1 is out of range"),
    ({"hugepageLimits": [{"pageSize": "2MB"}]}, "linux.resources.hugepageLimits[0].limit: is required"),
    ({"hugepageLimits": {}}, "linux.resources.hugepageLimits: must be an array"),
    ({"rdma": {"mlx/0": {}}}, "linux.resources.rdma: 'mlx/0' is not a device name"),
    ({"rdma": {"mlx": {"hcaHandles": "x"}}}, "linux.resources.rdma.mlx.hcaHandles: 'x' is not an integer"),
    ({"network": {"priorities": [{"name": "eth0"}]}},
     "linux.resources.network.priorities[0].name: needs an interface name and a priority"),
    ({"devices": [{"allow": True, "type": "x"}]}, "linux.resources.devices[0].type: 'x' is not a, b or c"),
    ({"devices": {}}, "linux.resources.devices: must be an array"),
    ({"unified": {"cgroup.procs": "1"}}, "linux.resources.unified.cgroup.procs: only cgroup.max.depth and"),
    ({"unified": {"memory.max": 1}}, "linux.resources.unified.memory.max: the value must be a string"),
    ({"unified": {"max": "1"}}, "linux.resources.unified.max: not a cgroup file name"),
    ({"sprockets": {}}, "linux.resources.sprockets: unknown field"),
    ({"memory": {"limitt": 1}}, "linux.resources.memory.limitt: unknown field"),
])
def test_refused_at_the_gate(resources, words):
    """Whatever the host: these fail before any host is looked at."""
    with pytest.raises(PyrtError) as e:
        limits.parse(resources, "config.json", "linux.resources")
    assert str(e.value).startswith("config.json: " + words), str(e.value)


@pytest.mark.parametrize("resources,host,words", [
    ({"memory": {"limit": 1 << 20, "swap": 1 << 19}}, v1_host, "memory.swap: 524288 is below memory.limit"),
    ({"memory": {"swap": 1 << 20}}, v2_host, "memory.swap: a swap limit needs a memory limit"),
    ({"cpu": {"realtimeRuntime": 5}}, v2_host, "cpu.realtimeRuntime: cgroup v2 has no realtime CPU bandwidth"),
    ({"network": {"classID": 5}}, v2_host, "network.classID: the net_cls controller is not available on this host"),
    ({"unified": {"memory.high": "1"}}, v1_host,
     "unified.memory.high: invalid configuration: cannot use unified on cgroup v1"),
    ({"unified": {"nosuch.max": "1"}}, v2_host, "unified.nosuch.max: nosuch is not a cgroup v2 controller"),
])
def test_refused_by_this_host(tmp_path, resources, host, words):
    """What depends on the host fails when the parent's plan is made, still before anything is written."""
    res = limits.parse(resources, "config.json", "linux.resources")
    with pytest.raises(PyrtError) as e:
        cgwrites.writes(res, host(tmp_path))
    assert str(e.value).startswith(f"{WHERE}.{words}"), str(e.value)


def test_update_is_partial_and_reads_what_is_in_force(tmp_path):
    """`update`: only what is given; a v2 swap alone is counted against the limit in force, a v1
    memory+swap raised before the limit when it grows."""
    now = {"memory.max": str(1 << 30), "memory.memsw.limit_in_bytes": str(1 << 30)}
    current = lambda controller, file: now.get(file)  # noqa: E731
    res = limits.parse({"memory": {"swap": 3 << 30}}, "", "update")
    assert [(w.file, w.value) for w in cgwrites.writes(res, v2_host(tmp_path), update=True, current=current)] == [
        ("memory.swap.max", str(2 << 30))]
    res = limits.parse({"memory": {"limit": 2 << 30, "swap": 4 << 30}}, "", "update")
    v1 = [w.file for w in cgwrites.writes(res, v1_host(tmp_path), update=True, current=current)]
    assert v1 == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
    with pytest.raises(PyrtError, match=r"^update\.memory\.limit: 2147483648 is above the memory\+swap limit"):
        cgwrites.writes(limits.parse({"memory": {"limit": 2 << 30}}, "", "update"), v1_host(tmp_path), update=True,
                        current=current)


@pytest.mark.parametrize("shares,weight", [(2, 1), (1024, 100), (262144, 10000), (512, 59), (4096, 303)])
def test_shares_to_weight(shares, weight):
    assert cgwrites.shares_to_weight(shares) == weight


def test_blkio_to_io_weight():
    assert [cgwrites.blkio_to_io_weight(w) for w in (10, 500, 1000)] == [1, 4950, 10000]
