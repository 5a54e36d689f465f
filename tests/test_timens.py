"""Time namespaces: linux.timeOffsets shift CLOCK_MONOTONIC and CLOCK_BOOTTIME (and /proc/uptime)
inside the container, set before its first process enters the namespace; exec and containers
joining by path see the same clocks. runc 1.5 is the oracle for everything not marked pyrt_only."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import IS_RUNC

DAY = 86400
MONO, BOOT = 10 * DAY, 3 * DAY

CLOCK_C = r"""
#include <stdio.h>
#include <time.h>
int main(void)
{
    struct timespec m, b;
    clock_gettime(CLOCK_MONOTONIC, &m);
    clock_gettime(CLOCK_BOOTTIME, &b);
    printf("%lld %lld\n", (long long)m.tv_sec, (long long)b.tv_sec);
    return 0;
}
"""


@pytest.fixture(scope="session")
def clock_binary(tmp_path_factory) -> Path:
    """A static program printing CLOCK_MONOTONIC and CLOCK_BOOTTIME in seconds (busybox has none)."""
    d = tmp_path_factory.mktemp("clock")
    (d / "clock.c").write_text(CLOCK_C)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(d / "clock"), str(d / "clock.c")], check=True)
    return d / "clock"


@pytest.fixture
def tbundle(bundle, clock_binary):
    bundle.config["linux"]["namespaces"].append({"type": "time"})
    bundle.config["linux"]["timeOffsets"] = {"monotonic": {"secs": MONO, "nanosecs": 500}, "boottime": {"secs": BOOT}}
    bundle.config["mounts"].append({"destination": "/tmp/clock", "type": "bind", "source": str(clock_binary),
                                    "options": ["bind", "ro"]})
    return bundle


def host_clocks() -> tuple[float, float]:
    return time.clock_gettime(time.CLOCK_MONOTONIC), time.clock_gettime(time.CLOCK_BOOTTIME)


def check_shifted(out: str, before: tuple[float, float], after: tuple[float, float]) -> None:
    """`/clock; cat /proc/uptime` output: the clocks shifted by the offsets (within the run's time)."""
    lines = out.splitlines()
    mono, boot = (int(x) for x in lines[0].split())
    uptime = float(lines[1].split()[0])
    assert before[0] + MONO - 1 <= mono <= after[0] + MONO + 1
    assert before[1] + BOOT - 1 <= boot <= after[1] + BOOT + 1
    assert before[1] + BOOT - 1 <= uptime <= after[1] + BOOT + 1


def test_offsets_inside(rt, tbundle):
    tbundle.args("sh", "-c", "/tmp/clock; cat /proc/uptime; cat /proc/self/timens_offsets; echo $$").write()
    before = host_clocks()
    r = rt("run", "--bundle", str(tbundle.path), rt.new_id())
    after = host_clocks()
    assert r.returncode == 0, r.stderr
    check_shifted(r.stdout, before, after)
    lines = r.stdout.splitlines()
    assert lines[2].split() == ["monotonic", str(MONO), "500"] and lines[3].split() == ["boottime", str(BOOT), "0"]
    assert lines[4] == "1"  # still the pid namespace's init


def test_exec_and_join_by_path_see_the_same_clocks(rt, tbundle):
    tbundle.args("sleep", "60")
    cid = rt.create(tbundle)
    rt.ok("start", cid)
    pid = rt.wait_status(cid, "running")["pid"]
    before = host_clocks()
    out = rt.ok("exec", cid, "sh", "-c", "/tmp/clock; cat /proc/uptime; readlink /proc/self/ns/time").stdout
    check_shifted(out, before, host_clocks())
    assert out.splitlines()[2] == os.readlink(f"/proc/{pid}/ns/time")
    other = tbundle.copy("other")
    del other.config["linux"]["timeOffsets"]
    other.config["linux"]["namespaces"] = [{"type": "time", "path": f"/proc/{pid}/ns/time"} if n["type"] == "time"
                                           else n for n in tbundle.config["linux"]["namespaces"]]
    other.args("sh", "-c", "/tmp/clock; cat /proc/uptime; readlink /proc/self/ns/time").write()
    before = host_clocks()
    r = rt("run", "--bundle", str(other.path), rt.new_id())
    assert r.returncode == 0, r.stderr
    check_shifted(r.stdout, before, host_clocks())
    assert r.stdout.splitlines()[2] == os.readlink(f"/proc/{pid}/ns/time")
    rt.ok("delete", "--force", cid)


def test_time_namespace_without_offsets(rt, bundle):
    bundle.config["linux"]["namespaces"].append({"type": "time"})
    bundle.args("sh", "-c", "cat /proc/self/timens_offsets; readlink /proc/self/ns/time").write()
    r = rt("run", "--bundle", str(bundle.path), rt.new_id())
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["monotonic", "0", "0"] and lines[2] != os.readlink("/proc/self/ns/time")


def test_offsets_without_a_time_namespace(rt, bundle):
    bundle.config["linux"]["timeOffsets"] = {"boottime": {"secs": 5}}
    bundle.write()
    r = rt("create", "--bundle", str(bundle.path), rt.new_id())
    assert r.returncode == 1
    assert "time namespace offsets specified, but time namespace isn't enabled in the config" in r.stderr
    if not IS_RUNC:
        assert "config.json: linux.timeOffsets: " in r.stderr and len(r.stderr.strip().splitlines()) == 1


BAD = [
    ({"monotonic": {"secs": 1, "nanosecs": 1_000_000_000}}, "linux.timeOffsets.monotonic.nanosecs: must be between"),
    ({"monotonic": {"secs": 1, "nanosecs": -1}}, "linux.timeOffsets.monotonic.nanosecs: must be between"),
    ({"realtime": {"secs": 1}}, "linux.timeOffsets: unknown clock"),
    ({"boottime": {"secs": 1 << 63}}, "linux.timeOffsets.boottime.secs: must be a signed 64-bit"),
    ({"boottime": {"secs": "1"}}, "linux.timeOffsets.boottime.secs: must be an integer"),
]


@pytest.mark.pyrt_only
@pytest.mark.parametrize("offsets,message", BAD, ids=[m.split(":")[1].strip() + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_offsets(rt, bundle, offsets, message):
    bundle.config["linux"]["namespaces"].append({"type": "time"})
    bundle.config["linux"]["timeOffsets"] = offsets
    bundle.write()
    r = rt("create", "--bundle", str(bundle.path), rt.new_id())
    assert r.returncode == 1 and f"config.json: {message}" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.pyrt_only
def test_plan_writes_offsets_before_the_fork(rt, tbundle):
    tbundle.write()
    lines = rt.ok("plan", str(tbundle.path)).stdout.splitlines()
    unshare = next(i for i, line in enumerate(lines) if "unshare the pid+time namespace" in line
                   or "unshare the time+pid namespace" in line)
    assert "set the new time namespace's offsets: monotonic 864000s 500ns, boottime 259200s 0ns" in lines[unshare + 1]
    assert "fork" in lines[unshare + 2]
