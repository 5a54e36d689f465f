"""The seed's path, end to end: bundles/hello-world/Containerfile built by podman, then

1. `podman save` → `pyrt unpack` → `pyrt run -p HOST:8080` (pyrt's own bridge), and
2. `podman --runtime pyrt run -p HOST:8080 localhost/hello-world` (podman's CNI network),

both answering "Hello World!"; and podman's three save formats unpacked like umoci unpacks them.
One private podman (tests/engines.py) and one CNI network of our own per module; afterwards no
container, image, storage, link, cached CNI result or nat table made here is left.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import engines
import pytest
from conftest import BINARY
from images import tree

pytestmark = pytest.mark.pyrt_only

REPO = Path(__file__).resolve().parent.parent
HELLO = "localhost/hello-world:latest"
BUSYBOX = "localhost/busybox:latest"
NETWORK = "pyrt-image-test"


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    base = tmp_path_factory.mktemp("podman")
    p = engines.Podman(base)
    net = engines.CniNetwork(base / "networks" / f"{NETWORK}.conflist", base / "cni-ipam", NETWORK, "pyrt-imgtest0",
                             "10.89.63.0/24", masquerade=True)
    try:
        p.ok("build", "-t", HELLO, "-f", str(REPO / "bundles/hello-world/Containerfile"),
             str(REPO / "bundles/hello-world"), timeout=300)
        p.import_image(engines.BUSYBOX_ROOTFS, BUSYBOX, "USER nobody", "WORKDIR /tmp", "ENV GREETING=hi",
                       "EXPOSE 8080/tcp", 'ENTRYPOINT ["/bin/sh", "-c"]', 'CMD ["id"]', "LABEL org.example.k=v")
        yield p
    finally:
        left = p.close() + net.close()
        assert not left, "podman left:\n  " + "\n  ".join(left)


def unpack(image: Path, bundle: Path, *flags: str) -> None:
    r = subprocess.run([BINARY, "unpack", *flags, str(image), str(bundle)], capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr


def test_containerfile_builds_the_seed_image(podman):
    info = json.loads(podman.ok("image", "inspect", HELLO).stdout)[0]
    config = info["Config"]
    assert config["Entrypoint"] == ["/hello"] and config["User"] == "65534:65534"
    assert list(config["ExposedPorts"]) == ["8080/tcp"]
    assert len(info["RootFS"]["Layers"]) == 1  # FROM scratch: the binary's layer only


def test_save_unpack_run(podman, tmp_path):
    """The seed's `docker run -p 8080:8080` through pyrt: podman save → pyrt unpack → pyrt run -p."""
    podman.ok("save", "--format", "oci-archive", "-o", str(tmp_path / "hello.tar"), HELLO)
    unpack(tmp_path / "hello.tar", tmp_path / "bundle")
    assert sorted(p.name for p in (tmp_path / "bundle" / "rootfs").iterdir()) == ["hello"]
    port = engines.free_port(8080)
    state = str(tmp_path / "state")
    # stdout: the generated id; the container inherits both, and logs on stderr
    with open(tmp_path / "out", "w+") as out, open(tmp_path / "err", "w+") as err:
        r = subprocess.run([BINARY, "--root", state, "run", "-d", "-p", f"{port}:8080", str(tmp_path / "bundle")],
                           stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=60)
        out.seek(0)
        err.seek(0)
        cid, text = out.read().strip(), err.read()
    try:
        assert r.returncode == 0, text
        assert engines.http_get(f"http://127.0.0.1:{port}/") == "Hello World!\n"
    finally:
        subprocess.run([BINARY, "--root", state, "delete", "--force", cid], capture_output=True, timeout=60)


def test_podman_runs_the_image_with_pyrt(podman):
    """The seed's `docker run -p 8080:8080 hello-world`, as `podman --runtime pyrt run`."""
    podman.new_container_ids()
    port = engines.free_port(8080)
    try:
        podman.ok("run", "-d", "--name", "hello", "--network", NETWORK, "-p", f"{port}:8080", HELLO)
        assert engines.http_get(f"http://127.0.0.1:{port}/") == "Hello World!\n"
        assert "hello: listening on :8080" in podman.ok("logs", "hello").stderr
    finally:
        podman("rm", "--force", "--time", "0", "hello")
    leaks = podman.leaks(podman.new_container_ids())
    assert not leaks, leaks


@pytest.mark.parametrize("image", [BUSYBOX, HELLO])
def test_saved_formats_unpack_like_umoci(podman, tmp_path, image):
    # umoci reads the OCI layout podman writes (oci-dir); pyrt reads it and both tarballs
    podman.ok("save", "--format", "oci-dir", "-o", str(tmp_path / "oci-dir"), image)
    r = subprocess.run(["umoci", "unpack", "--image", f"{tmp_path / 'oci-dir'}:{image}", str(tmp_path / "umoci")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    theirs = tree(tmp_path / "umoci" / "rootfs")
    umoci_process = json.loads((tmp_path / "umoci" / "config.json").read_text())["process"]
    for fmt in ("oci-dir", "oci-archive", "docker-archive"):
        if fmt != "oci-dir":
            podman.ok("save", "--format", fmt, "-o", str(tmp_path / fmt), image)
        unpack(tmp_path / fmt, tmp_path / f"pyrt-{fmt}")
        assert tree(tmp_path / f"pyrt-{fmt}" / "rootfs") == theirs, fmt
        config = json.loads((tmp_path / f"pyrt-{fmt}" / "config.json").read_text())
        for key in ("args", "cwd", "user"):
            assert config["process"][key] == umoci_process[key], (fmt, key)
        # a user without a passwd entry: HOME=/ as docker and podman set it (umoci sets none)
        home = [] if any(e.startswith("HOME=") for e in umoci_process["env"]) else ["HOME=/"]
        assert config["process"]["env"] == umoci_process["env"] + home, fmt
        assert config["annotations"]["org.opencontainers.image.exposedPorts"] == "8080/tcp"


def test_saved_busybox_runs(podman, tmp_path):
    podman.ok("save", "--format", "docker-archive", "-o", str(tmp_path / "bb.tar"), BUSYBOX)
    unpack(tmp_path / "bb.tar", tmp_path / "bundle")
    r = subprocess.run([BINARY, "--root", str(tmp_path / "state"), "run", str(tmp_path / "bundle")],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert (r.returncode, r.stdout) == (0, "uid=65534(nobody) gid=65534(nogroup)\n"), r.stderr


def test_multi_image_archive_needs_ref(podman, tmp_path):
    archive = tmp_path / "both.tar"
    podman.ok("save", "--multi-image-archive", "--format", "docker-archive", "-o", str(archive), HELLO, BUSYBOX)
    r = subprocess.run([BINARY, "unpack", str(archive), str(tmp_path / "b")], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and f"2 images inside ({BUSYBOX}, {HELLO})" in r.stderr, r.stderr
    assert not (tmp_path / "b").exists() and sorted(os.listdir(tmp_path)) == ["both.tar"]
    unpack(archive, tmp_path / "hello", "--ref", "hello-world")
    assert [p.name for p in (tmp_path / "hello" / "rootfs").iterdir()] == ["hello"]
