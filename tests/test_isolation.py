"""Isolation: what config.json asks for is what the container's process gets, seen from inside
(and from the host where inside would lie). runc is the oracle for everything not marked pyrt_only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import BUSYBOX_ROOTFS

# capability numbers (linux/capability.h)
CHOWN, KILL, SETUID, NET_BIND_SERVICE, SYS_ADMIN = 0, 5, 7, 10, 21


def bits(*caps: int) -> int:
    return sum(1 << c for c in caps)


def run(rt, bundle, script: str, *extra: str) -> str:
    """Run `sh -c script` in the bundle's container; its stdout (the run must succeed)."""
    bundle.args("sh", "-c", script).write()
    r = rt("run", "--bundle", str(bundle.path), *extra, rt.new_id())
    assert r.returncode == 0, r.stderr
    return r.stdout


def status_fields(text: str) -> dict[str, str]:
    """/proc/PID/status as a dict (values stripped)."""
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def mountinfo(text: str) -> dict[str, tuple[str, str, str, str]]:
    """mountinfo lines by mount point: (per-mount options, optional fields, fstype, super options).
    The last mount on a point wins, as path lookup sees it."""
    out = {}
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        f, r = left.split(), right.split()
        out[f[4]] = (f[5], " ".join(f[6:]), r[0], r[2])
    return out


def started(rt, bundle) -> tuple[str, int]:
    cid = rt.create(bundle)
    rt.ok("start", cid)
    return cid, rt.wait_status(cid, "running")["pid"]


@pytest.fixture
def own_rootfs(tmp_path: Path, bundle) -> Path:
    """A private copy of the busybox rootfs, for tests that make the container write to its root."""
    root = tmp_path / "rootfs"
    shutil.copytree(BUSYBOX_ROOTFS, root, symlinks=True)
    bundle.config["root"]["path"] = str(root)
    return root


# ----------------------------------------------------------------------------- namespaces


def test_pid_1_and_new_namespaces(rt, bundle):
    bundle.config["linux"]["namespaces"].append({"type": "cgroup"})
    out = run(rt, bundle, "echo $$; for n in pid net ipc uts mnt cgroup; do readlink /proc/self/ns/$n; done; "
                          "ls /proc | grep -c '^[0-9]'").split()
    assert out[0] == "1"
    host = [os.readlink(f"/proc/self/ns/{n}") for n in ("pid", "net", "ipc", "uts", "mnt", "cgroup")]
    for inside, outside in zip(out[1:7], host, strict=True):
        assert inside.split(":")[0] == outside.split(":")[0] and inside != outside
    assert int(out[7]) <= 3  # sh, ls, grep: nothing of the host's


def test_hostname(rt, bundle):
    bundle.config["hostname"] = "inner-host"
    assert run(rt, bundle, "hostname").split() == ["inner-host"]
    assert os.uname().nodename != "inner-host"


@pytest.mark.not_runc_1_1
def test_domainname(rt, bundle):
    """runtime-spec 1.1's domainname (runc 1.1.5 ignores it)."""
    bundle.config["domainname"] = "inner.example"
    assert run(rt, bundle, "cat /proc/sys/kernel/domainname").split() == ["inner.example"]


def test_own_mount_table(rt, bundle):
    """A mount made inside stays inside; the host's mounts are not in the container's table."""
    mark = "pyrt" + uuid.uuid4().hex[:8]
    bundle.process["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    bundle.process["capabilities"]["effective"].append("CAP_SYS_ADMIN")
    bundle.process["capabilities"]["permitted"].append("CAP_SYS_ADMIN")
    bundle.args("sh", "-c", f"mount -t tmpfs {mark} /root && grep -c {mark} /proc/self/mountinfo && sleep 100")
    cid, pid = started(rt, bundle)
    deadline = time.monotonic() + 10
    while mark not in Path(f"/proc/{pid}/mountinfo").read_text():
        assert time.monotonic() < deadline, "the container did not mount"
        time.sleep(0.02)
    assert mark not in Path("/proc/self/mountinfo").read_text()
    inside = mountinfo(Path(f"/proc/{pid}/mountinfo").read_text())
    assert "/work" not in inside and not any(p.startswith(str(BUSYBOX_ROOTFS)) for p in inside)
    assert inside["/root"][2] == "tmpfs"
    rt.ok("delete", "--force", cid)


def test_new_network_namespace_has_only_lo_and_it_is_up(rt, bundle):
    out = run(rt, bundle, "tail -n +3 /proc/net/dev | cut -d: -f1; cat /sys/class/net/lo/flags")
    names, flags = out.split()[:-1], int(out.split()[-1], 16)
    assert names == ["lo"]
    assert flags & 0x1  # IFF_UP


def test_join_namespaces_by_path(rt, bundle):
    bundle.config["hostname"] = "first"
    _, pid = started(rt, bundle.args("sleep", "100"))
    second = bundle.copy("second")
    del second.config["hostname"]  # the joined uts namespace has its own
    second.config["linux"]["namespaces"] = [{"type": t, "path": f"/proc/{pid}/ns/{n}"}
                                           for t, n in (("pid", "pid"), ("network", "net"), ("ipc", "ipc"),
                                                        ("uts", "uts"))] + [{"type": "mount"}]
    out = run(rt, second, "hostname; tr '\\0' _ < /proc/1/cmdline; echo; for n in pid net ipc uts mnt; do "
                          "readlink /proc/self/ns/$n; done").split()
    assert out[:2] == ["first", "sleep_100_"]
    ours = [os.readlink(f"/proc/{pid}/ns/{n}") for n in ("pid", "net", "ipc", "uts", "mnt")]
    assert out[2:6] == ours[:4]
    assert out[6] != ours[4]  # a mount namespace of its own


# ----------------------------------------------------------------------------- /proc


def test_masked_paths_read_empty(rt, bundle):
    """Files under the container's /dev/null, directories under an empty read-only tmpfs; masked
    paths this kernel lacks (kcore, sched_debug, ...) are skipped."""
    assert Path("/proc/keys").exists() and Path("/proc/acpi").is_dir() and any(Path("/sys/firmware").iterdir())
    out = run(rt, bundle, "for f in /proc/keys /proc/timer_list; do echo $f $(wc -c < $f); done; "
                          "echo dirs $(ls -A /sys/firmware | wc -l) $(ls -A /proc/acpi | wc -l); "
                          "echo x > /sys/firmware/f 2>/dev/null && echo writable || echo refused; "
                          "stat -c '%t:%T' /proc/keys")
    assert out.splitlines() == ["/proc/keys 0", "/proc/timer_list 0", "dirs 0 0", "refused", "1:3"]


def test_readonly_paths_are_read_only(rt, bundle):
    bundle.args("sh", "-c", "echo x > /proc/sys/kernel/hostname; echo 1 > /proc/sys/net/ipv4/ip_forward; "
                            "cat /proc/self/mountinfo").write()
    r = rt("run", "--bundle", str(bundle.path), rt.new_id())
    assert r.stderr.count("Read-only file system") == 2, r.stderr
    mounts = mountinfo(r.stdout)
    for path in ("/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq"):
        assert mounts[path][0].startswith("ro"), path
    assert mounts["/proc"][0].startswith("rw")


# ----------------------------------------------------------------------------- the process


def test_capabilities_all_five_sets(rt, bundle):
    """As uid 1000 only the ambient set survives execve into permitted and effective."""
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.process["capabilities"] = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"],
    }
    st = status_fields(run(rt, bundle, "cat /proc/self/status"))
    assert int(st["CapBnd"], 16) == bits(CHOWN, KILL, NET_BIND_SERVICE, SETUID)
    assert int(st["CapInh"], 16) == bits(KILL, NET_BIND_SERVICE)
    assert int(st["CapPrm"], 16) == bits(NET_BIND_SERVICE)
    assert int(st["CapEff"], 16) == bits(NET_BIND_SERVICE)
    assert int(st["CapAmb"], 16) == bits(NET_BIND_SERVICE)


def test_root_capabilities_and_empty_inheritable_by_default(rt, bundle):
    """CVE-2022-29162: nothing inheritable unless the config asks for it."""
    st = status_fields(run(rt, bundle, "cat /proc/self/status"))
    assert int(st["CapBnd"], 16) == int(st["CapPrm"], 16) == int(st["CapEff"], 16) \
        == bits(KILL, NET_BIND_SERVICE, 29)  # conftest: AUDIT_WRITE(29), KILL, NET_BIND_SERVICE
    assert int(st["CapInh"], 16) == int(st["CapAmb"], 16) == 0


def test_no_new_privileges_and_oom_score_adj(rt, bundle):
    before = Path("/proc/self/oom_score_adj").read_text()
    bundle.process["oomScoreAdj"] = 500
    st = status_fields(run(rt, bundle, "cat /proc/self/status; echo oom: $(cat /proc/self/oom_score_adj)"))
    assert st["NoNewPrivs"] == "1" and st["oom"] == "500"
    bundle.process["noNewPrivileges"] = False
    del bundle.process["oomScoreAdj"]
    st = status_fields(run(rt, bundle, "cat /proc/self/status; echo oom: $(cat /proc/self/oom_score_adj)"))
    assert st["NoNewPrivs"] == "0" and st["oom"] == before.strip()
    assert Path("/proc/self/oom_score_adj").read_text() == before


def test_rlimits(rt, bundle):
    bundle.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 800},
                                 {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096},
                                 {"type": "RLIMIT_NPROC", "soft": 333, "hard": 444}]
    text = run(rt, bundle, "cat /proc/self/limits")
    limits = {line[:26].strip(): line[26:].split()[:2] for line in text.splitlines()}
    assert limits["Max open files"] == ["512", "800"]
    assert limits["Max core file size"] == ["0", "4096"]
    assert limits["Max processes"] == ["333", "444"]


def test_user_groups_and_umask(rt, bundle):
    bundle.process["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [10, 2000], "umask": 0o027}
    out = run(rt, bundle, "id -u; id -g; id -G; umask; cd /dev/shm; touch f; mkdir d; stat -c %a f d; "
                          "grep -E '^(Uid|Gid|Groups):' /proc/self/status")
    lines = out.splitlines()
    assert lines[:3] == ["1000", "1001", "1001 10 2000"]
    assert lines[3] == "0027"
    assert lines[4:6] == ["640", "750"]
    st = status_fields("\n".join(lines[6:]))
    assert st["Uid"].split() == ["1000"] * 4 and st["Gid"].split() == ["1001"] * 4
    assert st["Groups"].split() == ["10", "2000"]


def test_default_umask_is_0022(rt, bundle):
    assert run(rt, bundle, "umask").strip() == "0022"


def test_cwd_is_created_if_missing(rt, bundle):
    """cwd under a tmpfs mount: made inside that mount (the shared rootfs is not touched)."""
    bundle.process["cwd"] = "/tmp/deep/er"
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    assert run(rt, bundle, "pwd; touch ../x && echo no || echo denied").split() == ["/tmp/deep/er", "denied"]
    assert not (BUSYBOX_ROOTFS / "tmp" / "deep").exists()


@pytest.mark.parametrize("cwd", ["/tmp/a/./b", "/tmp//a//b", "/tmp/./a/b/."])
def test_cwd_with_dot_and_double_slash_components(rt, bundle, cwd):
    """`.` and `//` in a cwd to make: all of it is made (pyrt-init made /tmp/a and stopped)."""
    bundle.process["cwd"] = cwd
    assert run(rt, bundle, "pwd").strip() == "/tmp/a/b"


def test_cwd_created_in_a_readonly_root(rt, bundle, own_rootfs):
    bundle.process["cwd"] = "/srv/app"
    assert run(rt, bundle, "pwd; touch x 2>&1 || true").split()[0] == "/srv/app"
    assert (own_rootfs / "srv" / "app").is_dir()


def test_env_is_exactly_the_config_plus_nothing_of_the_host(rt, bundle):
    bundle.process["env"] += ["A=1", "B=two words", "EMPTY="]
    bundle.args("sh", "-c", "env").write()
    env = dict(os.environ, PYRT_HOST_SECRET="leak")
    r = rt("run", "--bundle", str(bundle.path), rt.new_id(), env=env)
    assert r.returncode == 0, r.stderr
    got = dict(line.partition("=")[::2] for line in r.stdout.splitlines())
    assert {k: got.get(k) for k in ("A", "B", "EMPTY", "TERM")} == {"A": "1", "B": "two words", "EMPTY": "",
                                                                     "TERM": "xterm"}
    assert "PYRT_HOST_SECRET" not in got


@pytest.mark.parametrize("uid,env,home", [(0, None, "/root"), (65534, None, "/"), (1000, None, "/"),
                                          (0, "HOME=/elsewhere", "/elsewhere")])
def test_home_from_the_containers_passwd(rt, bundle, uid, env, home):
    """As runc: without HOME in env, the user's home from the container's /etc/passwd, or /."""
    bundle.process["user"] = {"uid": uid, "gid": uid}
    if env:
        bundle.process["env"].append(env)
    assert run(rt, bundle, "echo $HOME") == home + "\n"


def test_namespaced_sysctls(rt, bundle):
    host_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    host_shmmni = Path("/proc/sys/kernel/shmmni").read_text()
    bundle.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1" if host_forward.strip() == "0" else "0",
                                        "kernel.shmmni": "1234", "net.ipv4.ping_group_range": "0 1000"}
    out = run(rt, bundle, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni "
                          "/proc/sys/net/ipv4/ping_group_range").split()
    assert out == [bundle.config["linux"]["sysctl"]["net.ipv4.ip_forward"], "1234", "0", "1000"]
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host_forward
    assert Path("/proc/sys/kernel/shmmni").read_text() == host_shmmni


# ----------------------------------------------------------------------------- /dev


def test_default_devices_and_links(rt, bundle):
    out = run(rt, bundle, "for d in null zero full random urandom tty; do "
                          "stat -c '%n %F %t:%T %a %u:%g' /dev/$d; done; "
                          "for l in fd stdin stdout stderr ptmx; do echo /dev/$l $(readlink /dev/$l); done")
    assert out.splitlines() == [
        "/dev/null character special file 1:3 666 0:0", "/dev/zero character special file 1:5 666 0:0",
        "/dev/full character special file 1:7 666 0:0", "/dev/random character special file 1:8 666 0:0",
        "/dev/urandom character special file 1:9 666 0:0", "/dev/tty character special file 5:0 666 0:0",
        "/dev/fd /proc/self/fd", "/dev/stdin /proc/self/fd/0", "/dev/stdout /proc/self/fd/1",
        "/dev/stderr /proc/self/fd/2", "/dev/ptmx pts/ptmx"]


def test_linux_devices_node_mode_and_owner(rt, bundle):
    bundle.config["linux"]["devices"] = [
        {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o620, "uid": 1000, "gid": 5},
        {"path": "/dev/sub/loopy", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600, "uid": 0, "gid": 6},
        {"path": "/dev/fifo", "type": "p", "fileMode": 0o640, "uid": 2, "gid": 3},
    ]
    out = run(rt, bundle, "stat -c '%n %F %t:%T %a %u:%g' /dev/mynull /dev/sub/loopy /dev/fifo")
    assert out.splitlines() == ["/dev/mynull character special file 1:3 620 1000:5",
                                "/dev/sub/loopy block special file 7:c8 600 0:6",
                                "/dev/fifo fifo 0:0 640 2:3"]


# ----------------------------------------------------------------------------- mounts


def add_mount(bundle, dest: str, kind: str, source: str, *options: str) -> None:
    bundle.config["mounts"].append({"destination": dest, "type": kind, "source": str(source),
                                    "options": list(options)})


def test_every_default_mount_type(rt, bundle):
    add_mount(bundle, "/sys/fs/cgroup", "cgroup", "cgroup", "nosuid", "noexec", "nodev", "relatime", "ro")
    mounts = mountinfo(run(rt, bundle, "cat /proc/self/mountinfo"))
    kinds = {p: mounts[p][2] for p in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/tmp")}
    assert kinds == {"/proc": "proc", "/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs",
                     "/dev/mqueue": "mqueue", "/sys": "sysfs", "/tmp": "tmpfs"}
    cgroup_mounts = [m for p, m in mounts.items() if p.startswith("/sys/fs/cgroup") and m[2].startswith("cgroup")]
    assert cgroup_mounts and all(m[0].startswith("ro") for m in cgroup_mounts)
    assert mounts["/"][0].startswith("ro")  # root.readonly
    assert mounts["/dev/pts"][3].split(",")[1:] == ["gid=5", "mode=620", "ptmxmode=666"]


def test_bind_file_and_directory(rt, bundle, tmp_path):
    (tmp_path / "file").write_text("from the host\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "inside").write_text("dir content\n")
    add_mount(bundle, "/tmp/a/file", "bind", tmp_path / "file", "bind")
    add_mount(bundle, "/tmp/b/dir", "none", tmp_path / "dir", "rbind", "rw")
    out = run(rt, bundle, "cat /tmp/a/file /tmp/b/dir/inside; echo written > /tmp/b/dir/new; "
                          "stat -c %F /tmp/a/file")
    assert out.splitlines() == ["from the host", "dir content", "regular file"]
    assert (tmp_path / "dir" / "new").read_text() == "written\n"


def host_submount(tmp_path: Path) -> Path:
    """A host directory with a tmpfs mounted on its `sub` (unmounted by the test)."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "pyrt-sub", str(src / "sub")], check=True)
    (src / "sub" / "marker").write_text("in the submount\n")
    return src


def test_bind_versus_rbind_and_recursive_read_only(rt, bundle, tmp_path):
    src = host_submount(tmp_path)
    try:
        add_mount(bundle, "/tmp/bind", "bind", src, "bind")
        add_mount(bundle, "/tmp/rbind", "bind", src, "rbind", "ro")
        add_mount(bundle, "/tmp/rro", "bind", src, "rbind", "rro")
        out = run(rt, bundle, "ls /tmp/bind/sub; cat /tmp/rbind/sub/marker; "
                              "for d in /tmp/rbind /tmp/rbind/sub /tmp/rro /tmp/rro/sub; do "
                              "touch $d/w 2>/dev/null && echo $d rw || echo $d ro; done")
    finally:
        subprocess.run(["umount", str(src / "sub")], check=True)
    assert out.splitlines() == ["in the submount", "/tmp/rbind ro", "/tmp/rbind/sub rw", "/tmp/rro ro",
                                "/tmp/rro/sub ro"]


def test_bind_flags_ro_nosuid_nodev_noexec(rt, bundle, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "script").write_text("#!/bin/sh\necho ran\n")
    (src / "script").chmod(0o755)
    add_mount(bundle, "/tmp/plain", "bind", src, "bind")
    add_mount(bundle, "/tmp/locked", "bind", src, "bind", "ro", "nosuid", "nodev", "noexec")
    out = run(rt, bundle, "/tmp/plain/script; /tmp/locked/script 2>&1 | grep -c denied; "
                          "touch /tmp/locked/x 2>&1 | grep -c Read-only; cat /proc/self/mountinfo")
    lines = out.splitlines()
    assert lines[:3] == ["ran", "1", "1"]
    mounts = mountinfo("\n".join(lines[3:]))
    assert set(mounts["/tmp/locked"][0].split(",")) >= {"ro", "nosuid", "nodev", "noexec"}
    assert not {"ro", "nosuid", "nodev", "noexec"} & set(mounts["/tmp/plain"][0].split(","))


def test_tmpfs_data_options(rt, bundle):
    add_mount(bundle, "/tmp/small", "tmpfs", "tmpfs", "size=1m", "mode=0710", "uid=1000", "gid=33", "nr_inodes=50",
              "noatime")
    out = run(rt, bundle, "stat -c '%a %u:%g' /tmp/small; grep ' /tmp/small ' /proc/self/mountinfo")
    lines = out.splitlines()
    assert lines[0] == "710 1000:33"
    per_mount, _, _, data = mountinfo(lines[1])["/tmp/small"]
    assert "noatime" in per_mount.split(",")
    assert {"size=1024k", "nr_inodes=50", "mode=710", "uid=1000", "gid=33"} <= set(data.split(","))


def test_mount_propagation_options(rt, bundle, tmp_path):
    for name in ("shared", "private", "unbindable"):
        (tmp_path / name).mkdir()
        add_mount(bundle, f"/tmp/{name}", "bind", tmp_path / name, "rbind", name)
    mounts = mountinfo(run(rt, bundle, "cat /proc/self/mountinfo"))
    assert mounts["/tmp/shared"][1].startswith("shared:")
    assert mounts["/tmp/private"][1] == ""
    assert mounts["/tmp/unbindable"][1] == "unbindable"


@pytest.mark.parametrize("option", ["rslave", "rshared"])
def test_host_mounts_reach_rslave_binds(rt, bundle, tmp_path, option):
    """HostToContainer propagation (Kubernetes): a mount the host makes later under a shared
    volume shows up in the container through a bind marked rslave (or rshared)."""
    src = tmp_path / "volume"
    (src / "sub").mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(src), str(src)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(src)], check=True)
        add_mount(bundle, "/tmp/vol", "bind", src, "rbind", option)
        add_mount(bundle, "/tmp/priv", "bind", src, "rbind", "rprivate")
        bundle.args("sh", "-c", "while [ ! -e /tmp/vol/sub/marker ]; do sleep 0.05; done; ls /tmp/priv/sub | wc -l")
        cid = rt.create(bundle)
        rt.ok("start", cid)
        subprocess.run(["mount", "-t", "tmpfs", "pyrt-late", str(src / "sub")], check=True)
        (src / "sub" / "marker").write_text("late\n")
        rt.wait_status(cid, "stopped", timeout=20)
        assert (bundle.path / "stdout").read_text() == "0\n"  # the rprivate bind did not get it
        rt.ok("delete", cid)
    finally:
        subprocess.run(["umount", "-R", str(src)])


def test_rootfs_propagation_private_stops_host_mounts(rt, bundle, tmp_path):
    src = tmp_path / "volume"
    (src / "sub").mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(src), str(src)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(src)], check=True)
        bundle.config["linux"]["rootfsPropagation"] = "rprivate"
        add_mount(bundle, "/tmp/vol", "bind", src, "rbind", "rslave")
        bundle.args("sh", "-c", "read x; ls /tmp/vol/sub | wc -l")
        cid = rt.new_id()
        bundle.write()
        r = subprocess.Popen(rt.cmd("run", "--bundle", str(bundle.path), cid), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        rt.wait_status(cid, "running")
        subprocess.run(["mount", "-t", "tmpfs", "pyrt-late", str(src / "sub")], check=True)
        (src / "sub" / "marker").write_text("late\n")
        out, err = r.communicate("go\n", timeout=20)
        assert (r.returncode, out) == (0, "0\n"), err
    finally:
        subprocess.run(["umount", "-R", str(src)])


def test_root_readonly_and_writable(rt, bundle, own_rootfs):
    bundle.args("sh", "-c", "touch /made-inside").write()
    r = rt("run", "--bundle", str(bundle.path), rt.new_id())
    assert r.returncode == 1 and "Read-only file system" in r.stderr
    bundle.config["root"]["readonly"] = False
    run(rt, bundle, "touch /made-inside")
    assert (own_rootfs / "made-inside").exists()


def test_no_pivot(rt, bundle):
    out = run(rt, bundle, "ls /; cat /proc/self/mountinfo", "--no-pivot").splitlines()
    assert set(out[:8]) >= {"bin", "dev", "etc", "proc", "sys", "tmp"}
    mounts = mountinfo("\n".join(line for line in out if " - " in line))
    assert mounts["/"][0].startswith("ro") and mounts["/proc"][2] == "proc"


def test_session_keyring(rt, bundle):
    """A fresh session keyring named after the container, unless --no-new-keyring."""
    bundle.config["linux"]["maskedPaths"].remove("/proc/keys")
    for extra, expect in (((), True), (("--no-new-keyring",), False)):
        cid = rt.new_id()
        bundle.args("cat", "/proc/keys").write()
        r = rt("run", "--bundle", str(bundle.path), *extra, cid)
        assert r.returncode == 0, r.stderr
        assert (f"_ses.{cid}:" in r.stdout) == expect, r.stdout


# ----------------------------------------------------------------------------- fds and stdio


# Started by the test: open the files of argv[1] ({"fd": path}) at those fd numbers, exec argv[2:].
WITH_FDS = """import json, os, sys
for n, path in json.loads(sys.argv[1]).items():
    fd = os.open(path, os.O_RDONLY)
    if fd != int(n):
        os.dup2(fd, int(n))
        os.close(fd)
    os.set_inheritable(int(n), True)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def create_with_fds(rt, bundle, fds: dict[int, Path], *extra: str) -> str:
    """`create` started with the given files open at the given fd numbers (and stdio on files)."""
    cid = rt.new_id()
    bundle.write()
    argv = rt.cmd("create", "--bundle", str(bundle.path), *extra, cid)
    with open(bundle.path / "stdout", "w") as out, open(bundle.path / "stderr", "w+") as err:
        r = subprocess.run([sys.executable, "-c", WITH_FDS, json.dumps({n: str(p) for n, p in fds.items()}), *argv],
                           stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=30)
        err.seek(0)
        assert r.returncode == 0, err.read()
    return cid


def test_only_stdio_reaches_the_container(rt, bundle, tmp_path):
    """fds the runtime was started with beyond 0-2 are not the container's (CVE-2024-21626)."""
    (tmp_path / "secret").write_text("host\n")
    bundle.args("sleep", "100")
    cid = create_with_fds(rt, bundle, {3: tmp_path / "secret", 7: tmp_path / "secret"})
    rt.ok("start", cid)
    pid = rt.wait_status(cid, "running")["pid"]
    assert sorted(os.listdir(f"/proc/{pid}/fd"), key=int) == ["0", "1", "2"]
    assert os.readlink(f"/proc/{pid}/fd/1") == str(bundle.path / "stdout")  # stdio passed through
    assert os.readlink(f"/proc/{pid}/fd/2") == str(bundle.path / "stderr")
    rt.ok("delete", "--force", cid)


def test_preserve_fds(rt, bundle, tmp_path):
    (tmp_path / "a").write_text("A\n")
    (tmp_path / "b").write_text("B\n")
    bundle.args("sh", "-c", "cat <&3; cat <&4; exec sleep 100")
    cid = create_with_fds(rt, bundle, {3: tmp_path / "a", 4: tmp_path / "b", 5: tmp_path / "a"},
                          "--preserve-fds", "2")
    rt.ok("start", cid)
    pid = rt.wait_status(cid, "running")["pid"]
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}/comm").read_text() != "sleep\n" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sorted(os.listdir(f"/proc/{pid}/fd"), key=int) == ["0", "1", "2", "3", "4"]
    assert (bundle.path / "stdout").read_text() == "A\nB\n"
    rt.ok("delete", "--force", cid)


@pytest.mark.pyrt_only
def test_preserve_fds_sets_listen_fds(rt, bundle, tmp_path):
    """systemd's socket-activation variables for the preserved fds (runc sets them only when
    it was itself socket-activated)."""
    bundle.args("sh", "-c", "echo $LISTEN_FDS $LISTEN_PID; exec sleep 100")
    cid = create_with_fds(rt, bundle, {3: tmp_path, 4: tmp_path, 5: tmp_path}, "--preserve-fds", "3")
    rt.ok("start", cid)
    deadline = time.monotonic() + 10
    while not (bundle.path / "stdout").read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (bundle.path / "stdout").read_text() == "3 1\n"
    rt.ok("delete", "--force", cid)


def test_stdin_reaches_the_process_and_exit_status(rt, bundle):
    bundle.args("sh", "-c", "read a; read b; echo $b $a; echo oops >&2; exit 9").write()
    r = rt("run", "--bundle", str(bundle.path), rt.new_id(), input="one\ntwo\n")
    assert (r.returncode, r.stdout) == (9, "two one\n")
    assert "oops" in r.stderr


def test_state_rootfs_and_bundle_paths(rt, bundle, own_rootfs):
    """root.path relative to the bundle works, and state reports the absolute rootfs."""
    rel = os.path.relpath(own_rootfs, bundle.path)
    bundle.config["root"]["path"] = rel
    cid = rt.create(bundle.args("true"))
    st = rt.state(cid)
    assert st["rootfs"] == str(own_rootfs) and st["bundle"] == str(bundle.path)
    rt.ok("delete", "--force", cid)
