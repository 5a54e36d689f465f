"""The gate's part for user and time namespaces: uid/gid mappings (of linux and of mounts),
that they go with a user namespace, and linux.timeOffsets. Split from config.py, which calls it;
every error names the field as the rest of the gate does."""

from __future__ import annotations

from pyrt.reader import Reader
from pyrt.spec import FrozenDict

#: The kernel's limit on the lines of a uid_map or gid_map (UID_GID_MAP_MAX_EXTENTS).
MAX_EXTENTS = 340


def mappings(r: Reader, key: str) -> tuple:
    """uidMappings or gidMappings (of linux, or of a mount) as (containerID, hostID, size),
    checked as the kernel would check the map written from them, so a bad one fails at the gate
    with the field's name and not as EINVAL from a uid_map write: sizes of at least 1, ranges
    within the 32-bit ids (the last, 4294967295, is "no id"), neither the container's nor the
    host's ranges overlapping, at most 340 lines."""
    out = []
    for m in r.items(key):
        cid, hid, size = m.uint("containerID"), m.uint("hostID"), m.uint("size")
        if size == 0:
            m.fail("must be at least 1", "size")
        for name, start in (("containerID", cid), ("hostID", hid)):
            if start + size > 0xFFFFFFFF:
                m.fail(f"{name} + size goes past the last id 4294967294", "size")
        out.append((cid, hid, size))
    if len(out) > MAX_EXTENTS:
        r.fail(f"{len(out)} mappings: the kernel takes at most {MAX_EXTENTS}", key)
    for side, name in ((0, "containerID"), (1, "hostID")):
        ranges = sorted((m[side], m[side] + m[2], i) for i, m in enumerate(out))
        for (_, end, i), (start, _, j) in zip(ranges, ranges[1:], strict=False):
            if start < end:
                r.fail(f"entries {min(i, j)} and {max(i, j)} overlap ({name} ranges)", key)
    return tuple(out)


def _mapped(maps: tuple, cid: int) -> bool:
    return any(c <= cid < c + size for c, _, size in maps)


def check_userns(lx: Reader, s: dict, namespaces: dict) -> None:
    """Mappings belong to a user namespace: refused without one (runc ignores them: they would
    map nothing); a new one needs both, with the container's root and process ids in them (as
    runc: pyrt-init becomes the namespace's root before it execs); its other namespaces cannot be
    joined by path (they would be joined from inside it, which owns none of them)."""
    for key in ("uidMappings", "gidMappings"):
        maps = s["uid_mappings" if key[0] == "u" else "gid_mappings"]
        if maps and "user" not in namespaces:
            lx.fail("mappings without a user namespace (linux.namespaces has none)", key)
        if "user" in namespaces and namespaces["user"] is None:
            if not maps:
                lx.fail("a new user namespace needs mappings", key)
            proc = s["process"]
            for i in [0] + ([proc.uid if key[0] == "u" else proc.gid] if proc else []):
                if not _mapped(maps, i):
                    lx.fail(f"user namespaces enabled, but no mapping found for {key[0]}id {i}", key)
    if "user" in namespaces and namespaces["user"] is None:
        others = [k for k, path in namespaces.items() if path and k != "user"]
        if others:
            lx.fail(f'a new user namespace with the "{others[0]}" namespace joined by path is not supported by pyrt',
                    "namespaces")


def time_offsets(lx: Reader, namespaces: dict) -> FrozenDict:
    """linux.timeOffsets: per clock its offset in a new time namespace, as /proc/PID/timens_offsets
    takes it (seconds a signed 64-bit number, nanoseconds 0-999999999); only with a new time
    namespace (runc's words), whose offsets are written before any process enters it."""
    offsets = lx.child("timeOffsets")
    if not offsets:
        return FrozenDict()
    out = {}
    for clock in offsets.obj:
        if clock not in ("monotonic", "boottime"):
            offsets.fail(f'unknown clock "{clock}" (monotonic or boottime)')
        o = offsets.child(clock, required=True)
        secs = o.get("secs", int, 0)
        if not -(1 << 63) <= secs < 1 << 63:
            o.fail("must be a signed 64-bit number of seconds", "secs")
        nanos = o.get("nanosecs", int, 0)
        if not 0 <= nanos < 1_000_000_000:
            o.fail("must be between 0 and 999999999", "nanosecs")
        out[clock] = (secs, nanos)
    if out and ("time" not in namespaces or namespaces["time"]):
        lx.fail("time namespace offsets specified, but time namespace isn't enabled in the config"
                + (" (a joined one has its offsets)" if namespaces.get("time") else ""), "timeOffsets")
    return FrozenDict(out)


def net_devices(lx: Reader, namespaces: dict) -> tuple:
    """linux.netDevices: (host link, its name in the container) pairs. Only into a network
    namespace the container makes (runc: not without one; a joined one is not pyrt's to give
    host links to, nor to take them back from); names as the kernel takes them (runc's check),
    never loopback (the kernel cannot move it)."""
    devices = lx.child("netDevices")
    if not devices:
        return ()
    if "network" not in namespaces or namespaces["network"]:
        where = "into a joined NET namespace" if namespaces.get("network") else "without a NET namespace"
        lx.fail(f"needs a new network namespace (not the host's, not one joined by path): unable to move network "
                f"devices {where}", "netDevices")
    out = []
    for host in devices.obj:
        d = devices.child(host, required=True)
        name = d.get("name", str) or host
        for what, value in (("", host), (".name", name)):
            if not _link_name(value):
                devices.fail(f'invalid network device name "{value}"', host + what)
        if "lo" in (host, name):
            devices.fail("the loopback device cannot be moved", host)
        out.append((host, name))
    if len({n for _, n in out}) < len(out):
        lx.fail("two devices get the same name", "netDevices")
    return tuple(out)


def _link_name(name: str) -> bool:
    """A name the kernel accepts for a link (dev_valid_name): 1-15 bytes, not . or .., no / : or space."""
    return 0 < len(name.encode()) < 16 and name not in (".", "..") and not any(c in name for c in "/: \t\n")
