"""pyrt-init never creates, re-owns or re-modes a file of the host on its own account: device
nodes, /dev's symlinks and /dev/console are made only on the container's own mounts (the rootfs
and the tmpfs mounts it made), an existing file is never chowned or chmodded, tmpcopyup copies
only into its new tmpfs, and stdio is given to the container's user only when it is a pipe,
socket or terminal of the container's (docs/architecture.md, "Security habits").

Every test works on a private copy of the busybox rootfs and on host directories under its
tmp_path, and compares a snapshot of the host side (names, types, modes, owners, device numbers,
contents) before and after. Device nodes exist only in those tmp dirs."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_security import ConsoleSocket, add_mount, attempt, private_rootfs, refused, without_mount

SDX = os.makedev(254, 0)  # a block device number no test machine is expected to have


def host_state(path: Path) -> list[tuple]:
    """Everything under a host directory: names, types and modes, owners, device numbers,
    file contents and link targets."""
    out = []
    for p in sorted([path, *path.rglob("*")]):
        st = p.lstat()
        data = p.read_bytes() if stat.S_ISREG(st.st_mode) else os.readlink(p) if p.is_symlink() else None
        out.append((str(p.relative_to(path)), st.st_mode, st.st_uid, st.st_gid, st.st_rdev, data))
    return out


def device(path: str, kind: str = "b", mode: int = 0o666, owner: int = 1234) -> dict:
    return {"path": path, "type": kind, "major": os.major(SDX), "minor": os.minor(SDX), "fileMode": mode,
            "uid": owner, "gid": owner}


def host_dir_with_node(tmp_path: Path) -> Path:
    """A host directory holding a block node as the host keeps one: brw------- root root."""
    host = tmp_path / "host"
    host.mkdir()
    os.mknod(host / "sdx", stat.S_IFBLK | 0o600, SDX)
    os.chmod(host / "sdx", 0o600)
    return host


# ----------------------------------------------------------------------------- linux.devices


@pytest.mark.parametrize("bound", ["directory", "node"])
def test_existing_node_in_a_host_bind_keeps_owner_and_mode(rt, bundle, tmp_path, bound):
    """Issue 8 §1.3: a host directory bound at /dev/host (or the host's node itself bound at the
    entry's path) and a linux.devices entry for the node with another mode and owner: the node
    is used as it is, the host's node is not changed."""
    host = host_dir_with_node(tmp_path)
    before = host_state(host)
    path = "/dev/host/sdx" if bound == "directory" else "/dev/sdx"
    if bound == "directory":
        add_mount(bundle, "/dev/host", "bind", host, "rbind")
    else:
        add_mount(bundle, path, "bind", host / "sdx", "bind")
    bundle.config["linux"]["devices"] = [device(path)]
    r, _ = attempt(rt, bundle.args("stat", "-c", "%a %u:%g %t:%T", path), command="run")
    assert (r.returncode, r.stdout) == (0, "600 0:0 fe:0\n"), r.stderr
    assert host_state(host) == before


@pytest.mark.pyrt_only
@pytest.mark.parametrize("path", ["/dev/host/sdy", "/dev/host/sub/sdy"])
def test_no_new_node_in_a_host_bind(rt, bundle, tmp_path, path):
    """A node (or its directory) missing from a host directory bound into /dev is refused, not
    made on the host (runc 1.5 makes a world-writable block node there)."""
    host = host_dir_with_node(tmp_path)
    before = host_state(host)
    add_mount(bundle, "/dev/host", "bind", host, "rbind")
    bundle.config["linux"]["devices"] = [device(path)]
    err = refused(rt, bundle)
    assert path in err and "not on the rootfs or a tmpfs of the container" in err, err
    assert host_state(host) == before


def test_existing_node_in_the_image_is_kept_as_it_is(rt, bundle, tmp_path):
    """An image /dev (no tmpfs on /dev) that ships the node: kept with the image's mode and
    owner, as runc does; a node the image does not have is made with the entry's."""
    root = private_rootfs(tmp_path, bundle)
    without_mount(bundle, "/dev")
    os.mknod(root / "dev" / "sdx", stat.S_IFBLK | 0o600, SDX)
    os.chmod(root / "dev" / "sdx", 0o600)
    before = host_state(root / "dev" / "sdx")
    bundle.config["linux"]["devices"] = [device("/dev/sdx"), device("/dev/new", mode=0o640)]
    r, _ = attempt(rt, bundle.args("stat", "-c", "%n %a %u:%g", "/dev/sdx", "/dev/new"), command="run")
    assert (r.returncode, r.stdout) == (0, "/dev/sdx 600 0:0\n/dev/new 640 1234:1234\n"), r.stderr
    assert host_state(root / "dev" / "sdx") == before


@pytest.mark.pyrt_only
def test_a_different_node_in_the_image_is_refused(rt, bundle, tmp_path):
    """The image's node is another device than the entry asks for: refused (runc keeps it
    silently), never replaced or changed."""
    root = private_rootfs(tmp_path, bundle)
    without_mount(bundle, "/dev")
    os.mknod(root / "dev" / "sdx", stat.S_IFBLK | 0o600, os.makedev(254, 1))
    before = host_state(root / "dev" / "sdx")
    bundle.config["linux"]["devices"] = [device("/dev/sdx")]
    assert "/dev/sdx" in refused(rt, bundle)
    assert host_state(root / "dev" / "sdx") == before


# ----------------------------------------------------------------------------- /dev on a host filesystem


def host_overlay_dev(bundle, tmp_path: Path, with_nodes: bool) -> Path:
    """/dev as an overlay whose layers are host directories (not a bind, but the host's files
    all the same); the mount targets under /dev exist in the lower layer."""
    host = tmp_path / "layers"
    for d in ("lower/pts", "lower/shm", "lower/mqueue", "upper", "work"):
        (host / d).mkdir(parents=True)
    if with_nodes:
        for name, minor in (("null", 3), ("zero", 5), ("full", 7), ("random", 8), ("urandom", 9)):
            os.mknod(host / "lower" / name, stat.S_IFCHR | 0o666, os.makedev(1, minor))
            os.chmod(host / "lower" / name, 0o666)
        os.mknod(host / "lower" / "tty", stat.S_IFCHR | 0o666, os.makedev(5, 0))
        os.chmod(host / "lower" / "tty", 0o666)
    without_mount(bundle, "/dev")
    bundle.config["mounts"].insert(1, {"destination": "/dev", "type": "overlay", "source": "overlay", "options": [
        f"lowerdir={host}/lower,upperdir={host}/upper,workdir={host}/work"]})
    return host


@pytest.mark.pyrt_only
@pytest.mark.parametrize("with_nodes", [False, True], ids=["empty", "with-nodes"])
def test_dev_on_a_host_overlay_is_not_written(rt, bundle, tmp_path, with_nodes):
    """/dev on an overlay of host directories: no node and no symlink lands in its upper layer
    and no existing node is re-owned there (runc 1.5 makes them all on the host). Empty: the
    first mknod is refused; with the nodes: they are kept, the /dev/fd symlink is refused."""
    host = host_overlay_dev(bundle, tmp_path, with_nodes)
    before = host_state(host / "lower"), host_state(host / "upper")
    err = refused(rt, bundle)
    assert ("symlink /dev/fd" if with_nodes else "mknod /dev/null") in err, err
    assert (host_state(host / "lower"), host_state(host / "upper")) == before


# ----------------------------------------------------------------------------- /dev/console


def host_dev_dir(bundle, tmp_path: Path) -> Path:
    """A host directory (not the host's /dev) bound at /dev, with a devpts on /dev/pts."""
    host = tmp_path / "hostdev"
    (host / "pts").mkdir(parents=True)
    for dest in ("/dev", "/dev/shm", "/dev/mqueue"):
        without_mount(bundle, dest)
    bundle.config["mounts"].insert(1, {"destination": "/dev", "type": "bind", "source": str(host),
                                       "options": ["rbind"]})
    bundle.config["linux"]["maskedPaths"] = []  # masking needs the container's /dev/null
    bundle.process["terminal"] = True
    return host


@pytest.mark.pyrt_only
def test_console_is_not_created_in_a_host_dev(rt, bundle, tmp_path):
    """terminal:true with /dev bound from a host directory without a console file: refused; no
    /dev/console is made on the host (runc 1.5 leaves an empty file there)."""
    host = host_dev_dir(bundle, tmp_path)
    before = host_state(host)
    console = ConsoleSocket(tmp_path / "console.sock")
    try:
        assert "/dev/console" in refused(rt, bundle, "--console-socket", console.path)
    finally:
        console.close()
    assert host_state(host) == before


@pytest.mark.not_runc_1_1
def test_console_file_of_a_host_dev_is_left_as_it_is(rt, bundle, tmp_path):
    """The same with a console file in the host directory: the terminal is bound over it in the
    container's mount namespace; the host's file keeps its mode, owner and content. (runc 1.1
    needs /dev/null and /dev/ptmx there as well.)"""
    host = host_dev_dir(bundle, tmp_path)
    (host / "console").write_text("host\n")
    os.chmod(host / "console", 0o600)
    before = host_state(host)
    console = ConsoleSocket(tmp_path / "console.sock")
    try:
        r, cid = attempt(rt, bundle, "--console-socket", console.path)
        assert r.returncode == 0, r.stderr
        rt.ok("delete", "--force", cid)
    finally:
        console.close()
    assert host_state(host) == before


# ----------------------------------------------------------------------------- stdio


def test_named_fifo_as_stdout_keeps_its_owner(rt, bundle, tmp_path):
    """Stdout on a named FIFO of the host (a file, not a pipe pyrt was given): the container's
    user gets nothing of it; its output still arrives (runc 1.5 does the same)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.args("sh", "-c", "echo hi").write()
    with open(fifo, "w") as out:
        r = subprocess.run(rt.cmd("run", "--bundle", str(bundle.path), rt.new_id()), stdin=subprocess.DEVNULL,
                           stdout=out, stderr=subprocess.PIPE, text=True, timeout=30)
    reader.join(10)
    assert (r.returncode, got) == (0, ["hi\n"]), r.stderr
    st = fifo.lstat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)


# ----------------------------------------------------------------------------- mount targets, cwd


def test_mount_targets_and_cwd_in_a_host_bind_are_made(rt, bundle, tmp_path):
    """The one thing made in a host directory bound into the container, as runc and Docker do:
    the mount points and cwd config.json places inside it (a volume nested in a volume), as
    empty root-owned directories, and nothing else."""
    private_rootfs(tmp_path, bundle)
    host = tmp_path / "data"
    host.mkdir()
    (host / "keep").write_text("host\n")
    add_mount(bundle, "/data", "bind", host, "rbind")
    add_mount(bundle, "/data/a/b", "tmpfs", "tmpfs")
    bundle.process["cwd"] = "/data/w"
    r, _ = attempt(rt, bundle.args("pwd"), command="run")
    assert (r.returncode, r.stdout) == (0, "/data/w\n"), r.stderr
    made = [(p, m & 0o7777, u, g) for p, m, u, g, _, _ in host_state(host)]
    assert made == [(".", 0o755, 0, 0), ("a", 0o755, 0, 0), ("a/b", 0o755, 0, 0), ("keep", 0o644, 0, 0),
                    ("w", 0o755, 0, 0)]


# ----------------------------------------------------------------------------- tmpcopyup

RACER = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = sys.argv[1].encode(), sys.argv[2].encode()
while True:
    libc.renameat2(-100, a, -100, b, 2)  # RENAME_EXCHANGE
"""


def test_tmpcopyup_never_copies_into_a_host_directory(rt, bundle, tmp_path):
    """A racer swaps the directory holding a tmpcopyup destination with a symlink to a host
    directory bound into the container: the copy (files with the image's owners and modes, and
    the mode of the covered directory) must land in the new tmpfs only, never in the host's."""
    root = private_rootfs(tmp_path, bundle)
    victim = tmp_path / "victim"
    (victim / "t").mkdir(parents=True)
    os.chmod(victim / "t", 0o700)
    before = host_state(victim)
    lower = root / "vol" / "d" / "t"
    lower.mkdir(parents=True)
    os.chmod(lower, 0o777)
    (lower / "copied").write_text("from the image\n")
    os.chmod(lower / "copied", 0o4755)
    (root / "vol" / "l").symlink_to("/victim")
    add_mount(bundle, "/victim", "bind", victim, "rbind")
    add_mount(bundle, "/vol/d/t", "tmpfs", "tmpfs", "tmpcopyup")
    bundle.config["root"]["readonly"] = False
    bundle.args("true")
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(root / "vol" / "d"), str(root / "vol" / "l")])
              for _ in range(2)]
    try:
        for _ in range(60):
            r, _ = attempt(rt, bundle, command="run")
            assert r.returncode in (0, 1), r.stderr
            assert host_state(victim) == before
    finally:
        for p in racers:
            p.kill()
            p.wait()


# ----------------------------------------------------------------------------- mount flags


@pytest.mark.not_runc_1_1
@pytest.mark.parametrize("option", ["ro", "rro"])
def test_read_only_bind_stays_read_only_under_a_race(rt, bundle, tmp_path, option):
    """A racer swaps the directory holding a read-only bind's destination with a symlink to
    /dev (where /dev/shm is another mount) while containers start: the host directory must be
    read-only in every container that starts, never writable because its `ro` landed on the
    other mount. (runc 1.5 passes this too; runc 1.1.5 does not.)"""
    root = private_rootfs(tmp_path, bundle)
    src = tmp_path / "src"
    src.mkdir()
    (root / "vol" / "d" / "shm").mkdir(parents=True)
    (root / "vol" / "l").symlink_to("/dev")
    add_mount(bundle, "/vol/d/shm", "bind", src, "rbind", option)
    bundle.config["root"]["readonly"] = False
    bundle.args("cat", "/proc/self/mountinfo")
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(root / "vol" / "d"), str(root / "vol" / "l")])
              for _ in range(2)]
    started = 0
    try:
        for _ in range(60):
            r, _ = attempt(rt, bundle, command="run")
            assert r.returncode in (0, 1), r.stderr
            if r.returncode == 0:
                started += 1
                binds = [line.split() for line in r.stdout.splitlines() if line.split()[3] == str(src)]
                assert binds and all("ro" in fields[5].split(",") for fields in binds), r.stdout
            assert not any(src.iterdir())
    finally:
        for p in racers:
            p.kill()
            p.wait()
    assert started
