# ruff: noqa: F811  (fixtures imported from test_userns are used as arguments)
"""Idmapped mounts (mounts[].uidMappings/gidMappings, the idmap and ridmap options): a host
directory bound with its ids shifted, in a container with or without a user namespace; writes
land on the host under the reverse mapping. runc 1.5 is the oracle for all but pyrt_only tests.
Needs a kernel that idmaps ext4 (5.12) and tmpfs (6.3): the host's root filesystem and a tmpfs."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import BINARY, IS_RUNC
from test_userns import HOST, full_caps, run, ubundle, userns_dir, userns_rootfs  # noqa: F401 (fixtures)


def maps(container: int, host: int, size: int) -> list[dict]:
    return [{"containerID": container, "hostID": host, "size": size}]


@pytest.fixture
def hostdir(userns_dir):
    """A host directory owned by root with a root-owned file in it, writable by anyone."""
    d = userns_dir / "data"
    d.mkdir()
    d.chmod(0o777)
    (d / "f").write_text("host\n")
    return d


def idmapped(bundle, source, dest: str, *options: str, uid=None, gid=None) -> None:
    m = {"destination": dest, "type": "bind", "source": str(source), "options": ["bind", *options]}
    if uid is not None:
        m["uidMappings"], m["gidMappings"] = uid, gid
    bundle.config["mounts"].append(m)


def owners(out: str) -> dict[str, str]:
    """`ls -ln` lines -> name: "uid:gid"."""
    found = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 9 and f[0][0] in "-d":
            found[f[-1]] = f"{f[2]}:{f[3]}"
    return found


def test_without_a_user_namespace(rt, bundle, hostdir):
    """containerID 0 -> hostID 1000: the host's root-owned files show as 1000's; a write by the
    container's uid 1000 lands as the host's 0 (the reverse mapping)."""
    idmapped(bundle, hostdir, "/tmp/vol", uid=maps(0, 1000, 10), gid=maps(0, 1000, 10))
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    out = run(rt, bundle, "ls -ln /tmp/vol; touch /tmp/vol/new; ls -ln /tmp/vol")
    assert owners(out)["f"] == "1000:1000" and owners(out)["new"] == "1000:1000"
    st = os.stat(hostdir / "new")
    assert (st.st_uid, st.st_gid) == (0, 0)


def test_container_root_outside_the_mount_mapping_cannot_write(rt, bundle, hostdir):
    idmapped(bundle, hostdir, "/tmp/vol", uid=maps(0, 1000, 10), gid=maps(0, 1000, 10))
    out = run(rt, bundle, "touch /tmp/vol/new 2>&1; echo rc=$?")
    assert "rc=1" in out and not (hostdir / "new").exists()


def test_implied_mappings_of_the_user_namespace(rt, ubundle, hostdir):
    """`idmap` alone takes the container's mappings (runc 1.2+): the host's root is the
    container's root on this mount, and what it writes is the host's root's."""
    idmapped(ubundle, hostdir, "/tmp/vol", "idmap")
    full_caps(ubundle)
    out = run(rt, ubundle, "ls -ln /tmp/vol; touch /tmp/vol/new; chown 5:6 /tmp/vol/new; echo x >> /tmp/vol/f; "
                           "ls -ln /tmp/vol")
    assert owners(out)["f"] == "0:0" and owners(out)["new"] == "5:6"
    st = os.stat(hostdir / "new")
    assert (st.st_uid, st.st_gid) == (5, 6) and (hostdir / "f").read_text() == "host\nx\n"


def test_own_mappings_in_a_user_namespace(rt, ubundle, hostdir):
    """The mount's mappings go from the filesystem's ids to the host's: host 0 -> 101000, which
    is the container's 1000."""
    idmapped(ubundle, hostdir, "/tmp/vol", uid=maps(0, HOST + 1000, 10), gid=maps(0, HOST + 1000, 10))
    out = run(rt, ubundle, "ls -ln /tmp/vol")
    assert owners(out)["f"] == "1000:1000"


def test_ridmap_maps_the_mounts_below(rt, ubundle, hostdir):
    sub = hostdir / "sub"
    sub.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=777", "tmpfs", str(sub)], check=True)
    try:
        (sub / "g").write_text("in tmpfs\n")
        idmapped(ubundle, hostdir, "/tmp/vol", "rbind", "ridmap")
        out = run(rt, ubundle, "ls -ln /tmp/vol /tmp/vol/sub")
        assert owners(out)["f"] == "0:0" and owners(out)["g"] == "0:0"  # tmpfs (6.3+) idmapped too
    finally:
        subprocess.run(["umount", str(sub)], check=True)


def test_unsupported_filesystem_is_one_line_and_leaves_nothing(rt, bundle):
    idmapped(bundle, "/sys/kernel", "/tmp/k", uid=maps(0, 1000, 10), gid=maps(0, 1000, 10))
    bundle.write()
    r = rt("create", "--bundle", str(bundle.path), rt.new_id())
    assert r.returncode == 1
    if not IS_RUNC:
        assert "config.json: mounts[7]: idmapped mount of /sys/kernel: its filesystem does not support" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


BAD = [
    ("not a bind", {"destination": "/tmp/x", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]},
     "mounts[7]: idmapped mounts are only supported for bind mounts"),
    ("implied without a user namespace", {"destination": "/tmp/x", "type": "bind", "source": "/tmp",
                                          "options": ["bind", "idmap"]},
     'mounts[7]: mount option \\"idmap\\" without uidMappings'),
    ("uid without gid", {"destination": "/tmp/x", "type": "bind", "source": "/tmp", "options": ["bind"],
                         "uidMappings": maps(0, 1000, 1)},
     "mounts[7].gidMappings: an idmapped mount needs both uidMappings and gidMappings"),
    ("zero size", {"destination": "/tmp/x", "type": "bind", "source": "/tmp", "options": ["bind"],
                   "uidMappings": maps(0, 1000, 0), "gidMappings": maps(0, 1000, 1)},
     "mounts[7].uidMappings[0].size: must be at least 1"),
]


@pytest.mark.pyrt_only
@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_idmapped_mounts(rt, bundle, case):
    _, mount, message = case
    bundle.config["mounts"].append(mount)
    bundle.write()
    r = rt("create", "--bundle", str(bundle.path), rt.new_id())
    assert r.returncode == 1 and f"config.json: {message}" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.pyrt_only
def test_plan_and_features(rt, bundle, hostdir):
    idmapped(bundle, hostdir, "/tmp/vol", uid=maps(0, 1000, 10), gid=maps(0, 1000, 10))
    bundle.write()
    out = rt.ok("plan", str(bundle.path)).stdout
    assert f"attach the idmapped bind of {hostdir} (<idmap:7>, made by the parent) on /tmp/vol" in out
    assert f"make the idmapped binds {hostdir} (0-9 -> 1000-1009 uids, 0-9 -> 1000-1009 gids)" in out
    features = json.loads(subprocess.run([BINARY, "features"], capture_output=True, text=True, check=True).stdout)
    assert features["linux"]["mountExtensions"]["idmap"]["enabled"] is True
    assert {"idmap", "ridmap"} <= set(features["mountOptions"])
