"""User namespaces: the container's ids mapped to unprivileged host ids (linux.uidMappings,
gidMappings), new or joined by path; root inside with full capabilities that are worth nothing
on the host's files. runc 1.5 is the oracle for everything not marked pyrt_only.

The container's root is host uid 100000: it cannot search the test's tmp dirs (0700, root's),
so its rootfs and volumes live in a world-searchable directory of their own (`userns_dir`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import BUSYBOX_ROOTFS, IS_RUNC

HOST = 100000  # the host id of the container's 0
SIZE = 65536
ALL_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID",
            "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_AUDIT_WRITE",
            "CAP_SETFCAP", "CAP_SYS_ADMIN"]


@pytest.fixture(scope="session")
def userns_rootfs():
    """The busybox rootfs, owned by the container's root (host 100000), readable by it."""
    top = Path(tempfile.mkdtemp(prefix="pyrt-userns-"))
    top.chmod(0o755)
    root = top / "rootfs"
    shutil.copytree(BUSYBOX_ROOTFS, root, symlinks=True)
    subprocess.run(["chown", "-hR", f"{HOST}:{HOST}", str(root)], check=True)
    yield root
    shutil.rmtree(top)


@pytest.fixture
def userns_dir():
    """A world-searchable scratch directory for host files the container sees (volumes)."""
    d = Path(tempfile.mkdtemp(prefix="pyrt-userns-vol-"))
    d.chmod(0o755)
    yield d
    with open("/proc/self/mountinfo") as f:
        left = [line for line in f if str(d) in line]
    for line in left:
        subprocess.run(["umount", "-l", line.split()[4]], check=False)
    shutil.rmtree(d)
    assert not left, f"mounts left: {left}"


def mappings(container: int = 0, host: int = HOST, size: int = SIZE) -> list[dict]:
    return [{"containerID": container, "hostID": host, "size": size}]


@pytest.fixture
def ubundle(bundle, userns_rootfs):
    """A bundle whose container has a new user namespace: 0-65535 -> 100000-165535."""
    bundle.config["root"]["path"] = str(userns_rootfs)
    bundle.config["linux"]["namespaces"].append({"type": "user"})
    bundle.config["linux"]["uidMappings"] = mappings()
    bundle.config["linux"]["gidMappings"] = mappings()
    return bundle


def full_caps(bundle) -> None:
    for kind in ("bounding", "effective", "permitted"):
        bundle.process["capabilities"][kind] = ALL_CAPS
    bundle.process["noNewPrivileges"] = False


def run(rt, bundle, script: str) -> str:
    bundle.args("sh", "-c", script).write()
    r = rt("run", "--bundle", str(bundle.path), rt.new_id())
    assert r.returncode == 0, r.stderr
    return r.stdout


def volume(bundle, source: Path, dest: str, *options: str) -> None:
    bundle.config["mounts"].append({"destination": dest, "type": "bind", "source": str(source),
                                    "options": ["bind", *options]})


def test_maps_and_root_inside(rt, ubundle):
    out = run(rt, ubundle, "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g").split()
    assert out == ["0", str(HOST), str(SIZE)] * 2 + ["0", "0"]


def test_several_mappings(rt, ubundle):
    ubundle.config["linux"]["uidMappings"] = mappings(0, HOST, 1000) + mappings(1000, HOST + 5000, 10)
    out = run(rt, ubundle, "cat /proc/self/uid_map").split()
    assert out == ["0", str(HOST), "1000", "1000", str(HOST + 5000), "10"]


def test_files_written_are_owned_by_the_mapped_host_ids(rt, ubundle, userns_dir):
    vol = userns_dir / "vol"
    vol.mkdir(mode=0o777)
    vol.chmod(0o777)
    volume(ubundle, vol, "/vol")
    full_caps(ubundle)
    run(rt, ubundle, "echo a > /vol/root; touch /vol/other; chown 1000:2000 /vol/other; ls -ln /vol")
    st, other = os.stat(vol / "root"), os.stat(vol / "other")
    assert (st.st_uid, st.st_gid) == (HOST, HOST)
    assert (other.st_uid, other.st_gid) == (HOST + 1000, HOST + 2000)


def test_process_user_is_mapped_too(rt, ubundle, userns_dir):
    vol = userns_dir / "vol"
    vol.mkdir()
    vol.chmod(0o777)
    volume(ubundle, vol, "/vol")
    ubundle.process["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [3000]}
    out = run(rt, ubundle, "id -u; id -G; touch /vol/f").split()
    assert out[0] == "1000" and set(out[1:]) == {"1000", "3000"}
    st = os.stat(vol / "f")
    assert (st.st_uid, st.st_gid) == (HOST + 1000, HOST + 1000)


def test_capabilities_full_inside_useless_outside(rt, ubundle, userns_dir):
    """Root of the user namespace with CAP_CHOWN, DAC_OVERRIDE, FOWNER: nothing of it applies
    to a host file whose owner has no id in the namespace."""
    host_file = userns_dir / "hostfile"
    host_file.write_text("host\n")
    host_file.chmod(0o644)
    volume(ubundle, host_file, "/hostfile")
    full_caps(ubundle)
    out = run(rt, ubundle, "grep CapEff /proc/self/status; ls -ln /hostfile; "
                           "echo x >> /hostfile && echo WROTE; chmod 666 /hostfile && echo CHMOD; "
                           "chown 0 /hostfile && echo CHOWN; mkdir /tmp/d && chown 5:5 /tmp/d && echo OWN-OK")
    eff = int(out.split()[1], 16)
    assert eff & (1 << 0) and eff & (1 << 1) and eff & (1 << 3) and eff & (1 << 21)  # CHOWN DAC FOWNER SYS_ADMIN
    assert "65534" in out  # the host's root has no id inside: nobody
    assert "WROTE" not in out and "CHMOD" not in out and "CHOWN" not in out
    assert "OWN-OK" in out  # in its own tmpfs the capabilities work
    st = os.stat(host_file)
    assert host_file.read_text() == "host\n" and st.st_mode & 0o777 == 0o644 and st.st_uid == 0


def test_nested_user_namespace(rt, ubundle):
    ubundle.process["noNewPrivileges"] = False
    out = run(rt, ubundle, "readlink /proc/self/ns/user; unshare -U sh -c 'readlink /proc/self/ns/user; id -u'").split()
    assert out[0] != out[1] and all(x.startswith("user:[") for x in out[0:2])
    assert out[2] == "65534"  # nothing is mapped in the nested namespace yet


@pytest.mark.pyrt_only
def test_devices_and_sysfs_without_own_network_namespace(rt, ubundle):
    """No mknod in a user namespace: the host's nodes are bound in; no sysfs without a network
    namespace of the container's: the host's /sys is bound in (read-only as asked). runc 1.5
    fails this create: its sysfs mount gets EPERM (docs/runc-differences.md)."""
    ubundle.config["linux"]["namespaces"] = [n for n in ubundle.config["linux"]["namespaces"]
                                             if n["type"] != "network"]
    out = run(rt, ubundle, "echo x > /dev/null && echo NULL-OK; head -c 4 /dev/zero | od -An -tx1; "
                           "stat -c '%t:%T' /dev/null /dev/urandom; ls /sys/class/net | grep -c lo; "
                           "touch /sys/x 2>/dev/null || echo SYS-RO")
    assert "NULL-OK" in out and "00 00 00 00" in out and "1:3" in out and "1:9" in out and "SYS-RO" in out
    assert out.split("\n")[4].strip() == "1"


def test_readonly_bind_of_a_nosuid_nodev_mount(rt, ubundle, userns_dir):
    """The kernel locks the flags of the mounts a user namespace's mount namespace inherits:
    making a bind of a nosuid,nodev,noexec mount read-only must carry those flags."""
    mnt = userns_dir / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "nosuid,nodev,noexec,mode=755", "tmpfs", str(mnt)], check=True)
    try:
        (mnt / "f").write_text("data\n")
        volume(ubundle, mnt, "/ro", "ro")
        out = run(rt, ubundle, "cat /ro/f; touch /ro/g 2>/dev/null || echo RO; grep ' /ro ' /proc/self/mountinfo")
        assert "data" in out and "RO" in out
        opts = out.split("\n")[2].split()[5].split(",")
        assert {"ro", "nosuid", "nodev", "noexec"} <= set(opts)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_exec_joins_the_user_namespace(rt, ubundle):
    ubundle.args("sleep", "60")
    cid = rt.create(ubundle)
    rt.ok("start", cid)
    pid = rt.wait_status(cid, "running")["pid"]
    out = rt.ok("exec", cid, "sh", "-c", "cat /proc/self/uid_map; readlink /proc/self/ns/user; id -u").stdout.split()
    assert out[:3] == ["0", str(HOST), str(SIZE)]
    assert out[3] == os.readlink(f"/proc/{pid}/ns/user") and out[4] == "0"
    rt.ok("delete", "--force", cid)


def test_cgroup_namespace_and_mount_inside(rt, ubundle):
    ubundle.config["linux"]["namespaces"].append({"type": "cgroup"})
    ubundle.config["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                                     "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]})
    out = run(rt, ubundle, "cat /proc/self/cgroup; echo ---; ls /sys/fs/cgroup; "
                           "touch /sys/fs/cgroup/x 2>/dev/null || echo RO")
    cgroups, listing = out.split("---")
    assert all(line.endswith(":/") for line in cgroups.split())  # the namespace's root: its own cgroup
    assert "memory" in listing.split()  # the hierarchies
    if not IS_RUNC:  # runc 1.5 leaves the tmpfs holding the v1 hierarchies writable in a user namespace
        assert listing.split()[-1] == "RO"


def test_join_user_namespace_by_path(rt, ubundle, bundle):
    ubundle.args("sleep", "60")
    first = rt.create(ubundle)
    pid = rt.state(first)["pid"]
    other = ubundle.copy("other")
    other.config["linux"]["namespaces"] = [
        {"type": "user", "path": f"/proc/{pid}/ns/user"} if n["type"] == "user" else n
        for n in ubundle.config["linux"]["namespaces"]]
    out = run(rt, other, "readlink /proc/self/ns/user; readlink /proc/self/ns/mnt; id -u").split()
    assert out[0] == os.readlink(f"/proc/{pid}/ns/user")
    assert out[1] != os.readlink(f"/proc/{pid}/ns/mnt")  # its other namespaces are its own
    assert out[2] == "0"
    # mappings that are not the namespace's: refused (runc words it otherwise)
    other.config["linux"]["uidMappings"] = mappings(0, HOST + 1)
    other.args("true").write()
    r = rt("run", "--bundle", str(other.path), rt.new_id())
    assert r.returncode == 1
    if not IS_RUNC:
        assert "linux.uidMappings: do not match the mappings of the joined user namespace" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    rt.ok("delete", "--force", first)


BAD = [
    ("zero size", {"uidMappings": mappings(size=0)}, "linux.uidMappings[0].size: must be at least 1"),
    ("overlap container", {"uidMappings": mappings(0, HOST, 100) + mappings(50, HOST + 1000, 10)},
     "linux.uidMappings: entries 0 and 1 overlap (containerID ranges)"),
    ("overlap host", {"gidMappings": mappings(0, HOST, 100) + mappings(500, HOST + 50, 10)},
     "linux.gidMappings: entries 0 and 1 overlap (hostID ranges)"),
    ("past the last id", {"uidMappings": mappings(0, 4294967290, 10)},
     "linux.uidMappings[0].size: hostID + size goes past the last id 4294967294"),
    ("too many", {"uidMappings": [{"containerID": i, "hostID": HOST + i, "size": 1} for i in range(341)]},
     "linux.uidMappings: 341 mappings: the kernel takes at most 340"),
    ("no root", {"uidMappings": mappings(1)},
     "linux.uidMappings: user namespaces enabled, but no mapping found for uid 0"),
    ("none", {"gidMappings": []}, "linux.gidMappings: a new user namespace needs mappings"),
    ("not a number", {"uidMappings": [{"containerID": "0", "hostID": HOST, "size": 1}]},
     "linux.uidMappings[0].containerID: must be an integer"),
]


@pytest.mark.pyrt_only
@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_mappings(rt, ubundle, case):
    _, fields, message = case
    ubundle.config["linux"].update(fields)
    ubundle.write()
    r = rt("create", "--bundle", str(ubundle.path), rt.new_id())
    assert r.returncode == 1 and f"config.json: {message}" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


@pytest.mark.pyrt_only
def test_mappings_without_a_user_namespace(rt, bundle):
    bundle.config["linux"]["uidMappings"] = mappings()
    bundle.write()
    r = rt("create", "--bundle", str(bundle.path), rt.new_id())
    assert r.returncode == 1 and "linux.uidMappings: mappings without a user namespace" in r.stderr


@pytest.mark.pyrt_only
def test_plan_shows_the_mapping_steps_in_order(rt, ubundle):
    ubundle.write()
    out = rt.ok("plan", str(ubundle.path)).stdout
    lines = out.splitlines()
    clone = next(i for i, line in enumerate(lines) if "clone pyrt-init" in line)
    assert "user" in lines[clone]
    assert "write its uid_map (0-65535 -> 100000-165535), gid_map (0-65535 -> 100000-165535)" in lines[clone + 1]
    assert 'send it "go"' in lines[clone + 2]
    assert "mknod" not in out and "bind /dev/null on /dev/null" in out


@pytest.mark.pyrt_only
def test_features_lists_user():
    from conftest import BINARY

    out = json.loads(subprocess.run([BINARY, "features"], capture_output=True, text=True, check=True).stdout)
    assert "user" in out["linux"]["namespaces"]


def test_with_a_time_namespace(rt, ubundle):
    """The time (and pid) namespace unshared inside the new user namespace, owned by it."""
    import time

    ubundle.config["linux"]["namespaces"].append({"type": "time"})
    ubundle.config["linux"]["timeOffsets"] = {"boottime": {"secs": 86400}}
    before = time.clock_gettime(time.CLOCK_BOOTTIME)
    out = run(rt, ubundle, "cat /proc/uptime; cat /proc/self/uid_map; echo $$").splitlines()
    assert before + 86400 - 1 <= float(out[0].split()[0]) <= time.clock_gettime(time.CLOCK_BOOTTIME) + 86400 + 1
    assert out[1].split() == ["0", str(HOST), str(SIZE)] and out[2] == "1"


@pytest.mark.pyrt_only
def test_devices_must_be_the_hosts_nodes(rt, ubundle):
    """In a user namespace /dev/x is the host's /dev/x, bound: config.json must describe it."""
    ubundle.config["linux"]["devices"] = [{"path": "/dev/null", "type": "c", "major": 1, "minor": 5}]
    ubundle.write()
    r = rt("create", "--bundle", str(ubundle.path), rt.new_id())
    assert r.returncode == 1 and "linux.devices: /dev/null on the host is c 1:3, not c 1:5" in r.stderr
    ubundle.config["linux"]["devices"] = [{"path": "/dev/pyrt-nosuch", "type": "c", "major": 1, "minor": 3}]
    ubundle.write()
    r = rt("create", "--bundle", str(ubundle.path), rt.new_id())
    assert r.returncode == 1 and "linux.devices: /dev/pyrt-nosuch: no such file or directory on the host" in r.stderr
    ubundle.config["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    out = run(rt, ubundle, "stat -c '%t:%T' /dev/fuse")
    assert out.strip() == "a:e5"
