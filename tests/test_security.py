"""Regression tests for the container-escape classes of ../shared/reference/security.md that
apply to create and run (the exec rows live with exec's tests). Rootfs tricks are planted in
private copies of the busybox rootfs, never in bundles/busybox/rootfs.

Tests marked pyrt_only attack holes runc 1.5 still has (or refuses what runc follows safely);
not_runc_1_1 marks the holes runc 1.5 closed and Debian's runc 1.1.5 still has."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BINARY, BUSYBOX_ROOTFS, REPO


def private_rootfs(tmp_path: Path, bundle) -> Path:
    root = tmp_path / "rootfs"
    shutil.copytree(BUSYBOX_ROOTFS, root, symlinks=True)
    bundle.config["root"]["path"] = str(root)
    return root


def without_mount(bundle, dest: str) -> None:
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != dest]


def add_mount(bundle, dest: str, kind: str, source: str, *options: str) -> None:
    bundle.config["mounts"].append({"destination": dest, "type": kind, "source": str(source),
                                    "options": list(options)})


def attempt(rt, bundle, *extra: str, command: str = "create") -> tuple[subprocess.CompletedProcess, str]:
    """create (or run) with stdio on files; returns the result and the id (for cleanup)."""
    cid = rt.new_id()
    bundle.write()
    with open(bundle.path / "out", "w+") as out, open(bundle.path / "err", "w+") as err:
        r = subprocess.run(rt.cmd(command, "--bundle", str(bundle.path), *extra, cid), stdin=subprocess.DEVNULL,
                           stdout=out, stderr=err, timeout=60)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(r.args, r.returncode, out.read(), err.read()), cid


def refused(rt, bundle, *extra: str) -> str:
    """create must fail with one line (returned) and leave nothing (the leak check sees the rest)."""
    r, _ = attempt(rt, bundle, *extra)
    assert r.returncode == 1, f"create was not refused: {r.stderr}"
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert not any(rt.root.iterdir())
    return r.stderr


def snapshot(path: Path) -> list[tuple[str, int, int, int]]:
    """Everything under a host directory: names, modes, owners."""
    out = []
    for p in sorted([path, *path.rglob("*")]):
        st = p.lstat()
        out.append((str(p.relative_to(path)), st.st_mode, st.st_uid, st.st_gid))
    return out


def host_mounts_under(path: Path) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(path) in line]


# ----------------------------------------------------------------------------- CVE-2019-5736


def host_hashes() -> dict[str, str]:
    """The files a container must never be able to write: the interpreter, pyrt, its helper."""
    files = [Path(os.path.realpath(sys.executable)), Path(os.path.realpath(shutil.which(BINARY)))]
    files += [p for p in (REPO / "pyrt").iterdir() if p.is_file()]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


# Inside the attacker's pid namespace: for ~5 s, every process's exe and mapped files are tried
# for writing; one line per process seen: pid|comm|readable:<exe> or denied|wrote or no.
ATTACK = r"""
end=$(( $(date +%s) + 5 ))
while [ $(date +%s) -lt $end ]; do
  for d in /proc/[0-9]*; do
    p=${d#/proc/}; [ $p = $$ ] && continue
    c=$(cat $d/comm 2>/dev/null)
    if x=$(readlink $d/exe 2>/dev/null); then r=readable:$x; else r=denied; fi
    if ( echo x >> $d/exe ) 2>/dev/null; then w=wrote; else w=no; fi
    for m in $d/map_files/*; do [ -e "$m" ] && ( echo x >> $m ) 2>/dev/null && w=wrote-map; done
    echo "$p|$c|$r|$w"
  done
  sleep 0.05
done | sort -u
"""
ORDINARY = {"sh", "sort", "sleep", "cat", "date", "readlink"}


@pytest.mark.parametrize("ptrace", [False, True], ids=["plain-root", "root-with-ptrace"])
def test_runtime_stages_cannot_be_overwritten_from_the_container(rt, bundle, ptrace):
    """CVE-2019-5736: a container whose pid namespace another container's init joins sees the
    runtime's stage while it is parked (created) and goes for its /proc/<pid>/exe."""
    before = host_hashes()
    if ptrace:
        for kind in ("bounding", "effective", "permitted"):
            bundle.process["capabilities"][kind] += ["CAP_SYS_PTRACE", "CAP_DAC_OVERRIDE"]
    attacker = rt.create(bundle.args("sh", "-c", ATTACK))
    rt.ok("start", attacker)
    pid = rt.wait_status(attacker, "running")["pid"]
    victim = bundle.copy("victim")
    del victim.config["hostname"]
    victim.config["linux"]["namespaces"] = [{"type": "pid", "path": f"/proc/{pid}/ns/pid"}, {"type": "mount"},
                                            {"type": "ipc"}, {"type": "network"}]
    victim.args("sleep", "1")
    parked = rt.create(victim)
    time.sleep(1.5)  # the attacker loops over the parked stage
    rt.ok("start", parked)
    rt.wait_status(attacker, "stopped", timeout=20)
    seen = [line.split("|") for line in (bundle.path / "stdout").read_text().splitlines()]
    stages = [fields for fields in seen if fields[1] and fields[1] not in ORDINARY]
    assert stages, f"the attacker never saw the runtime's stage: {seen}"
    assert not [fields for fields in seen if fields[3] != "no"], seen
    if not ptrace:
        # non-dumpable; the only exe ever readable is the container's own program, in the instant
        # between pyrt-init's execve and the kernel renaming the process after it
        assert all(fields[2] in ("denied", "readable:/bin/busybox") for fields in stages), stages
    assert host_hashes() == before
    rt.ok("delete", "--force", parked)
    rt.ok("delete", attacker)


# ----------------------------------------------------------------------------- CVE-2019-16884


@pytest.mark.parametrize("target", ["elsewhere", "/elsewhere", "../../../../../../../tmp"])
def test_proc_symlink_is_refused(rt, bundle, tmp_path, target):
    root = private_rootfs(tmp_path, bundle)
    (root / "elsewhere").mkdir()
    (root / "proc").rmdir()
    (root / "proc").symlink_to(target)
    refused(rt, bundle)
    assert not any((root / "elsewhere").iterdir())
    assert not host_mounts_under(root)


# ----------------------------------------------------------------------------- CVE-2021-30465, 2024-45310

RACER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = sys.argv[1].encode(), sys.argv[2].encode()
while True:
    libc.renameat2(-100, a, -100, b, 2)  # RENAME_EXCHANGE
"""


def test_mount_destination_symlink_race(rt, bundle, tmp_path):
    """A racer swaps a directory of the rootfs (a shared volume) with a symlink to a host
    directory while containers start: no mount and no mkdir ever lands outside the rootfs.
    (runc 1.1.5 predates the fix for CVE-2024-45310.)"""
    root = private_rootfs(tmp_path, bundle)
    outside, src = tmp_path / "outside", tmp_path / "src"
    outside.mkdir()
    src.mkdir()
    (src / "from-host").write_text("x\n")
    (root / "vol" / "d").mkdir(parents=True)
    (root / "vol" / "l").symlink_to(outside)
    (root / "vol" / "r").symlink_to("../" * 12 + str(outside).lstrip("/"))
    add_mount(bundle, "/vol/d/t", "tmpfs", "racemark")
    add_mount(bundle, "/vol/d/b", "bind", src, "rbind")
    add_mount(bundle, "/vol/d/new/deeper", "tmpfs", "racemark2")
    bundle.process["cwd"] = "/vol/d/w/x"
    bundle.config["root"]["readonly"] = False
    bundle.args("cat", "/proc/self/mountinfo")
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(root / "vol" / "d"), str(root / "vol" / link)])
              for link in ("l", "r")]
    started = 0
    try:
        for _ in range(25):
            r, cid = attempt(rt, bundle, command="run")
            if r.returncode == 0:
                started += 1
                mounts = [line.split(" - ")[1].split()[1] for line in r.stdout.splitlines()]
                assert "racemark" in mounts and "racemark2" in mounts, r.stdout
                assert any(str(src) in line for line in r.stdout.splitlines()), r.stdout
            else:
                assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
            assert not any(outside.iterdir()), sorted(outside.rglob("*"))
    finally:
        for p in racers:
            p.kill()
            p.wait()
    assert not host_mounts_under(outside)
    assert started, "no container started while racing"


def test_mount_targets_are_created_inside_the_root(rt, bundle, tmp_path):
    """CVE-2024-45310 without the race: mount destinations below a symlink to a host path
    (absolute or climbing with ..) are created inside the rootfs."""
    root = private_rootfs(tmp_path, bundle)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "abs").symlink_to(outside)
    (root / "rel").symlink_to("../" * 12 + str(outside).lstrip("/"))
    add_mount(bundle, "/abs/a/b", "tmpfs", "tmpfs")
    add_mount(bundle, "/rel/c/d", "tmpfs", "tmpfs")
    bundle.config["root"]["readonly"] = False
    r, _ = attempt(rt, bundle.args("cat", "/proc/self/mountinfo"), command="run")
    assert r.returncode == 0, r.stderr
    assert not any(outside.iterdir())
    points = [line.split()[4] for line in r.stdout.splitlines()]
    assert f"{outside}/a/b" in points and f"{outside}/c/d" in points  # in the container's /tmp


RENAMER = """
import os, sys
a, b = sys.argv[1], sys.argv[2]
while True:
    os.rename(a, b)
    os.rename(b, a)
"""


def test_renames_elsewhere_do_not_fail_setup(rt, bundle, tmp_path):
    """openat2(RESOLVE_IN_ROOT) fails with EAGAIN when any rename on the system races a ".."
    lookup: setup retries instead of failing the container."""
    root = private_rootfs(tmp_path, bundle)
    (root / "up").symlink_to("../../../../tmp/../srv")
    add_mount(bundle, "/up/x", "tmpfs", "tmpfs")
    bundle.process["cwd"] = "/up/../up/x/.."
    bundle.config["root"]["readonly"] = False
    (tmp_path / "a").write_text("")
    renamers = [subprocess.Popen([sys.executable, "-c", RENAMER, str(tmp_path / "a"), str(tmp_path / "b")])]
    try:
        for _ in range(20):
            r, _ = attempt(rt, bundle.args("true"), command="run")
            assert r.returncode == 0, r.stderr
    finally:
        for p in renamers:
            p.kill()
            p.wait()


def test_mount_target_through_a_symlink_loop_is_refused(rt, bundle, tmp_path):
    root = private_rootfs(tmp_path, bundle)
    (root / "one").symlink_to("two/deeper")
    (root / "two").symlink_to("/one")
    add_mount(bundle, "/one/x", "tmpfs", "tmpfs")
    r, _ = attempt(rt, bundle.args("true"))
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not any(rt.root.iterdir())


# ----------------------------------------------------------------------------- CVE-2025-31133


@pytest.mark.not_runc_1_1
@pytest.mark.parametrize("null", ["symlink", "file"])
def test_masking_refuses_a_fake_dev_null(rt, bundle, tmp_path, null):
    """/dev comes from a volume whose `null` is a symlink to a host /proc file, or a plain file:
    masking with it would expose that file; create is refused and the host file unchanged."""
    core_pattern = Path("/proc/sys/kernel/core_pattern").read_text()
    dev = tmp_path / "dev"
    dev.mkdir()
    if null == "symlink":
        (dev / "null").symlink_to("/proc/sys/kernel/core_pattern")
    else:
        (dev / "null").write_text("")
    without_mount(bundle, "/dev")
    bundle.config["mounts"].insert(1, {"destination": "/dev", "type": "bind", "source": str(dev),
                                       "options": ["rbind"]})
    err = refused(rt, bundle)
    assert "/dev/null" in err
    assert Path("/proc/sys/kernel/core_pattern").read_text() == core_pattern


@pytest.mark.not_runc_1_1
def test_dev_null_symlink_in_the_image_is_refused(rt, bundle, tmp_path):
    root = private_rootfs(tmp_path, bundle)
    without_mount(bundle, "/dev")
    (root / "dev" / "null").symlink_to("/proc/sys/kernel/core_pattern")
    assert "/dev/null" in refused(rt, bundle)


# ----------------------------------------------------------------------------- CVE-2025-52565


class ConsoleSocket:
    """A listening console socket (the refused creates never send to it)."""

    def __init__(self, path: Path) -> None:
        import socket

        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(4)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("plant", ["pts-symlink-with-devpts", "pts-symlink", "ptmx-symlink", "ptmx-host-node",
                                   "console-symlink"])
def test_terminal_refuses_planted_pts(rt, bundle, tmp_path, plant):
    """terminal:true on an image whose /dev carries a planted /dev/pts or /dev/console: the pty
    is never taken from, nor bound onto, something the image chose."""
    root = private_rootfs(tmp_path, bundle)
    without_mount(bundle, "/dev")
    if plant != "pts-symlink-with-devpts":
        without_mount(bundle, "/dev/pts")
    fake = root / "tmp" / "fakepts"
    fake.mkdir()
    (fake / "ptmx").write_text("")
    pts = root / "dev" / "pts"
    if plant.startswith("pts-symlink"):
        pts.symlink_to("../tmp/fakepts")
    elif plant == "ptmx-symlink":
        pts.mkdir()
        (pts / "ptmx").symlink_to("/dev/ptmx")
    elif plant == "ptmx-host-node":
        pts.mkdir()
        os.mknod(pts / "ptmx", 0o20666, os.makedev(5, 2))
    else:
        (root / "dev" / "console").symlink_to("/etc/passwd")
    bundle.process["terminal"] = True
    console = ConsoleSocket(tmp_path / "console.sock")
    try:
        refused(rt, bundle, "--console-socket", console.path)
    finally:
        console.close()
    assert (root / "etc" / "passwd").read_text().startswith("root:")


# ----------------------------------------------------------------------------- CVE-2025-52881


@pytest.mark.pyrt_only
def test_sysctl_write_refuses_a_file_mounted_over_proc(rt, bundle, tmp_path):
    """A volume mounted over /proc/sys/net: the sysctl write must not land in its file."""
    fake = tmp_path / "net"
    (fake / "ipv4").mkdir(parents=True)
    (fake / "ipv4" / "ip_forward").write_text("untouched\n")
    add_mount(bundle, "/proc/sys/net", "bind", fake, "rbind")
    bundle.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    assert "procfs" in refused(rt, bundle)
    assert (fake / "ipv4" / "ip_forward").read_text() == "untouched\n"


# ----------------------------------------------------------------------------- CVE-2026-41579


@pytest.mark.not_runc_1_1
@pytest.mark.parametrize("dev_mount", [True, False], ids=["dev-tmpfs", "image-dev"])
@pytest.mark.parametrize("absolute", [True, False], ids=["absolute", "relative"])
def test_dev_symlink_is_refused_and_the_host_untouched(rt, bundle, tmp_path, dev_mount, absolute):
    """An image with `dev -> /tmp/victim`: refused, and nothing is created in, mounted on or
    changed in the host directory (runc 1.1.5 makes /dev's symlinks there)."""
    root = private_rootfs(tmp_path, bundle)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "canary").write_text("host\n")
    before = snapshot(victim)
    (root / "dev").rmdir()
    (root / "dev").symlink_to(victim if absolute else "../" * 12 + str(victim).lstrip("/"))
    if not dev_mount:
        without_mount(bundle, "/dev")
    assert "/dev" in refused(rt, bundle)
    assert snapshot(victim) == before
    assert not host_mounts_under(victim)


# ----------------------------------------------------------------------------- CVE-2024-21626


WITH_FDS = """import os, sys
for n in range(3, 10):
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    if fd != n:
        os.dup2(fd, n)
        os.close(fd)
    os.set_inheritable(n, True)
os.execvp(sys.argv[1], sys.argv[1:])
"""


def test_cwd_through_proc_self_fd_is_refused(rt, bundle, tmp_path):
    """With host directory fds 3-9 handed to the runtime (as if leaked), a cwd through
    /proc/self/fd/N (or another magic link) never starts a container."""
    for cwd in [f"/proc/self/fd/{n}" for n in range(3, 65)]:
        bundle.process["cwd"] = cwd
        bundle.args("sh", "-c", "pwd; ls /").write()
        cid = rt.new_id()
        r = subprocess.run([sys.executable, "-c", WITH_FDS, *rt.cmd("run", "--bundle", str(bundle.path), cid)],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        assert r.returncode == 1, (cwd, r.stdout, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("cwd", ["/proc/self/fd/3", *(pytest.param(c, marks=pytest.mark.pyrt_only) for c in (
    "/proc/self/cwd", "/proc/1/root", "/proc/self/root/tmp"))])  # runc 1.5 follows these (they stay inside)
def test_cwd_through_magic_links_is_refused(rt, bundle, tmp_path, cwd):
    """No magic link is followed for cwd, not even an fd the caller passes on purpose (runc 1.5
    follows the ones that stay inside the container)."""
    bundle.process["cwd"] = cwd
    bundle.args("ls").write()
    r = subprocess.run([sys.executable, "-c", WITH_FDS, *rt.cmd("run", "--preserve-fds", "1", "--bundle",
                                                                 str(bundle.path), rt.new_id())],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and not r.stdout, r.stdout
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


# ----------------------------------------------------------------------------- host /dev/null and stdio


def test_host_dev_null_keeps_its_owner(rt, bundle):
    """A container user with stdio on the host's /dev/null (as engines start cleanup and detached
    containers) must not get the host's /dev/null chowned or chmodded."""
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.args("sh", "-c", "echo x > /dev/stdout; ls -l /proc/self/fd/ > /dev/null")
    bundle.write()
    cid = rt.new_id()
    with open("/dev/null", "r+") as null:
        r = subprocess.run(rt.cmd("run", "--bundle", str(bundle.path), cid), stdin=null, stdout=null, stderr=null,
                           timeout=30)
    assert r.returncode == 0
    st = os.stat("/dev/null")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o666)


def test_container_user_can_reopen_stdio_pipes(rt, bundle):
    """Images log to /dev/stdout as a non-root user: runc gives the user its stdio pipes."""
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.args("sh", "-c", "echo out > /dev/stdout; echo err > /dev/stderr").write()
    r = subprocess.run(rt.cmd("run", "--bundle", str(bundle.path), rt.new_id()), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stdout) == (0, "out\n"), r.stderr
    assert r.stderr.strip().endswith("err")


@pytest.mark.pyrt_only
def test_host_file_as_stdio_keeps_its_owner(rt, bundle, tmp_path):
    """Only pipes, sockets and the container's own terminal are given to the user: a host file
    passed as stdout keeps its owner (runc chowns it)."""
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    cid = rt.create(bundle.args("sh", "-c", "echo hi"))
    rt.ok("start", cid)
    rt.wait_status(cid, "stopped")
    st = (bundle.path / "stdout").stat()
    assert (st.st_uid, st.st_gid) == (0, 0)
    assert (bundle.path / "stdout").read_text() == "hi\n"
    rt.ok("delete", cid)
