"""linux.resources, checked at the gate: every key and value, in no host's dialect yet.

`parse` reads a LinuxResources object (config.json's, or `update`'s) into a Resources value:
numbers in range, known keys only (a typo is an error: limits are applied, never ignored),
device rules, cpusets, hugepage sizes, unified file names. What depends on the host (which
controllers exist, v1 or v2, the values in force for an update) is cgwrites.py's, still before
anything is written. Errors name the field: `config.json: linux.resources.memory.limit: ...`.
"""

from __future__ import annotations

from pyrt.reader import ConfigError, Reader

MAX_INT64 = 2**63 - 1
MAX_UINT32 = 2**32 - 1
#: pids.max cannot exceed the kernel's PID_MAX_LIMIT.
PID_MAX_LIMIT = 4 * 1024 * 1024
#: Writable cgroup2 core files a config may set through linux.resources.unified.
UNIFIED_CORE = ("cgroup.max.depth", "cgroup.max.descendants")
#: blockIO throttles: config key -> (v1 file, v2 io.max key)
THROTTLES = {"throttleReadBpsDevice": ("blkio.throttle.read_bps_device", "rbps"),
             "throttleWriteBpsDevice": ("blkio.throttle.write_bps_device", "wbps"),
             "throttleReadIOPSDevice": ("blkio.throttle.read_iops_device", "riops"),
             "throttleWriteIOPSDevice": ("blkio.throttle.write_iops_device", "wiops")}


class Section:
    """The checked fields of one resources section (memory, cpu, blockIO, network), by name."""

    def __init__(self, **fields: object) -> None:
        self.__dict__.update(fields)

    def given(self, *names: str) -> bool:
        return any(getattr(self, n) not in (None, [], ()) for n in names)


class Resources:
    """A checked linux.resources. A section or field that was not given is None (an update
    changes only what it names). `where` places errors: a Reader of the resources object."""

    __slots__ = ("where", "memory", "cpu", "pids", "block_io", "hugepages", "rdma", "network", "devices", "unified")

    def __init__(self, where: Reader) -> None:
        self.where = where
        self.memory = self.cpu = self.pids = self.block_io = self.network = None
        self.hugepages: list[tuple[int, str, int]] | None = None  # (index, page size, limit)
        self.rdma: list[tuple[str, int | None, int | None]] | None = None  # (device, handles, objects)
        #: (allow, type, major, minor, access), -1 for a wildcard; None if not given
        self.devices: list[tuple[bool, str, int, int, str]] | None = None
        self.unified: list[tuple[str, str]] | None = None

    def error(self, field: str, why: str) -> ConfigError:
        return self.where.error(why, field)


def parse(obj: object, file: str, where: str) -> Resources:
    """Check a LinuxResources object; errors name `file: where.field`."""
    r = Reader(obj, file, where)
    res = Resources(r)
    sections = {"memory": _memory, "cpu": _cpu, "pids": _pids, "blockIO": _block_io, "hugepageLimits": _hugepages,
                "rdma": _rdma, "network": _network, "devices": _devices, "unified": _unified}
    for key, value in r.obj.items():
        if key not in sections:
            r.fail("unknown field", key)
        if value is not None:
            sections[key](r, value, res)
    return res


def _memory(r: Reader, obj: object, res: Resources) -> None:
    m = r.at(obj, "memory", ("limit", "reservation", "swap", "kernel", "kernelTCP", "swappiness", "disableOOMKiller",
                             "useHierarchy", "checkBeforeUpdate"))
    res.memory = Section(
        limit=m.number("limit", 1, MAX_INT64, minus_one=True, zero_unset=True),
        reservation=m.number("reservation", 1, MAX_INT64, minus_one=True, zero_unset=True),
        swap=m.number("swap", 1, MAX_INT64, minus_one=True, zero_unset=True),
        kernel=m.number("kernel", 1, MAX_INT64, minus_one=True, zero_unset=True),
        kernel_tcp=m.number("kernelTCP", 1, MAX_INT64, minus_one=True, zero_unset=True),
        swappiness=m.number("swappiness", 0, 100, minus_one=True),
        disable_oom_killer=m.flag("disableOOMKiller"), use_hierarchy=m.flag("useHierarchy"),
        check_before_update=m.flag("checkBeforeUpdate"), reader=m)


def _cpu(r: Reader, obj: object, res: Resources) -> None:
    c = r.at(obj, "cpu", ("shares", "quota", "burst", "period", "realtimeRuntime", "realtimePeriod", "cpus", "mems",
                          "idle"))
    res.cpu = Section(
        shares=c.number("shares", 2, 262144, zero_unset=True),
        quota=c.number("quota", 1000, MAX_INT64 // 1000, minus_one=True, zero_unset=True),
        period=c.number("period", 1000, 1000000, zero_unset=True),
        burst=c.number("burst", 0, MAX_INT64 // 1000),
        realtime_runtime=c.number("realtimeRuntime", 0, MAX_INT64 // 1000, minus_one=True),
        realtime_period=c.number("realtimePeriod", 1000, MAX_INT64 // 1000, zero_unset=True),
        idle=c.number("idle", 0, 1), cpus=_cpu_list(c, "cpus"), mems=_cpu_list(c, "mems"), reader=c)


def _cpu_list(c: Reader, key: str) -> str | None:
    """A cpuset list ("0-3,8"): digits, commas and ranges only."""
    text = c.text(key)
    if not text:
        return None
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        if not part.isascii() or not lo.isdigit() or (hi and (not hi.isdigit() or int(hi) < int(lo))):
            c.fail(f"{text!r} is not a list like 0-3,8", key)
    return text


def _pids(r: Reader, obj: object, res: Resources) -> None:
    p = r.at(obj, "pids", ("limit",))
    res.pids = p.number("limit", 0, PID_MAX_LIMIT, minus_one=True)


def _block_io(r: Reader, obj: object, res: Resources) -> None:
    b = r.at(obj, "blockIO", ("weight", "leafWeight", "weightDevice", *THROTTLES))
    weight = b.number("weight", 10, 1000, zero_unset=True)
    leaf = b.number("leafWeight", 10, 1000, zero_unset=True)
    devices = [(i, b.at(d, f"weightDevice[{i}]", ("major", "minor", "weight", "leafWeight")))
               for i, d in enumerate(b.array("weightDevice"))]
    throttles = []
    for key in THROTTLES:
        for i, d in enumerate(b.array(key)):
            t = b.at(d, f"{key}[{i}]", ("major", "minor", "rate"))
            throttles.append((key, _dev(t), t.number("rate", 0, 2**64 - 1)))
    weights = [(i, _dev(d), d.number("weight", 10, 1000, zero_unset=True),
                d.number("leafWeight", 10, 1000, zero_unset=True)) for i, d in devices]
    res.block_io = Section(weight=weight, leaf_weight=leaf, weight_devices=weights, throttles=throttles)


def _dev(o: Reader) -> str:
    major, minor = o.number("major", 0, MAX_UINT32), o.number("minor", 0, MAX_UINT32)
    if major is None or minor is None:
        o.fail("major and minor are required", "major")
    return f"{major}:{minor}"


def _hugepages(r: Reader, value: object, res: Resources) -> None:
    if not isinstance(value, list):
        r.fail("must be an array", "hugepageLimits")
    res.hugepages = []
    for i, obj in enumerate(value):
        h = r.at(obj, f"hugepageLimits[{i}]", ("pageSize", "limit"))
        size, limit = h.text("pageSize"), h.number("limit", 0, 2**64 - 1)
        if not size or not size[:-2].isdigit() or size[-2:] not in ("KB", "MB", "GB"):
            h.fail(f"{size!r} is not a page size like 2MB or 1GB", "pageSize")
        if limit is None:
            h.fail("is required", "limit")
        res.hugepages.append((i, size, limit))


def _rdma(r: Reader, value: object, res: Resources) -> None:
    if not isinstance(value, dict):
        r.fail("must be an object", "rdma")
    res.rdma = []
    for device, obj in value.items():
        d = r.at(obj, f"rdma.{device}", ("hcaHandles", "hcaObjects"))
        if not device or any(ch.isspace() or ch in "/=" for ch in device):
            r.fail(f"{device!r} is not a device name", "rdma")
        res.rdma.append((device, d.number("hcaHandles", 0, MAX_UINT32), d.number("hcaObjects", 0, MAX_UINT32)))


def _network(r: Reader, obj: object, res: Resources) -> None:
    n = r.at(obj, "network", ("classID", "priorities"))
    priorities = []
    class_id = n.number("classID", 0, MAX_UINT32)
    for i, item in enumerate(n.array("priorities")):
        p = n.at(item, f"priorities[{i}]", ("name", "priority"))
        name, prio = p.text("name"), p.number("priority", 0, MAX_UINT32)
        if not name or any(ch.isspace() for ch in name) or prio is None:
            p.fail("needs an interface name and a priority", "name")
        priorities.append((i, name, prio))
    res.network = Section(class_id=class_id, priorities=priorities)


def _devices(r: Reader, value: object, res: Resources) -> None:
    if not isinstance(value, list):
        r.fail("must be an array", "devices")
    res.devices = []
    for i, obj in enumerate(value):
        d = r.at(obj, f"devices[{i}]", ("allow", "type", "major", "minor", "access"))
        allow, kind, access = d.flag("allow"), d.text("type") or "a", d.text("access")
        if allow is None:
            d.fail("is required", "allow")
        if kind not in ("a", "b", "c"):
            d.fail(f"{kind!r} is not a, b or c", "type")
        access = "rwm" if access in (None, "") else access
        if not set(access) <= set("rwm"):
            d.fail(f"{access!r} is not a combination of r, w and m", "access")
        major = d.number("major", 0, MAX_UINT32 >> 1, minus_one=True)
        minor = d.number("minor", 0, MAX_UINT32 >> 1, minus_one=True)
        res.devices.append((allow, kind, -1 if major is None else major, -1 if minor is None else minor, access))


def _unified(r: Reader, value: object, res: Resources) -> None:
    """Arbitrary cgroup2 files: plain file names of a controller (which controllers this host
    has is cgwrites.py's to check), or the writable cgroup.* core files."""
    if not isinstance(value, dict):
        r.fail("must be an object", "unified")
    res.unified = []
    for key, v in value.items():
        field = f"unified.{key}"
        if not key or "/" in key or key.startswith(".") or "\0" in key or "." not in key:
            r.fail("not a cgroup file name", field)
        if not isinstance(v, str):
            r.fail("the value must be a string", field)
        if key.startswith("cgroup.") and key not in UNIFIED_CORE:
            r.fail(f"only {' and '.join(UNIFIED_CORE)} of the cgroup.* files may be set", field)
        res.unified.append((key, v))
