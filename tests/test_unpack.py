"""`pyrt unpack`: images made here, unpacked by pyrt and by Debian's umoci (the oracle), and the
bundles run. Hostile archives are in test_unpack_hostile.py; podman's images in test_image_demo.py.
"""

from __future__ import annotations

import json
import os
import random
import select
import subprocess
import sys
import time
from pathlib import Path

import engines
import pytest
from conftest import BINARY, BUSYBOX_ROOTFS
from images import Layer, tree, write_layout

pytestmark = pytest.mark.pyrt_only

# file capability cap_net_raw+ep (VFS_CAP_REVISION_2): a security.* xattr umoci keeps too
CAP_NET_RAW = bytes.fromhex("0100000200200000000000000000000000000000")
PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
GROUP = b"root:x:0:\nstaff:x:50:app\napp:x:1000:\nextra:x:2000:root,app\n"
CONFIG = {"Entrypoint": ["/bin/tool", "--flag"], "Cmd": ["arg"], "Env": ["PATH=/bin:/usr/bin", "FOO=bar=baz"],
          "WorkingDir": "/data", "User": "app", "Labels": {"org.example.k": "v"},
          "ExposedPorts": {"8080/tcp": {}, "53/udp": {}}, "Volumes": {"/vol": {}}, "StopSignal": "SIGINT"}


def unpack(image: Path, bundle: Path, *flags: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([BINARY, "unpack", *flags, str(image), str(bundle)], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, **kw)


def umoci(layout: Path, ref: str, bundle: Path) -> None:
    r = subprocess.run(["umoci", "unpack", "--image", f"{layout}:{ref}", str(bundle)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr


def layers() -> list[Layer]:
    """Three layers with every kind of entry, owner, mode bit and whiteout the spec knows."""
    big = random.Random(1).randbytes(3 << 20)
    base = (Layer().dir("./").dir("etc").file("etc/passwd", PASSWD).file("etc/group", GROUP)
            .dir("bin").file("bin/tool", b"#!/bin/sh\n", 0o4755).file("bin/sgid", b"x", 0o2755, gid=50)
            .file("bin/cap", b"cap", 0o755, xattrs={"security.capability": CAP_NET_RAW})
            .dir("data", 0o700, uid=1000, gid=1000).file("data/a.txt", b"one", xattrs={"user.note": b"hello"})
            .hardlink("data/hard", "data/a.txt").symlink("data/sym", "a.txt").symlink("data/abs", "/etc/passwd")
            .symlink("data/dangling", "../nowhere").dir("tmp", 0o1777)
            .dir("dev").device("dev/null", "char", 1, 3).device("dev/loop9", "block", 7, 9, 0o660, gid=6)
            .device("dev/fifo", "fifo", mode=0o600).dir("long").file("long/" + "x" * 150, b"long")
            .file("naïve-日本.txt", b"u").file("gone.txt", b"g").dir("gone-dir").file("gone-dir/c", b"c")
            .dir("opaque").file("opaque/old.txt").dir("opaque/sub").file("opaque/sub/deep.txt")
            .dir("rfile").file("rfile/child").file("rdir", b"f").symlink("symdir", "data").file("big.bin", big)
            .file("setuid-later", b"s", 0o755).file("implicit/parent/file", b"no dir entries above me"))
    upper = (Layer().whiteout("gone.txt").whiteout("gone-dir").dir("opaque").opaque("opaque")
             .file("opaque/new.txt", b"n").file("rfile", b"now a file").dir("rdir", 0o750).file("rdir/child", b"c")
             .dir("symdir").file("symdir/inner").file("data/a.txt", b"two", uid=1000)
             .file("setuid-later", b"s", 0o6755, uid=1000, gid=50).dir("opaque2").file("opaque2/mine")
             .opaque("opaque2").whiteout("opaque2/mine-not"))
    top = (Layer().whiteout("data/sym").file("top.txt", b"top").whiteout("rdir/child")
           .dir("data", 0o750, uid=1000, gid=1000))
    return [base, upper, top]


@pytest.fixture(scope="module")
def oracle(tmp_path_factory) -> tuple[Path, Path]:
    """The three layers (gzip, gzip, uncompressed) as an OCI layout, and umoci's bundle of it."""
    work = tmp_path_factory.mktemp("oracle")
    tars = [layer.bytes() for layer in layers()]
    layout = write_layout(work / "image", list(zip(tars, ("gzip", "gzip", "none"), strict=True)), CONFIG)
    umoci(layout, "test", work / "umoci")
    return layout, work / "umoci"


def test_tree_and_config_match_umoci(oracle, tmp_path):
    layout, theirs = oracle
    r = unpack(layout, tmp_path / "bundle")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    ours = tree(tmp_path / "bundle" / "rootfs")
    assert ours == tree(theirs / "rootfs")
    # the cases that matter most, spelled out
    assert ours["bin/tool"][1] == "0o4755" and ours["setuid-later"][1:4] == ("0o6755", 1000, 50)
    assert ours["bin/cap"][6] == (("security.capability", CAP_NET_RAW),)
    assert ours["data/hard"][5] != ours["data/a.txt"][5], "a later layer's write must break the hard link"
    assert ours["dev/loop9"][0] == oct(0o060000) and ours["dev/loop9"][5] == (7, 9)
    assert "gone.txt" not in ours and "gone-dir" not in ours and "data/sym" not in ours
    assert sorted(k for k in ours if k.startswith("opaque")) == ["opaque", "opaque/new.txt", "opaque2",
                                                                 "opaque2/mine"]
    assert ours["symdir"][0] == oct(0o040000) and ours["rfile"][0] == oct(0o100000)

    mine, umocis = (json.loads((b / "config.json").read_text()) for b in (tmp_path / "bundle", theirs))
    for key in ("args", "cwd", "user"):
        assert mine["process"][key] == umocis["process"][key], key
    assert mine["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [50, 2000]}
    assert mine["process"]["env"] == umocis["process"]["env"] == [
        "PATH=/bin:/usr/bin", "TERM=xterm", "FOO=bar=baz", "HOME=/home/app"]
    assert mine["annotations"] == {k: v for k, v in umocis["annotations"].items()
                                   if v and k != "org.opencontainers.image.created"}
    assert [m for m in mine["mounts"] if m["destination"] == "/vol"] == \
           [m for m in umocis["mounts"] if m["destination"] == "/vol"]
    # the bundle: 0700 (setuid programs inside), no temporary directory left beside it
    assert (tmp_path / "bundle").stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


@pytest.mark.parametrize("user, expect", [
    ("app:staff", {"uid": 1000, "gid": 50}),
    ("1000", {"uid": 1000, "gid": 1000, "additionalGids": [50, 2000]}),
    ("", {"uid": 0, "gid": 0, "additionalGids": [2000]}),
    ("0:extra", {"uid": 0, "gid": 2000}),
    ("5000:6000", {"uid": 5000, "gid": 6000}),
])
def test_user_resolution_matches_umoci(tmp_path, user, expect):
    base = Layer().dir("etc").file("etc/passwd", PASSWD).file("etc/group", GROUP)
    layout = write_layout(tmp_path / "image", [(base.bytes(), "gzip")], {"User": user})
    umoci(layout, "test", tmp_path / "umoci")
    assert unpack(layout, tmp_path / "bundle").returncode == 0
    mine, umocis = (json.loads((tmp_path / b / "config.json").read_text())["process"] for b in ("bundle", "umoci"))
    assert mine["user"] == umocis["user"] == expect


def test_unknown_user_is_refused(tmp_path):
    base = Layer().dir("etc").file("etc/passwd", PASSWD).file("etc/group", GROUP)
    for user, word in (("nosuch", "no user 'nosuch'"), ("app:nosuch", "no group 'nosuch'")):
        layout = write_layout(tmp_path / f"image-{word[3:7]}", [(base.bytes(), "none")], {"User": user})
        r = unpack(layout, tmp_path / "bundle")
        assert r.returncode == 1 and word in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert not (tmp_path / "bundle").exists()


def test_passwd_is_read_inside_the_root(tmp_path):
    # /etc/passwd a symlink to the host's: resolved inside the rootfs (missing there), never the host's
    base = Layer().dir("etc").symlink("etc/passwd", "/../../../../etc/passwd")
    layout = write_layout(tmp_path / "image", [(base.bytes(), "none")], {"User": "root"})
    r = unpack(layout, tmp_path / "bundle")
    assert r.returncode == 1 and "no user 'root'" in r.stderr, r.stderr
    # a FIFO there would block a reader: it is not read
    base = Layer().dir("etc").device("etc/passwd", "fifo")
    layout = write_layout(tmp_path / "image2", [(base.bytes(), "none")], {"User": "1"})
    assert unpack(layout, tmp_path / "bundle").returncode == 0


def test_zstd_layers_unpack_like_gzip(tmp_path):
    tars = [layer.bytes() for layer in layers()]
    for how in ("gzip", "zstd"):
        layout = write_layout(tmp_path / f"image-{how}", [(t, how) for t in tars], CONFIG)
        r = unpack(layout, tmp_path / how)
        assert r.returncode == 0, r.stderr
    assert tree(tmp_path / "zstd" / "rootfs") == tree(tmp_path / "gzip" / "rootfs")


def test_zstd_without_the_package_is_one_clear_line(tmp_path):
    layout = write_layout(tmp_path / "image", [(Layer().file("f", b"x").bytes(), "zstd")])
    code = ("import sys; sys.modules['zstandard'] = None; from pyrt.cli import main; "
            f"sys.exit(main(['unpack', {str(layout)!r}, {str(tmp_path / 'bundle')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=str(Path(__file__).resolve().parent.parent))
    assert r.returncode == 1, r.stderr
    assert "zstd-compressed: install the Python package zstandard" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "bundle").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["image"]


def test_unpacked_bundle_runs(tmp_path):
    # busybox as a one-layer image: the bundle runs as the image's user, in its workdir, with its env
    layer = engines.rootfs_tar(BUSYBOX_ROOTFS)
    layout = write_layout(tmp_path / "image", [(layer, "gzip")], {
        "Entrypoint": ["sh", "-c"], "Cmd": ["id; pwd; echo $GREETING $HOME"], "User": "nobody",
        "WorkingDir": "/tmp", "Env": ["GREETING=hello"]})
    assert unpack(layout, tmp_path / "bundle").returncode == 0
    r = subprocess.run([BINARY, "--root", str(tmp_path / "state"), "run", str(tmp_path / "bundle")],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["uid=65534(nobody) gid=65534(nogroup)", "/tmp",
                                     "hello /"]


def test_ref_selection(tmp_path):
    layout = write_layout(tmp_path / "image", [(Layer().file("one", b"1").bytes(), "none")],
                          ref="localhost/demo:v1")
    other = write_layout(tmp_path / "other", [(Layer().file("two", b"2").bytes(), "none")])
    index = json.loads((layout / "index.json").read_text())
    second = json.loads((other / "index.json").read_text())["manifests"][0]
    second["annotations"]["org.opencontainers.image.ref.name"] = "localhost/demo:v2"
    index["manifests"].append(second)
    for blob in (other / "blobs" / "sha256").iterdir():
        (layout / "blobs" / "sha256" / blob.name).write_bytes(blob.read_bytes())
    (layout / "index.json").write_text(json.dumps(index))

    r = unpack(layout, tmp_path / "b")
    assert r.returncode == 1 and "2 images inside (localhost/demo:v1, localhost/demo:v2" in r.stderr
    assert "--ref" in r.stderr and not (tmp_path / "b").exists()
    for ref, present in (("v2", "two"), ("demo:v1", "one"), ("localhost/demo:v2", "two"), (second["digest"], "two")):
        bundle = tmp_path / f"b-{present}-{len(ref)}"
        assert unpack(layout, bundle, "--ref", ref).returncode == 0
        assert [p.name for p in (bundle / "rootfs").iterdir()] == [present]
    r = unpack(layout, tmp_path / "b", "--ref", "v3")
    assert r.returncode == 1 and "no image named 'v3'" in r.stderr


@pytest.mark.parametrize("setup, word", [
    ("missing", "no such file or directory"),
    ("not-image", "not an OCI image layout"),
    ("not-empty", "exists and is not an empty directory"),
    ("garbage-file", "not an image archive"),
])
def test_bad_arguments_are_one_line(tmp_path, setup, word):
    layout = write_layout(tmp_path / "image", [(Layer().file("f").bytes(), "none")])
    bundle = tmp_path / "bundle"
    if setup == "missing":
        layout = tmp_path / "nothing"
    elif setup == "not-image":
        layout = tmp_path / "empty"
        layout.mkdir()
    elif setup == "not-empty":
        bundle.mkdir()
        (bundle / "keep").write_text("mine")
    else:
        layout = tmp_path / "garbage.tar"
        layout.write_bytes(os.urandom(4096))
    r = unpack(layout, bundle)
    assert r.returncode == 1 and word in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    assert (bundle / "keep").exists() if setup == "not-empty" else not bundle.exists()


def test_empty_bundle_dir_is_filled(tmp_path):
    layout = write_layout(tmp_path / "image", [(Layer().file("f", b"x").bytes(), "none")])
    (tmp_path / "bundle").mkdir()
    assert unpack(layout, tmp_path / "bundle").returncode == 0
    assert (tmp_path / "bundle" / "rootfs" / "f").read_bytes() == b"x"


def test_progress_bar_only_on_a_terminal(tmp_path):
    big = random.Random(2).randbytes(4 << 20)
    layout = write_layout(tmp_path / "image", [(Layer().file("big", big).bytes(), "gzip"),
                                               (Layer().file("small").bytes(), "gzip")])
    r = unpack(layout, tmp_path / "quiet")
    assert r.returncode == 0 and r.stderr == "" and r.stdout == ""
    master, slave = os.openpty()
    proc = subprocess.Popen([BINARY, "unpack", str(layout), str(tmp_path / "tty")], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    seen, deadline = b"", time.monotonic() + 60
    while time.monotonic() < deadline:
        if select.select([master], [], [], 1)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    assert proc.wait(timeout=30) == 0
    text = seen.decode()
    assert "\rlayer 1/2 sha256:" in text and "4.2/4.2 MB" in text and "[######" in text, text
    assert "layer 2/2" not in text, "a small layer gets no bar"


def test_publish_all_uses_exposed_ports(tmp_path):
    port = engines.free_port(18089)
    layout = write_layout(tmp_path / "image", [(engines.rootfs_tar(BUSYBOX_ROOTFS), "gzip")],
                          {"Cmd": ["sleep", "100"], "ExposedPorts": {f"{port}/tcp": {}}})
    assert unpack(layout, tmp_path / "bundle").returncode == 0
    config = json.loads((tmp_path / "bundle" / "config.json").read_text())
    # a bridge of its own: other pyrt tests may be using the default one right now
    config["annotations"].update({"org.pyrt.network.bridge": "pyrt-unpack", "org.pyrt.network.subnet": "10.78.9.0/24"})
    (tmp_path / "bundle" / "config.json").write_text(json.dumps(config))
    state = str(tmp_path / "state")
    cid = "unpack-p-" + os.urandom(3).hex()
    try:
        # the container inherits stdio: files, not pipes a waiting reader would hang on
        with open(tmp_path / "stderr", "w+") as err:
            r = subprocess.run([BINARY, "--root", state, "create", "--bundle", str(tmp_path / "bundle"), "-P", cid],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, timeout=60)
            err.seek(0)
            assert r.returncode == 0, err.read()
        annotations = json.loads(subprocess.run([BINARY, "--root", state, "state", cid], capture_output=True,
                                                text=True, timeout=30).stdout)["annotations"]
        assert annotations["org.pyrt.ports"] == f"{port}:{port}/tcp"
    finally:
        subprocess.run([BINARY, "--root", state, "delete", "--force", cid], capture_output=True, timeout=60)


def test_publish_all_without_exposed_ports_is_refused(tmp_path):
    layout = write_layout(tmp_path / "image", [(Layer().file("f").bytes(), "none")])
    assert unpack(layout, tmp_path / "bundle").returncode == 0
    r = subprocess.run([BINARY, "--root", str(tmp_path / "state"), "run", "-P", str(tmp_path / "bundle")],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and "-P: config.json exposes no ports" in r.stderr, r.stderr



def test_sigterm_leaves_no_partial_bundle(tmp_path):
    # many files, so that the signal lands while layers are being written
    layer = Layer()
    for i in range(20000):
        layer.file(f"d{i % 50}/f{i}", b"x" * 100)
    layout = write_layout(tmp_path / "image", [(layer.bytes(), "gzip")] * 3)
    proc = subprocess.Popen([BINARY, "unpack", str(layout), str(tmp_path / "bundle")], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".bundle.unpack-*/rootfs/d*")) and proc.poll() is None:
        assert time.monotonic() < deadline, "unpack did not start writing"
        time.sleep(0.005)
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "unpack interrupted by signal 15" in err, (proc.returncode, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image"]
