"""Faults (issue 8 §2): `pyrt create` killed at any instant leaves nothing that `delete --force`
cannot remove, and a failure is one line naming what failed, never `internal error`.

Kills come two ways: deterministically, with strace injecting a SIGKILL on entry to the Nth
call of each system call that changes something (every mkdir, setxattr, mknodat, openat,
write, renameat, clone3 of a create: each instant between two side effects), and as real
SIGKILLs from outside at random instants of a create.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
import zlib
from pathlib import Path

import cgroupfs
import pytest
from conftest import reap, wait_for

#: The system calls of a create that change the host or the state directory.
SIDE_EFFECTS = ("mkdir", "setxattr", "mknodat", "openat", "write", "renameat", "clone3")


def _bases() -> list[Path]:
    return [cgroupfs.UNIFIED] + ([] if cgroupfs.V2_HOST else list(dict.fromkeys(cgroupfs.v1_mounts().values())))


class KilledCreates:
    """Creates of a busybox container (its cgroup two parents deep below pyrt's parent for the
    root, a pid file beside it) that something kills; after each, `delete --force` and a check
    that nothing is left."""

    def __init__(self, rt, bundle, tmp_path: Path) -> None:
        self.rt, self.tmp = rt, tmp_path
        bundle.config["linux"]["cgroupsPath"] = "sub/leaf"  # relative: pyrt/<tag>/sub/leaf
        self.bundle = bundle.args("sleep", "100").write()
        self.tag = f"{zlib.crc32(str(rt.root).encode()):08x}"
        self.pid_dir = tmp_path / "pids"
        self.pid_dir.mkdir()

    def new_id(self) -> str:
        """An id the leak check after the test does not look for (hundreds would slow it down):
        each one is checked here instead, and handed to it only if something was left."""
        return "k" + os.urandom(5).hex()

    def argv(self, cid: str) -> list[str]:
        self.bundle.config["linux"]["cgroupsPath"] = f"sub/{cid}"
        self.bundle.write()
        return self.rt.cmd("create", "--bundle", str(self.bundle.path), "--pid-file", str(self.pid_dir / "pid"), cid)

    def popen(self, argv: list[str]) -> subprocess.Popen:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def clean_up_and_check(self, cid: str, how: str) -> None:
        reap()
        r = self.rt("delete", "--force", cid)
        if r.returncode:
            self.rt.ids.add(cid)
        assert r.returncode == 0 and not r.stderr, f"{how}: delete --force: {r.stderr}"
        reap()
        left = [f"state {p}" for p in [self.rt.root / cid] if p.exists()]
        left += [f"cgroup {p}" for p in (b / "pyrt" / self.tag for b in _bases()) if p.exists()]
        left += [f"file {p}" for p in self.pid_dir.iterdir() if p.name != "pid"]
        deadline = time.monotonic() + 5
        while _processes_in(cid) and time.monotonic() < deadline:  # zombies are reaped a moment later
            reap()
            time.sleep(0.01)
        left += [f"process {p}" for p in _processes_in(cid)]
        if left:
            self.rt.ids.add(cid)
        assert not left, f"{how}: left behind after delete --force: {left}"
        (self.pid_dir / "pid").unlink(missing_ok=True)


def _processes_in(cid: str) -> list[int]:
    """Processes whose cgroup names the container (they would block its removal)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if f"/{cid}" in Path(f"/proc/{pid}/cgroup").read_text():
                    found.append(int(pid))
            except OSError:
                pass
    return found


@pytest.mark.pyrt_only  # runc makes no such promise (a killed `runc create` leaves its init behind)
def test_create_killed_at_each_side_effect(rt, bundle, tmp_path):
    """SIGKILL on entry to every call of every side-effect system call of a create (strace
    counts them in a first run): after each, `delete --force` leaves nothing. Among them, the
    instant between a cgroup's mkdir and its mark, which left cgroups behind before the journal."""
    if not shutil.which("strace"):
        pytest.fail("this test needs strace (the Makefile's deps install it)")
    kc = KilledCreates(rt, bundle, tmp_path)
    trace = tmp_path / "trace"
    cid = kc.new_id()
    subprocess.run(["strace", "-o", str(trace), "-e", "trace=" + ",".join(SIDE_EFFECTS), *kc.argv(cid)],
                   check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kc.clean_up_and_check(cid, "an untroubled create")
    calls = [line.split("(", 1)[0] for line in trace.read_text().splitlines() if "(" in line]
    counts = {name: calls.count(name) for name in SIDE_EFFECTS}
    assert counts["mkdir"] >= 3 and counts["setxattr"] >= 3 and counts["clone3"] == 1, counts
    for name, count in counts.items():
        for n in range(1, count + 1):
            cid = kc.new_id()
            p = kc.popen(["strace", "-o", "/dev/null", "-e", f"trace={name}", "-e",
                          f"inject={name}:signal=KILL:when={n}", *kc.argv(cid)])
            p.wait(timeout=30)
            kc.clean_up_and_check(cid, f"killed on entry to {name} #{n}")
    cid = kc.new_id()  # and the same root, id and path work afterwards
    subprocess.run(kc.argv(cid), check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    kc.clean_up_and_check(cid, "a create after all these")


@pytest.mark.pyrt_only
def test_create_killed_at_random_instants(rt, bundle, tmp_path):
    """Real SIGKILLs from outside, at random instants over a whole create (and a bit past it),
    for about 20 seconds: after each, `delete --force` leaves nothing."""
    kc = KilledCreates(rt, bundle, tmp_path)
    durations = []
    for _ in range(3):
        cid = kc.new_id()
        start = time.monotonic()
        subprocess.run(kc.argv(cid), check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        durations.append(time.monotonic() - start)
        kc.clean_up_and_check(cid, "an untroubled create")
    span = 1.2 * sorted(durations)[1]
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    deadline, kills = time.monotonic() + 20, 0
    while time.monotonic() < deadline:
        cid = kc.new_id()
        delay = rng.uniform(0, span)
        p = kc.popen(kc.argv(cid))
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        kills += p.returncode == -signal.SIGKILL
        kc.clean_up_and_check(cid, f"killed after {delay * 1000:.1f} ms (seed {seed})")
    assert kills >= 50, f"only {kills} creates were killed before they finished"


# ----------------------------------------------------------------------------- error lines


def _one_line_error(r: subprocess.CompletedProcess, *words: str) -> None:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "internal error" not in r.stderr, r.stderr
    assert all(w in r.stderr for w in words), r.stderr


@pytest.fixture
def full_root(tmp_path):
    """A state root on a tiny tmpfs, to be filled by the test."""
    root = tmp_path / "full"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(root)], check=True)
    yield root
    subprocess.run(["umount", "-l", str(root)], check=True)


@pytest.mark.pyrt_only  # runc 1.5 leaves its init behind
@pytest.mark.parametrize("room", [0, 4096, 8192])
def test_full_state_filesystem(rt, bundle, full_root, room):
    """A --root whose filesystem is full (or has room for the journal but not state.json, or
    for that but not the pid file beside it): one line naming what failed, nothing left."""
    (full_root / "fill").write_bytes(b"\0" * (16384 - room))
    rt.root = full_root
    cid = rt.new_id()
    bundle.args("sleep", "100").write()
    r = rt("create", "--bundle", str(bundle.path), "--pid-file", str(full_root / "pid"), cid)
    _one_line_error(r, "no space left on device", str(full_root))
    assert sorted(p.name for p in full_root.iterdir()) == ["fill"]
    assert not _processes_in(cid)


@pytest.mark.pyrt_only
def test_create_short_of_file_descriptors(rt, bundle):
    """Out of file descriptors (a tight RLIMIT_NOFILE) at each step of create that opens one:
    one line naming what failed (never `internal error`), nothing left behind."""
    import resource

    bundle.args("sleep", "100").write()
    for nofile in range(8, 24):
        cid = rt.new_id()
        r = subprocess.run(rt.cmd("create", "--bundle", str(bundle.path), cid), capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=30,
                           preexec_fn=lambda n=nofile: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)))
        if r.returncode:
            _one_line_error(r)
        rt.ok("delete", "--force", cid)
        assert not _processes_in(cid)


def test_cgroup_that_had_cgroup_kill_written(rt, bundle, tmp_path):
    """Linux 6.x kills a process cloned (CLONE_INTO_CGROUP) into a cgroup that once had
    cgroup.kill written: pyrt sees it and moves its init in instead (runc does too), for create
    as for exec."""
    name = f"pyrt-test-{os.urandom(4).hex()}"
    bases = _bases()
    for b in bases:
        (b / name).mkdir()
        for f in ("cpuset.cpus", "cpuset.mems"):
            if (b / f).exists():
                (b / name / f).write_text((b / f).read_text())
    try:
        (cgroupfs.UNIFIED / name / "cgroup.kill").write_text("1")
        bundle.config["linux"]["cgroupsPath"] = "/" + name
        cid = rt.create(bundle.args("sleep", "100"))
        rt.ok("start", cid)
        r = rt("exec", cid, "cat", "/proc/self/cgroup")
        assert r.returncode == 0 and f"0::/{name}" in r.stdout, r.stderr
        rt.ok("delete", "--force", cid)
    finally:
        for b in bases:
            wait_for(lambda b=b: _try_rmdir(b / name), what=f"{b / name} to go")


def _try_rmdir(path: Path) -> bool:
    try:
        path.rmdir()
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True
