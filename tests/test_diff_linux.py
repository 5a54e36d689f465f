"""Differential rows, runtime-spec `linux`: namespaces, ID mappings, devices, resources (what this
cgroup v1-hybrid host has), sysctl, seccomp, masked and read-only paths, rootfsPropagation,
personality and the rest, each run by pyrt and by runc 1.5 and compared on what the process sees
and what the host shows (tests/differential.py). A row marked xfail is a difference pyrt has
today (docs/runc-differences.md); the fix removes the mark."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest
from cgroupfs import UNIFIED, CgFiles, v1_mounts
from conftest import wait_for
from differential import Scenario, compare, edit, row, with_env

pytestmark = pytest.mark.differential


def linux(**fields):
    return edit(lambda c: c["linux"].update(fields))


#: The memory policy the process's heap has (numa_maps' second word: default, bind:0, ...)
NUMA = "grep heap /proc/$$/numa_maps | cut -d' ' -f2"
MEMORY_POLICIES = {
    "interleave": {"mode": "MPOL_INTERLEAVE", "nodes": "0"},
    "weighted-interleave": {"mode": "MPOL_WEIGHTED_INTERLEAVE", "nodes": "0"},
    "preferred": {"mode": "MPOL_PREFERRED", "nodes": "0"},
    "preferred-no-nodes": {"mode": "MPOL_PREFERRED"},
    "preferred-many": {"mode": "MPOL_PREFERRED_MANY", "nodes": "0"},
    "local": {"mode": "MPOL_LOCAL"},
    "bind-static": {"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]},
    "bind-relative": {"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES"]},
    "bind-numa-balancing": {"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]},
    "default": {"mode": "MPOL_DEFAULT"},
}
#: ... and those that fail create (the gate's, runc's validation's or the kernel's refusal)
BAD_MEMORY_POLICIES = {
    "default-with-nodes": {"mode": "MPOL_DEFAULT", "nodes": "0"},
    "bind-without-nodes": {"mode": "MPOL_BIND"},
    "bind-static+relative": {"mode": "MPOL_BIND", "nodes": "0",
                             "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]},
    "unknown-flag": {"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_NOSUCH"]},
    "unknown-mode": {"mode": "MPOL_NOSUCH"},
    "missing-node": {"mode": "MPOL_BIND", "nodes": "7"},
    "bad-node-list": {"mode": "MPOL_BIND", "nodes": "0-"},
}


def extra(script: str, **linux_fields):
    def fn(c: dict) -> None:
        c["linux"].update(linux_fields)
        with_env(c, EXTRA=script)
    return edit(fn)


def namespaces(*kinds: str, **paths: str):
    """linux.namespaces: new ones of `kinds`, joined ones of `paths` (type -> path)."""
    return linux(namespaces=[{"type": k} for k in kinds] + [{"type": k, "path": p} for k, p in paths.items()])


BASE_NS = ("pid", "network", "ipc", "uts", "mount")


class Holder:
    """A process in new net, ipc and uts namespaces whose /proc/PID/ns/* a config joins."""

    proc: subprocess.Popen | None = None

    @classmethod
    def path(cls, kind: str) -> str:
        if cls.proc is None or cls.proc.poll() is not None:
            cls.proc = subprocess.Popen(["unshare", "--net", "--ipc", "--uts", "--cgroup", "sleep", "600"])
            import time

            time.sleep(0.2)
        return f"/proc/{cls.proc.pid}/ns/{kind}"

    @classmethod
    def stop(cls) -> None:
        if cls.proc:
            cls.proc.send_signal(signal.SIGKILL)
            cls.proc.wait()
            cls.proc = None


@pytest.fixture(scope="module", autouse=True)
def _holder():
    yield
    Holder.stop()


def joined(kind: str):
    def fn(c: dict, bundle: Path) -> None:
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != kind]
        c["linux"]["namespaces"].append({"type": kind, "path": Holder.path("net" if kind == "network" else kind)})
        if kind == "uts":
            c.pop("hostname", None)
    return fn


def cgroup_files(*files: tuple[str, str]):
    """A host probe: the container's v1 cgroup files (controller, file) after create."""
    def fn(run, cid: str, state: dict) -> dict:
        cg = CgFiles(state["pid"])
        out = {}
        for controller, name in files:
            try:
                out[name] = cg.path(controller, name, name).read_text().strip()
            except OSError as e:
                out[name] = f"<{e.strerror}>"
        return {"cgroup": "\n".join(f"{k}={v}" for k, v in out.items())}
    return fn


def frozen_cgroup(config: dict, bundle: Path) -> None:
    """cgroupsPath names a v1 freezer cgroup made and frozen here first (an engine's leftover)."""
    name = f"h7frozen{os.getpid()}{len(os.listdir(bundle.parent.parent))}"
    (bundle / "cgroup-name").write_text(name)
    frozen = v1_mounts()["freezer"] / name
    frozen.mkdir()
    (frozen / "freezer.state").write_text("FROZEN")
    config["linux"]["cgroupsPath"] = f"/{name}"


def thaw_frozen_cgroup(bundle: Path) -> dict:
    """Thaw it, end what is in it, remove it (and what the runtime left of that name)."""
    name = (bundle / "cgroup-name").read_text()
    left = []
    freezer = v1_mounts()["freezer"]
    with contextlib.suppress(OSError):  # runc removes it
        (freezer / name / "freezer.state").write_text("THAWED")
    for root in sorted({*v1_mounts().values(), UNIFIED}):
        path = root / name
        if not path.is_dir():
            continue
        if root != freezer:
            left.append(root.name)
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        wait_for(lambda p=path: not (p / "cgroup.procs").read_text().split(), timeout=10, what=f"{path} empty")
        path.rmdir()
    return {"left": " ".join(left)}


def cgroup_paths(run, cid: str, state: dict) -> dict:
    """A host probe: the container's cgroups (/proc/PID/cgroup, its id as ID)."""
    return {"paths": Path(f"/proc/{state['pid']}/cgroup").read_text().replace(cid, "ID")}


def resources(name: str, res: dict, *files: tuple[str, str]) -> Scenario:
    return Scenario(name, linux(resources=res), created=cgroup_files(*files))


def seccomp(name: str, profile: dict, script: str) -> Scenario:
    return Scenario(name, extra(script, seccomp=profile))


def deny(action: str, *names: str, **more) -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": list(names), "action": action, **more}]}


MEM = ("memory", "memory.limit_in_bytes")
CPU = [("cpu", f) for f in ("cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us")]


def ids_mapped(**extra_linux):
    maps = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    return linux(namespaces=[{"type": t} for t in (*BASE_NS, "user")], uidMappings=maps, gidMappings=maps,
                 **extra_linux)


ROWS = [
    # linux.namespaces
    row("namespaces/base", Scenario("base"), "ns"),
    *(row(f"namespaces/{kind}-from-the-host", Scenario(f"ns-no-{kind}", namespaces(*(k for k in BASE_NS if k != kind)),
                                                       ), "stage", "ns") for kind in ("network", "ipc", "pid")),
    row("namespaces/uts-from-the-host", Scenario("ns-no-uts", edit(lambda c: (c.pop("hostname"), c["linux"].update(
        namespaces=[{"type": k} for k in BASE_NS if k != "uts"])))), "stage", "ns"),
    # without a mount namespace and without masked paths runc 1.5 runs the container in the host's mount
    # namespace, leaving its rootfs mounts there: not a scenario to run on this host (docs/runc-differences.md)
    row("namespaces/no-mount-namespace", Scenario("ns-no-mount", namespaces("pid", "network", "ipc", "uts")), "error"),
    row("namespaces/cgroup", Scenario("ns-cgroup", namespaces(*BASE_NS, "cgroup")), "ns", "cgroup"),
    *(row(f"namespaces/join-{kind}", Scenario(f"ns-join-{kind}", joined(kind)), "stage", "ns")
      for kind in ("network", "ipc", "uts", "cgroup")),
    row("namespaces/join-missing-path", Scenario("ns-join-missing", namespaces("pid", "ipc", "uts", "mount",
                                                                               network="/nosuch")), "error"),
    row("namespaces/join-wrong-type", Scenario("ns-join-wrong", lambda c, b: namespaces(
        "pid", "ipc", "uts", "mount", network=Holder.path("ipc"))(c, b)), "stage"),
    row("namespaces/duplicate", Scenario("ns-dup", namespaces(*BASE_NS, "pid")), "error"),
    row("namespaces/unknown", Scenario("ns-unknown", namespaces(*BASE_NS, "nosuch")), "error"),
    # the container's root (host 100000) cannot reach a rootfs under pytest's 0700 tmp dir: both refuse
    # at the rootfs; tests/test_userns.py runs user namespaces against both in a reachable place
    row("namespaces/user-with-mappings", Scenario("userns", ids_mapped()), "stage", "error", "words:permission denied"),
    row("namespaces/time-with-offsets", Scenario("timens", linux(namespaces=[{"type": t} for t in (*BASE_NS, "time")],
                                                                 timeOffsets={"monotonic": {"secs": 86400}})),
        "stage", "ns"),
    # linux.devices
    row("devices/char", Scenario("dev-char", linux(devices=[{"path": "/dev/fuse", "type": "c", "major": 10,
                                                              "minor": 229, "fileMode": 0o640, "uid": 1, "gid": 2}])),
        "dev"),
    row("devices/block", Scenario("dev-block", linux(devices=[{"path": "/dev/loop9", "type": "b", "major": 7,
                                                               "minor": 9}])), "dev"),
    row("devices/fifo", Scenario("dev-fifo", linux(devices=[{"path": "/dev/myfifo", "type": "p"}])), "dev"),
    row("devices/in-a-subdirectory", Scenario("dev-subdir", linux(devices=[{"path": "/dev/a/b", "type": "c",
                                                                            "major": 1, "minor": 3}])), "dev"),
    row("devices/full-st_mode", Scenario("dev-st-mode", linux(devices=[{"path": "/dev/x", "type": "c", "major": 1,
                                                                        "minor": 3, "fileMode": 0o20620}])), "dev"),
    row("devices/over-a-default", Scenario("dev-null-again", linux(devices=[{"path": "/dev/null", "type": "c",
                                                                             "major": 1, "minor": 3,
                                                                             "fileMode": 0o600}])), "stage", "dev",
        differs="a linux.devices entry over /dev/null (mode 0600) runs; runc 1.5 fails (error reopening /dev/null "
                "inside container: operation not permitted)"),
    row("devices/missing-major", Scenario("dev-no-major", linux(devices=[{"path": "/dev/x", "type": "c"}])),
        "stage", differs="a char device without major/minor is refused (is required); runc 1.5 makes it as 0:0"),
    row("devices/unknown-type", Scenario("dev-bad-type", linux(devices=[{"path": "/dev/x", "type": "z", "major": 1,
                                                                         "minor": 3}])), "error"),
    # linux.resources on this host's v1 controllers
    row("resources.memory.limit", resources("mem-limit", {"memory": {"limit": 64 << 20}}, MEM), "host.cgroup"),
    row("resources.memory.reservation", resources("mem-res", {"memory": {"reservation": 32 << 20}},
                                                  ("memory", "memory.soft_limit_in_bytes")), "host.cgroup"),
    row("resources.memory.swap", resources("mem-swap", {"memory": {"limit": 64 << 20, "swap": 96 << 20}}, MEM,
                                           ("memory", "memory.memsw.limit_in_bytes")), "stage", "host.cgroup"),
    row("resources.memory.swappiness", resources("mem-swappiness", {"memory": {"swappiness": 10}},
                                                 ("memory", "memory.swappiness")), "host.cgroup"),
    row("resources.memory.disableOOMKiller", resources("mem-oom", {"memory": {"disableOOMKiller": True}},
                                                       ("memory", "memory.oom_control")), "host.cgroup"),
    row("resources.memory.kernel", resources("mem-kernel", {"memory": {"kernel": 64 << 20}},
                                             ("memory", "memory.kmem.limit_in_bytes")), "stage"),
    row("resources.memory.kernelTCP", resources("mem-tcp", {"memory": {"kernelTCP": 64 << 20}},
                                                ("memory", "memory.kmem.tcp.limit_in_bytes")), "stage", "host.cgroup",
        differs="memory.kernelTCP is applied; runc 1.5 ignores kernel memory settings with a warning"),
    row("resources.memory.useHierarchy", resources("mem-hier", {"memory": {"useHierarchy": True}},
                                                   ("memory", "memory.use_hierarchy")), "stage", "host.cgroup"),
    row("resources.memory.limit-below-usage", resources("mem-tiny", {"memory": {"limit": 4096}}, MEM), "error"),
    row("resources.cpu.shares+quota+period", resources("cpu", {"cpu": {"shares": 512, "quota": 50000,
                                                                       "period": 100000}}, *CPU), "host.cgroup"),
    row("resources.cpu.cpus+mems", resources("cpuset", {"cpu": {"cpus": "0", "mems": "0"}},
                                             ("cpuset", "cpuset.cpus"), ("cpuset", "cpuset.mems")), "host.cgroup"),
    row("resources.cpu.realtime", resources("cpu-rt", {"cpu": {"realtimePeriod": 1000000, "realtimeRuntime": 0}},
                                            ("cpu", "cpu.rt_period_us"), ("cpu", "cpu.rt_runtime_us")),
        "stage", "host.cgroup"),
    row("resources.cpu.idle", resources("cpu-idle", {"cpu": {"idle": 1}}, ("cpu", "cpu.idle")), "stage"),
    row("resources.cpu.burst", resources("cpu-burst", {"cpu": {"quota": 50000, "period": 100000, "burst": 10000}},
                                         ("cpu", "cpu.cfs_burst_us")), "stage", "host.cgroup"),
    row("resources.pids.limit", resources("pids", {"pids": {"limit": 42}}, ("pids", "pids.max")), "host.cgroup"),
    row("resources.pids.limit-0", resources("pids-0", {"pids": {"limit": 0}}, ("pids", "pids.max")), "stage",
        "host.cgroup"),
    row("resources.pids.limit--1", resources("pids-max", {"pids": {"limit": -1}}, ("pids", "pids.max")),
        "host.cgroup"),
    row("resources.blockIO.weight", resources("blkio-weight", {"blockIO": {"weight": 500}},
                                              ("blkio", "blkio.weight"), ("blkio", "blkio.bfq.weight")),
        "stage", "host.cgroup", differs="blockIO.weight on a host whose blkio has only BFQ weights is refused "
                                        "(no blkio.weight); runc 1.5 writes blkio.bfq.weight"),
    row("resources.blockIO.throttleReadBpsDevice", resources("blkio-throttle", {"blockIO": {
        "throttleReadBpsDevice": [{"major": 254, "minor": 0, "rate": 1 << 20}]}},
        ("blkio", "blkio.throttle.read_bps_device")), "stage", "host.cgroup"),
    *(row(f"resources.blockIO.{k}", resources(f"blkio-{k}", {"blockIO": {k: [{"major": 254, "minor": 0,
                                                                               "rate": 1000}]}},
                                              ("blkio", f)), "stage", "host.cgroup")
      for k, f in (("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
                   ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
                   ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"))),
    row("resources.blockIO.leafWeight", resources("blkio-leaf", {"blockIO": {"leafWeight": 300}},
                                                  ("blkio", "blkio.leaf_weight")), "stage", "host.cgroup"),
    row("resources.blockIO.weightDevice", resources("blkio-weight-dev", {"blockIO": {"weightDevice": [
        {"major": 254, "minor": 0, "weight": 300}]}}, ("blkio", "blkio.weight_device"),
        ("blkio", "blkio.bfq.weight_device")), "stage", "host.cgroup"),
    row("resources.memory.checkBeforeUpdate", resources("mem-check", {"memory": {"limit": 64 << 20,
                                                                                "checkBeforeUpdate": True}}, MEM),
        "stage", "host.cgroup"),
    row("resources.network.priorities", resources("net-prio", {"network": {"priorities": [{"name": "lo",
                                                                                          "priority": 1}]}}),
        "stage"),
    row("resources.hugepageLimits", resources("hugetlb", {"hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 22}]},
                                              ("hugetlb", "hugetlb.2MB.limit_in_bytes")), "stage"),
    row("resources.network", resources("net-cls", {"network": {"classID": 1048577}}, ("net_cls", "net_cls.classid")),
        "stage"),
    row("resources.rdma", resources("rdma", {"rdma": {"mlx5_0": {"hcaHandles": 3}}}, ("rdma", "rdma.max")), "stage"),
    row("resources.unified-on-v1", resources("unified", {"unified": {"pids.max": "10"}}), "error"),
    row("resources.devices", resources("devices-cg", {"devices": [{"allow": False, "access": "rwm"},
                                                                  {"allow": True, "type": "c", "major": 1, "minor": 3,
                                                                   "access": "rw"}]},
                                       ("devices", "devices.list")), "host.cgroup",
        differs="the devices cgroup lacks runc's always-allowed rules (c *:* m, b *:* m, and its default devices)"),
    row("cgroupsPath/default", Scenario("cgpath-default", created=cgroup_paths), "host.paths",
        differs="the default cgroup of a container is /pyrt/TAG/ID (TAG from --root); runc 1.5 uses /ID (under the "
                "caller's cgroup where the caller's is not the root)"),
    row("cgroupsPath/relative", Scenario("cgpath-relative", linux(cgroupsPath="h7diffcg"), created=cgroup_paths),
        "stage", "host.paths", differs="a relative cgroupsPath is placed under /pyrt/TAG/; runc 1.5 places it at the "
                                       "hierarchy's root (v1: below its own cgroup where that is not the root)"),
    row("cgroupsPath/an-already-frozen-cgroup", Scenario("cgpath-frozen", frozen_cgroup, deleted=thaw_frozen_cgroup,
                                                                 timeout=5),
        "error", "host.left"),
    # linux.sysctl
    row("sysctl/namespaced", Scenario("sysctl", edit(lambda c: (c["linux"].update(sysctl={
        "net.ipv4.ip_forward": "1", "kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "20",
        "net.ipv4.conf.all.forwarding": "1"}), with_env(c, SYSCTLS="net.ipv4.ip_forward kernel.shm_rmid_forced "
                                                                  "fs.mqueue.msg_max net.ipv4.conf.all.forwarding"))
    )), "sysctl"),
    row("sysctl/slash-form", Scenario("sysctl-slash", edit(lambda c: (c["linux"].update(sysctl={
        "net/ipv4/ip_forward": "1"}), with_env(c, SYSCTLS="net.ipv4.ip_forward")))), "stage", "sysctl",
        differs='a sysctl in slash form ("net/ipv4/ip_forward") is refused; runc 1.5 accepts it'),
    row("sysctl/host-wide", Scenario("sysctl-host", linux(sysctl={"vm.swappiness": "60"})), "error"),
    row("sysctl/net-without-netns", Scenario("sysctl-no-netns", edit(lambda c: c["linux"].update(
        sysctl={"net.ipv4.ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()},
        namespaces=[{"type": k} for k in BASE_NS if k != "network"]))), "error"),
    row("sysctl/unknown", Scenario("sysctl-unknown", linux(sysctl={"net.nosuch": "1"})), "error"),
    # linux.seccomp
    row("seccomp/errno", seccomp("sc-errno", deny("SCMP_ACT_ERRNO", "mkdir", "mkdirat"), "mkdir /tmp/d"),
        "status", "extra"),
    row("seccomp/errnoRet", seccomp("sc-errnoret", deny("SCMP_ACT_ERRNO", "mkdir", "mkdirat", errnoRet=28),
                                    "mkdir /tmp/d"), "extra"),
    row("seccomp/kill-process", seccomp("sc-kill", deny("SCMP_ACT_KILL_PROCESS", "mkdir", "mkdirat"),
                                        "mkdir /tmp/d; echo alive"), "extra"),
    row("seccomp/trap", seccomp("sc-trap", deny("SCMP_ACT_TRAP", "mkdir", "mkdirat"), "mkdir /tmp/d; echo rc=$?"),
        "extra"),
    row("seccomp/log", seccomp("sc-log", deny("SCMP_ACT_LOG", "mkdir", "mkdirat"), "mkdir /tmp/d && echo made"),
        "extra"),
    row("seccomp/args-condition", seccomp("sc-args", deny("SCMP_ACT_ERRNO", "personality", args=[
        {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]), "setarch linux32 true 2>&1; uname -m"), "stage", "extra"),
    row("seccomp/architectures", seccomp("sc-archs", {**deny("SCMP_ACT_ERRNO", "mkdir", "mkdirat"), "architectures": [
        "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]}, "mkdir /tmp/d"), "extra"),
    row("seccomp/flags", seccomp("sc-flags", {**deny("SCMP_ACT_ERRNO", "mkdir", "mkdirat"), "flags": [
        "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]}, "mkdir /tmp/d"), "status", "extra"),
    row("seccomp/notify-with-listenerPath", seccomp("sc-notify", {**deny("SCMP_ACT_NOTIFY", "mkdir", "mkdirat"),
                                                                  "listenerPath": "/nosuch.sock"}, "true"), "error",
        "words:/nosuch.sock"),
    row("seccomp/listenerPath-without-notify", seccomp("sc-listener", {"defaultAction": "SCMP_ACT_ALLOW",
                                                                       "listenerPath": "/nosuch.sock"}, "true"),
        "stage"),
    row("seccomp/unknown-syscall-name", seccomp("sc-unknown-name", deny("SCMP_ACT_ERRNO", "nosuchcall", "mkdir",
                                                                        "mkdirat"), "mkdir /tmp/d"), "extra"),
    row("seccomp/startContainer-hooks-run-under-it", Scenario("sc-start-hook", edit(lambda c: (
        c["linux"].update(seccomp=deny("SCMP_ACT_ERRNO", "mkdir", "mkdirat")),
        c.update(hooks={"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "mkdir /tmp/d; grep ^Seccomp: "
                                                                        "/proc/self/status > /tmp/hook"]}]}),
        with_env(c, EXTRA="cat /tmp/hook; ls -d /tmp/d")))), "extra"),
    row("seccomp/noNewPrivileges-false", Scenario("sc-no-nnp", edit(lambda c: (c["process"].update(
        noNewPrivileges=False, capabilities={k: ["CAP_SYS_ADMIN"] for k in ("bounding", "effective", "permitted")}),
        c["linux"].update(seccomp=deny("SCMP_ACT_ERRNO", "mkdir", "mkdirat")), with_env(c, EXTRA="mkdir /tmp/d"))
    )), "status", "extra"),
    # maskedPaths, readonlyPaths
    row("maskedPaths/directory", Scenario("base"), "masked:/proc/acpi"),
    row("maskedPaths/file", Scenario("base"), "masked:/proc/kcore"),
    row("maskedPaths/missing", Scenario("masked-missing", linux(maskedPaths=["/nosuch", "/proc/kcore"])), "stage",
        "mounts"),
    row("maskedPaths/duplicate", Scenario("masked-dup", linux(maskedPaths=["/proc/kcore", "/proc/kcore"])),
        "mountinfo"),
    row("readonlyPaths", Scenario("base"), "masked:/proc/sys"),
    row("readonlyPaths/missing", Scenario("ro-missing", linux(readonlyPaths=["/nosuch", "/proc/sys"])), "stage",
        "mounts", "masked:/proc/sys"),
    row("readonlyPaths/a-mount-point", Scenario("ro-mountpoint", linux(readonlyPaths=["/dev/shm"])), "mounts"),
    # linux.rootfsPropagation (tests/test_propagation.py compares the host side)
    *(row(f"rootfsPropagation/{p}", Scenario(f"prop-{p}", linux(rootfsPropagation=p)), "stage", "mounts")
      for p in ("private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable")),
    row("rootfsPropagation/runbindable", Scenario("prop-runbindable", linux(rootfsPropagation="runbindable")),
        "stage", differs="rootfsPropagation runbindable with readonlyPaths runs; runc 1.5 fails (can't make "
                         "/proc/bus read-only: MS_BIND|MS_REC: invalid argument)"),
    row("rootfsPropagation/unknown", Scenario("prop-bad", linux(rootfsPropagation="sideways")), "stage"),
    # linux.personality
    row("personality/LINUX32", Scenario("pers32", linux(personality={"domain": "LINUX32"})), "stage", "personality"),
    row("personality/LINUX", Scenario("pers64", linux(personality={"domain": "LINUX"})), "stage", "personality"),
    row("personality/unknown-domain", Scenario("pers-bad", linux(personality={"domain": "SOLARIS"})), "stage"),
    # fields this host cannot honour or pyrt refuses
    row("intelRdt", Scenario("rdt", linux(intelRdt={"closID": "pyrt"})), "error", "words:intel rdt"),
    row("memoryPolicy/bind", Scenario("mempolicy", linux(memoryPolicy={"mode": "MPOL_BIND", "nodes": "0"})),
        "stage", "status"),
    row("memoryPolicy/empty", Scenario("mempolicy-empty", linux(memoryPolicy={})), "stage"),
    *(row(f"memoryPolicy/{name}", Scenario(f"mempolicy-{name}", extra(NUMA, memoryPolicy=mp)), "stage", "extra")
      for name, mp in MEMORY_POLICIES.items()),
    *(row(f"memoryPolicy/{name}", Scenario(f"mempolicy-{name}", linux(memoryPolicy=mp)), "error")
      for name, mp in BAD_MEMORY_POLICIES.items()),
    row("netDevices/missing-link", Scenario("netdev", linux(netDevices={"h7nosuch0": {}})), "error",
        "words:h7nosuch0"),
    row("mountLabel", Scenario("mountlabel", linux(mountLabel="system_u:object_r:container_file_t:s0")), "stage"),
]


@pytest.mark.parametrize(("scenario", "keys"), ROWS)
def test_linux(differ, scenario, keys):
    compare(differ(scenario), keys)

