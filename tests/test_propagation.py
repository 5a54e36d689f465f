"""Mount propagation as runc 1.5 does it: `linux.rootfsPropagation` and the propagation options of
bind mounts (issue 15).

A Kubernetes volume with `mountPropagation: Bidirectional` reaches the runtime as a
`["rbind", "rshared"]` bind and `rootfsPropagation: "rshared"`: the volume must stay in the host
path's peer group, so that a mount a CSI node plugin makes inside the container appears on the
host. Every other combination must behave as with runc 1.5, and nothing the container mounts may
reach the host unless the config asks for shared propagation.

The comparisons run each container inside a mount namespace of the test's own (`unshare -m`)
that plays the host: `/` private and the rootfs a plain directory, as on this machine; or `/`
rshared and the rootfs a mount of its own, as on a systemd machine under containerd (an overlay
snapshot). All the host-side mounts they make vanish with that namespace. The last two tests work
on the real host, with a shared mount of their own that they remove.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import engines
import pytest
from conftest import BUSYBOX_ROOTFS, base_config

PROPAGATIONS = ["private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable"]
VOLUMES = ["default", *PROPAGATIONS]  # "default": a bind with no propagation option
#: Where the container mounts a tmpfs named leak-NAME besides under each volume: on its own mounts.
OWN_TARGETS = {"tmp": "/tmp/own", "dev": "/dev/own", "root": "/root"}
#: The volumes through which a mount made in the container reaches the host (runc 1.5): those
#: whose bind stays in the host's peer group. A non-recursive rootfsPropagation changes only "/",
#: so a bind without a propagation option keeps the shared host mount's propagation.
REACH_HOST = {
    None: set(), "rprivate": set(), "rslave": set(),
    "private": {"default", "shared", "rshared"}, "shared": {"default", "shared", "rshared"},
    "slave": {"default", "shared", "rshared"}, "unbindable": {"default", "shared", "rshared"},
    "rshared": {"default", "shared", "rshared"},
}


def may_mount(c: dict) -> dict:
    for kind in ("bounding", "effective", "permitted"):
        c["process"]["capabilities"][kind].append("CAP_SYS_ADMIN")
    return c


def config(rootfs_propagation: str | None, volumes: Path, names: list[str], script: str) -> dict:
    """A busybox container allowed to mount, with a bind of volumes/NAME on /tmp/NAME for each
    propagation option NAME."""
    c = may_mount(base_config(["sh", "-c", script]))
    if rootfs_propagation:
        c["linux"]["rootfsPropagation"] = rootfs_propagation
    for v in names:
        c["mounts"].append({"destination": f"/tmp/{v}", "type": "bind", "source": str(volumes / v),
                            "options": ["rbind"] + ([v] if v != "default" else [])})
    return c


def optional_fields(line: str) -> list[str]:
    fields = line.partition(" - ")[0].split()
    return fields[6:]


def normalized(container: str, host: str) -> list[tuple[str, str]]:
    """The container's mounts with their propagation, peer groups named by whether they are the
    host's (the mount namespace it was created from) or new. New groups are not told apart: runc
    binds readonlyPaths and maskedPaths after pivot_root, pyrt before, so under a rshared root
    runc's join the group of /proc or /dev and pyrt's get groups of their own."""
    host_groups = {o.partition(":")[2] for line in host.splitlines() for o in optional_fields(line)
                   if o.startswith("shared:")}
    out = []
    for line in container.splitlines():
        tags = []
        for opt in optional_fields(line):
            kind, _, group = opt.partition(":")
            tags.append(f"{kind}:host" if group in host_groups else kind)
        out.append((line.split()[4], " ".join(sorted(tags)) or "private"))
    return sorted(out)


def leaked(before: str, after: str) -> set[str]:
    """NAMEs of the leak-NAME tmpfs mounts the host gained; fails on any other new host mount."""
    new = [line for line in after.splitlines() if line not in before.splitlines()]
    names = {line.partition(" - ")[2].split()[1].removeprefix("leak-") for line in new}
    others = [line for line in new if not line.partition(" - ")[2].startswith("tmpfs leak-")]
    assert not others, "the container's mounts reached the host:\n" + "\n".join(others)
    return names


def run_in_host_ns(runtime: str, state: Path, base: Path, cid: str, rootfs_propagation: str | None,
                   systemd_host: bool, *run_flags: str, names: list[str] = VOLUMES) -> dict:
    """`runtime run` of a container with a volume for each of `names`, which prints its mountinfo
    and then mounts a tmpfs under each volume and on OWN_TARGETS, in a new mount namespace that
    plays the host (`/` rshared and the rootfs a mount if `systemd_host`; volumes/ a shared mount).
    Returns the run's status and output, and the host's mountinfo before and after. The
    namespace, and every mount in it, is gone when this returns."""
    volumes = base / "volumes"
    for v in names:
        (volumes / v / "x").mkdir(parents=True, exist_ok=True)
    targets = {**{v: f"/tmp/{v}/x" for v in names}, **OWN_TARGETS}
    mounts = "".join(f"mkdir -p {t}; mount -t tmpfs -o size=16k leak-{n} {t} || echo failed: {t}\n"
                     for n, t in targets.items())
    bundle = base / cid
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(config(rootfs_propagation, volumes, names,
                                                          "cat /proc/self/mountinfo; echo ---\n" + mounts)))
    # the host's mountinfo is read through an fd opened first: a leak could cover the host's "/"
    host = f"""
        {f'mount --make-rshared / && mount --bind {BUSYBOX_ROOTFS} {BUSYBOX_ROOTFS}' if systemd_host else ''}
        mount --bind {volumes} {volumes} && mount --make-shared {volumes}
        exec 3</proc/self/mountinfo
        cat /proc/self/mountinfo
        echo "=== run"
        {runtime} --root {state} run {' '.join(run_flags)} --bundle {bundle} {cid} > {bundle}/out 2> {bundle}/err \
            && echo "=== rc 0" || echo "=== rc $?"
        while read -r line <&3; do echo "$line"; done
    """
    r = subprocess.run(["unshare", "--mount", "--propagation", "unchanged", "sh", "-ec", host], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    before, _, ran = r.stdout.partition("=== run\n")
    rc, _, after = ran.partition("\n")
    return {"before": before, "after": after, "rc": int(rc.removeprefix("=== rc ")),
            "out": (bundle / "out").read_text(), "err": (bundle / "err").read_text()}


@pytest.fixture(scope="module")
def runc_1_5() -> str:
    return engines.shared_tool("runc-1.5")


@pytest.mark.differential  # pyrt beside runc 1.5 (Debian's runc 1.1.5 predates its propagation rules)
@pytest.mark.parametrize("rootfs_propagation", [None, *PROPAGATIONS])
@pytest.mark.parametrize("host", ["private-host", "systemd-host"])
def test_propagation_as_runc_1_5(rt, tmp_path, runc_1_5, host, rootfs_propagation):
    """The container's mounts have runc 1.5's propagation (which volumes are peers or slaves of
    the host), and a mount made in the container reaches the host only through the volumes
    REACH_HOST names."""
    results = {}
    for name, binary, state in (("runtime", rt.binary, rt.root), ("runc-1.5", runc_1_5, tmp_path / "runc-state")):
        cid = rt.new_id()
        results[name] = run_in_host_ns(binary, state, tmp_path, cid, rootfs_propagation, host == "systemd-host")
    ours, runc = results["runtime"], results["runc-1.5"]
    if rootfs_propagation == "runbindable":  # the volumes' host mounts became unbindable: no bind
        assert ours["rc"] != 0 and runc["rc"] != 0, (ours, runc)
        assert "invalid argument" in ours["err"], ours["err"]
        return
    assert ours["rc"] == runc["rc"] == 0, (ours["err"], runc["err"])
    assert "failed:" not in ours["out"] + runc["out"]
    mounts_of = {name: normalized(r["out"].partition("---\n")[0], r["before"]) for name, r in results.items()}
    assert mounts_of["runtime"] == mounts_of["runc-1.5"]
    expected = REACH_HOST[rootfs_propagation]
    assert leaked(ours["before"], ours["after"]) == expected
    assert leaked(runc["before"], runc["after"]) == expected


@pytest.mark.pyrt_only  # runc (1.1.5 and 1.5) moves the rootfs onto a shared "/": onto the host's
@pytest.mark.parametrize("rootfs_propagation", ["shared", "rshared"])
def test_no_pivot_keeps_the_rootfs_off_the_host(rt, tmp_path, rootfs_propagation):
    """--no-pivot moves the rootfs onto "/"; on a host whose "/" is shared the move would
    propagate to the host's "/" (covering it with the container's rootfs) unless "/" is made
    private first. (No unbindable volume here: the kernel refuses to move a tree holding one onto
    a shared mount, which would hide the leak.)"""
    names = [v for v in VOLUMES if "unbindable" not in v]
    r = run_in_host_ns(rt.binary, rt.root, tmp_path, rt.new_id(), rootfs_propagation, True, "--no-pivot", names=names)
    assert r["rc"] == 0, r["err"]
    assert leaked(r["before"], r["after"]) == REACH_HOST[rootfs_propagation]


# ----------------------------------------------------------------------------- on the real host


def host_mounts(under: Path) -> dict[str, str]:
    """Mount point -> source of the host's mounts below `under`."""
    out = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, right = line.partition(" - ")
        if fields.split()[4].startswith(f"{under}/"):
            out[fields.split()[4]] = right.split()[1]
    return out


@pytest.fixture
def shared_volume(tmp_path):
    """A directory that is a shared mount on the host (as kubelet makes /var/lib/kubelet); it and
    everything mounted below it is unmounted at the end."""
    path = tmp_path / "volume"
    for d in ("in-container", "on-host"):
        (path / d).mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "--recursive", "--lazy", str(path)], check=True)
    assert not host_mounts(tmp_path) and not os.path.ismount(path)


def test_bidirectional_volume(rt, bundle, shared_volume):
    """mountPropagation: Bidirectional (what containerd's CRI sends): a mount made in the
    container under the volume appears on the host and its unmount goes too; a host mount made
    later appears in the container."""
    may_mount(bundle.config)["linux"]["rootfsPropagation"] = "rshared"
    bundle.config["mounts"].append({"destination": "/tmp/vol", "type": "bind", "source": str(shared_volume),
                                    "options": ["rbind", "rshared"]})
    bundle.args("sleep", "1000")
    cid = rt.create(bundle)
    rt.ok("start", cid)

    rt.ok("exec", cid, "mount", "-t", "tmpfs", "-o", "size=16k", "from-container", "/tmp/vol/in-container")
    assert host_mounts(shared_volume) == {f"{shared_volume}/in-container": "from-container"}
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "from-host", str(shared_volume / "on-host")],
                   check=True)
    inside = rt.ok("exec", cid, "cat", "/proc/self/mountinfo").stdout
    assert " /tmp/vol/on-host " in inside and " /tmp/vol/in-container " in inside

    rt.ok("exec", cid, "umount", "/tmp/vol/in-container")
    assert host_mounts(shared_volume) == {f"{shared_volume}/on-host": "from-host"}
    rt.ok("delete", "--force", cid)


def test_default_volume_is_a_host_slave(rt, bundle, shared_volume):
    """Without rootfsPropagation a bind of a shared host path is its slave (runc's rslave
    default): host mounts come in, nothing the container mounts goes out."""
    may_mount(bundle.config)["mounts"].append({"destination": "/tmp/vol", "type": "bind", "source": str(shared_volume),
                                    "options": ["rbind"]})
    bundle.args("sleep", "1000")
    cid = rt.create(bundle)
    rt.ok("start", cid)
    rt.ok("exec", cid, "mount", "-t", "tmpfs", "-o", "size=16k", "from-container", "/tmp/vol/in-container")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "from-host", str(shared_volume / "on-host")],
                   check=True)
    assert host_mounts(shared_volume) == {f"{shared_volume}/on-host": "from-host"}
    assert " /tmp/vol/on-host " in rt.ok("exec", cid, "cat", "/proc/self/mountinfo").stdout
    rt.ok("delete", "--force", cid)
