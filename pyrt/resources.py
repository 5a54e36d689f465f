"""linux.resources -> the cgroup files that enforce it, on cgroup v2 and on v1; `pyrt update`.

`plan` validates every key and value first (a one-line error naming the field, nothing written)
and turns the resources into an ordered list of `Write`s, each in the dialect of the hierarchy
its controller lives in on this host (`Cgroup.version`): v1 files (memory.limit_in_bytes ...)
or v2 files (memory.max ...), with the conversions the OCI spec, the kernel and runc document
(cpu.shares -> cpu.weight, memory+swap -> memory.swap.max, blkio weight -> io.weight, ...).
A limit that cannot be applied anywhere is an error naming the controller, never dropped; a
setting that means nothing on v2 (swappiness, kernel memory) is dropped with a warning.

Device rules are always installed (deny all, the config's rules in order, then the devices
every container gets): devices.deny/allow on v1, a BPF program on v2 (native/bpf.c).
"""

from __future__ import annotations

import os

from pyrt.errors import PyrtError

MAX_INT64 = 2**63 - 1
MAX_UINT32 = 2**32 - 1
#: pids.max cannot exceed the kernel's PID_MAX_LIMIT.
PID_MAX_LIMIT = 4 * 1024 * 1024
#: The devices pyrt puts in every container's /dev (and the ptys): always usable.
DEFAULT_RULES = (*((True, "c", major, minor, "rwm") for _, major, minor in
                   (("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7), ("/dev/random", 1, 8),
                    ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0))),
                 (True, "c", 5, 2, "rwm"),  # /dev/ptmx
                 (True, "c", 136, -1, "rwm"))  # /dev/pts/*, the console
ACCESS_BITS = {"m": 1, "r": 2, "w": 4}


class Write:
    """One value for one cgroup file. `field` names the config field it comes from (errors);
    on v2, `devices` writes carry the rule list for the BPF program instead of a file."""

    __slots__ = ("where", "field", "version", "controller", "file", "value")

    def __init__(self, where: str, field: str, version: int, controller: str, file: str, value) -> None:
        self.where, self.field, self.version = where, field, version
        self.controller, self.file, self.value = controller, file, value

    def __repr__(self) -> str:
        return f"Write({self.field}: v{self.version} {self.controller}/{self.file} = {self.value!r})"


class _Object:
    """One JSON object of linux.resources: typed getters whose errors name the field."""

    def __init__(self, obj: object, name: str, where: str, known: tuple[str, ...]) -> None:
        if not isinstance(obj, dict):
            raise PyrtError(f"{where}.{name}: must be an object")
        self.obj, self.name, self.where = obj, name, where
        for key in obj:
            if key not in known:
                raise PyrtError(f"{where}.{name}.{key}: unknown field")

    def fail(self, key: str, why: str) -> PyrtError:
        return PyrtError(f"{self.where}.{self.name}.{key}: {why}")

    def int(self, key: str, lo: int, hi: int, minus_one: bool = False, zero_unset: bool = False) -> int | None:
        """An integer in [lo, hi]; -1 (unlimited) if `minus_one`; 0 means unset if `zero_unset`."""
        v = self.obj.get(key)
        if v is None:
            return None
        if type(v) is not int:
            raise self.fail(key, f"{v!r} is not an integer")
        if zero_unset and v == 0:
            return None
        if not (lo <= v <= hi or (minus_one and v == -1)):
            allowed = f"{lo}..{hi}" + (" or -1 (unlimited)" if minus_one else "")
            raise self.fail(key, f"{v} is out of range ({allowed})")
        return v

    def bool(self, key: str) -> bool | None:
        v = self.obj.get(key)
        if v is not None and type(v) is not bool:
            raise self.fail(key, f"{v!r} is not true or false")
        return v

    def str(self, key: str) -> str | None:
        v = self.obj.get(key)
        if v is not None and not isinstance(v, str):
            raise self.fail(key, f"{v!r} is not a string")
        return v

    def list(self, key: str) -> list:
        v = self.obj.get(key)
        if v is None:
            return []
        if not isinstance(v, list):
            raise self.fail(key, "must be an array")
        return v


class _Planner:
    """Builds the writes for one linux.resources object on one cgroup."""

    def __init__(self, cg, where: str, current) -> None:
        self.cg, self.where, self.current = cg, where, current
        self.writes: list[Write] = []
        self.warnings: list[str] = []

    def version(self, field: str, v1_name: str, v2_name: str | None) -> int:
        ver = self.cg.version(v1_name, v2_name)
        if not ver:
            name = v1_name if v2_name in (None, v1_name) else f"{v1_name} (v1) / {v2_name} (v2)"
            raise PyrtError(f"{self.where}.{field}: the {name} controller is not available on this host")
        if ver == 2 and v2_name is None:
            raise PyrtError(f"{self.where}.{field}: cgroup v2 has no {v1_name} controller")
        return ver

    def add(self, field: str, version: int, controller: str, file: str, value) -> None:
        self.writes.append(Write(self.where, field, version, controller, file, value))

    def warn(self, field: str, why: str) -> None:
        self.warnings.append(f"{self.where}.{field}: ignored: {why}")

    # -- memory ----------------------------------------------------------------------------

    def memory(self, obj: object) -> None:
        m = _Object(obj, "memory", self.where, ("limit", "reservation", "swap", "kernel", "kernelTCP", "swappiness",
                                                "disableOOMKiller", "useHierarchy", "checkBeforeUpdate"))
        limit = m.int("limit", 1, MAX_INT64, minus_one=True, zero_unset=True)
        reservation = m.int("reservation", 1, MAX_INT64, minus_one=True, zero_unset=True)
        swap = m.int("swap", 1, MAX_INT64, minus_one=True, zero_unset=True)
        kernel = m.int("kernel", 1, MAX_INT64, minus_one=True, zero_unset=True)
        kernel_tcp = m.int("kernelTCP", 1, MAX_INT64, minus_one=True, zero_unset=True)
        swappiness = m.int("swappiness", 0, 100, minus_one=True)
        no_oom_kill, hierarchy, check = m.bool("disableOOMKiller"), m.bool("useHierarchy"), m.bool("checkBeforeUpdate")
        if all(v is None for v in (limit, reservation, swap, kernel, kernel_tcp, swappiness, no_oom_kill, hierarchy)):
            return
        ver = self.version("memory", "memory", "memory")
        if check and limit not in (None, -1) and self.current:
            usage = self.current("memory", "memory.usage_in_bytes" if ver == 1 else "memory.current")
            if usage is not None and int(usage) > limit:
                raise m.fail("limit", f"{limit} is below the current usage ({int(usage)}) and checkBeforeUpdate is set")
        if kernel is not None:
            self.warn("memory.kernel", "the kernel charges kernel memory to the memory limit; there is no separate "
                      "kernel memory limit any more")
        if hierarchy is False:
            self.warn("memory.useHierarchy", "memory accounting is always hierarchical on this kernel")
        if ver == 1:
            self._memory_v1(m, limit, reservation, swap, kernel_tcp, swappiness, no_oom_kill)
        else:
            self._memory_v2(m, limit, reservation, swap, kernel_tcp, swappiness, no_oom_kill)

    def _memory_v1(self, m: _Object, limit, reservation, swap, kernel_tcp, swappiness, no_oom_kill) -> None:
        if swap not in (None, -1) and limit not in (None, -1) and swap < limit:
            raise m.fail("swap", f"{swap} is below memory.limit ({limit}): on v1 it is memory plus swap")
        if swap is None and limit not in (None, -1) and self.current:
            cur = self.current("memory", "memory.memsw.limit_in_bytes")
            if cur is not None and int(cur) < limit:
                raise m.fail("limit", f"{limit} is above the memory+swap limit in force ({cur}): set the swap "
                             "limit too")
        writes = []
        if limit is not None:
            writes.append(("memory.limit", "memory.limit_in_bytes", limit))
        if swap is not None:
            # the kernel wants limit <= memsw at every moment: raise memsw first when it grows
            cur = self.current("memory", "memory.memsw.limit_in_bytes") if self.current else None
            memsw_first = limit is not None and cur is not None and (swap == -1 or swap > int(cur))
            writes.insert(0 if memsw_first else len(writes), ("memory.swap", "memory.memsw.limit_in_bytes", swap))
        if reservation is not None:
            writes.append(("memory.reservation", "memory.soft_limit_in_bytes", reservation))
        if kernel_tcp is not None:
            writes.append(("memory.kernelTCP", "memory.kmem.tcp.limit_in_bytes", kernel_tcp))
        if swappiness is not None and swappiness != -1:
            writes.append(("memory.swappiness", "memory.swappiness", swappiness))
        if no_oom_kill is not None:
            writes.append(("memory.disableOOMKiller", "memory.oom_control", int(no_oom_kill)))
        for field, file, value in writes:
            self.add(field, 1, "memory", file, str(value))

    def _memory_v2(self, m: _Object, limit, reservation, swap, kernel_tcp, swappiness, no_oom_kill) -> None:
        if limit is not None:
            self.add("memory.limit", 2, "memory", "memory.max", _max(limit))
        if swap is not None:
            if limit is None and self.current:  # update of the swap alone: against the current limit
                cur = self.current("memory", "memory.max")
                limit = -1 if cur in (None, "max") else int(cur)
            if swap == -1:
                value = "max"
            elif limit in (None, -1):
                raise m.fail("swap", "a swap limit needs a memory limit (on v2 swap is limited apart from memory)")
            elif swap < limit:
                raise m.fail("swap", f"{swap} is below memory.limit ({limit}): it is memory plus swap")
            else:
                value = str(swap - limit)
            self.add("memory.swap", 2, "memory", "memory.swap.max", value)
        if reservation is not None:
            self.add("memory.reservation", 2, "memory", "memory.low", _max(reservation))
        if kernel_tcp is not None:
            self.warn("memory.kernelTCP", "cgroup v2 charges TCP buffers to memory.max")
        if swappiness not in (None, -1):
            self.warn("memory.swappiness", "cgroup v2 has no per-cgroup swappiness")
        if no_oom_kill:
            self.warn("memory.disableOOMKiller", "cgroup v2 cannot disable the OOM killer (memory.high throttles)")

    # -- cpu, cpuset -----------------------------------------------------------------------

    def cpu(self, obj: object) -> None:
        c = _Object(obj, "cpu", self.where, ("shares", "quota", "burst", "period", "realtimeRuntime",
                                             "realtimePeriod", "cpus", "mems", "idle"))
        shares = c.int("shares", 2, 262144, zero_unset=True)
        quota = c.int("quota", 1000, MAX_INT64 // 1000, minus_one=True, zero_unset=True)
        period = c.int("period", 1000, 1000000, zero_unset=True)
        burst = c.int("burst", 0, MAX_INT64 // 1000)
        rt_runtime = c.int("realtimeRuntime", 0, MAX_INT64 // 1000, minus_one=True)
        rt_period = c.int("realtimePeriod", 1000, MAX_INT64 // 1000, zero_unset=True)
        idle = c.int("idle", 0, 1)
        cpus, mems = _cpu_list(c, "cpus"), _cpu_list(c, "mems")
        if any(v is not None for v in (shares, quota, period, burst, rt_runtime, rt_period, idle)):
            if self.version("cpu", "cpu", "cpu") == 1:
                for field, file, value in (("period", "cpu.cfs_period_us", period),
                                           ("quota", "cpu.cfs_quota_us", quota),
                                           ("burst", "cpu.cfs_burst_us", burst), ("shares", "cpu.shares", shares),
                                           ("realtimePeriod", "cpu.rt_period_us", rt_period),
                                           ("realtimeRuntime", "cpu.rt_runtime_us", rt_runtime),
                                           ("idle", "cpu.idle", idle)):
                    if value is not None:
                        self.add("cpu." + field, 1, "cpu", file, str(value))
            else:
                self._cpu_v2(c, shares, quota, period, burst, rt_runtime, rt_period, idle)
        for field, value in (("cpus", cpus), ("mems", mems)):
            if value:
                ver = self.version("cpu." + field, "cpuset", "cpuset")
                self.add("cpu." + field, ver, "cpuset", "cpuset." + field, value)

    def _cpu_v2(self, c: _Object, shares, quota, period, burst, rt_runtime, rt_period, idle) -> None:
        if rt_runtime is not None or rt_period is not None:
            key = "realtimeRuntime" if rt_runtime is not None else "realtimePeriod"
            raise c.fail(key, "cgroup v2 has no realtime CPU bandwidth control")
        if shares is not None:
            self.add("cpu.shares", 2, "cpu", "cpu.weight", str(shares_to_weight(shares)))
        if quota is not None or period is not None:
            if quota is None and self.current:  # update of the period alone keeps the quota
                quota_text = (self.current("cpu", "cpu.max") or "max").split()[0]
            else:
                quota_text = _max(quota) if quota is not None else "max"
            self.add("cpu.quota", 2, "cpu", "cpu.max", quota_text + (f" {period}" if period else ""))
        if burst is not None:
            self.add("cpu.burst", 2, "cpu", "cpu.max.burst", str(burst))
        if idle is not None:
            self.add("cpu.idle", 2, "cpu", "cpu.idle", str(idle))

    # -- pids, block I/O, hugepages, rdma, network -----------------------------------------

    def pids(self, obj: object) -> None:
        p = _Object(obj, "pids", self.where, ("limit",))
        limit = p.int("limit", 0, PID_MAX_LIMIT, minus_one=True)
        if limit is not None:
            self.add("pids.limit", self.version("pids", "pids", "pids"), "pids", "pids.max", _max(limit or -1))

    def block_io(self, obj: object) -> None:
        b = _Object(obj, "blockIO", self.where, ("weight", "leafWeight", "weightDevice", "throttleReadBpsDevice",
                                                 "throttleWriteBpsDevice", "throttleReadIOPSDevice",
                                                 "throttleWriteIOPSDevice"))
        weight = b.int("weight", 10, 1000, zero_unset=True)
        leaf = b.int("leafWeight", 10, 1000, zero_unset=True)
        devices = [(i, _Object(d, f"blockIO.weightDevice[{i}]", self.where, ("major", "minor", "weight", "leafWeight")))
                   for i, d in enumerate(b.list("weightDevice"))]
        throttles = []
        for key, v1_file, v2_key in (("throttleReadBpsDevice", "blkio.throttle.read_bps_device", "rbps"),
                                     ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device", "wbps"),
                                     ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device", "riops"),
                                     ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", "wiops")):
            for i, d in enumerate(b.list(key)):
                t = _Object(d, f"blockIO.{key}[{i}]", self.where, ("major", "minor", "rate"))
                dev = _dev(t)
                throttles.append((f"blockIO.{key}", v1_file, v2_key, dev, t.int("rate", 0, 2**64 - 1)))
        if weight is None and leaf is None and not devices and not throttles:
            return
        ver = self.version("blockIO", "blkio", "io")
        if ver == 1:
            prefix = "blkio.bfq." if self._v1_has("blkio", "blkio.bfq.weight") else "blkio."
            if weight is not None:
                self.add("blockIO.weight", 1, "blkio", prefix + "weight", str(weight))
            if leaf is not None:
                self.add("blockIO.leafWeight", 1, "blkio", "blkio.leaf_weight", str(leaf))
        else:
            if weight is not None:
                self.add("blockIO.weight", 2, "io", "io.weight", f"default {blkio_to_io_weight(weight)}")
            if leaf is not None:
                self.warn("blockIO.leafWeight", "cgroup v2 has no leaf weight")
        for i, d in devices:
            dev, w, lw = _dev(d), d.int("weight", 10, 1000, zero_unset=True), d.int("leafWeight", 10, 1000,
                                                                                     zero_unset=True)
            field = f"blockIO.weightDevice[{i}]"
            if w is not None:
                if ver == 1:
                    self.add(field, 1, "blkio", prefix + "weight_device", f"{dev} {w}")
                else:
                    self.add(field, 2, "io", "io.weight", f"{dev} {blkio_to_io_weight(w)}")
            if lw is not None:
                if ver == 1:
                    self.add(field, 1, "blkio", "blkio.leaf_weight_device", f"{dev} {lw}")
                else:
                    self.warn(field + ".leafWeight", "cgroup v2 has no leaf weight")
        for field, v1_file, v2_key, dev, rate in throttles:
            if ver == 1:
                self.add(field, 1, "blkio", v1_file, f"{dev} {rate or 0}")
            else:
                self.add(field, 2, "io", "io.max", f"{dev} {v2_key}={rate or 'max'}")

    def _v1_has(self, controller: str, file: str) -> bool:
        return os.path.exists(os.path.join(self.cg.v1[controller], file))

    def hugepages(self, value: object) -> None:
        if not isinstance(value, list):
            raise PyrtError(f"{self.where}.hugepageLimits: must be an array")
        for i, obj in enumerate(value):
            h = _Object(obj, f"hugepageLimits[{i}]", self.where, ("pageSize", "limit"))
            size, limit = h.str("pageSize"), h.int("limit", 0, 2**64 - 1)
            if not size or not size[:-2].isdigit() or size[-2:] not in ("KB", "MB", "GB"):
                raise h.fail("pageSize", f"{size!r} is not a page size like 2MB or 1GB")
            if limit is None:
                raise h.fail("limit", "is required")
            ver = self.version(f"hugepageLimits[{i}]", "hugetlb", "hugetlb")
            self.add(f"hugepageLimits[{i}]", ver, "hugetlb",
                     f"hugetlb.{size}.limit_in_bytes" if ver == 1 else f"hugetlb.{size}.max", str(limit))

    def rdma(self, value: object) -> None:
        if not isinstance(value, dict):
            raise PyrtError(f"{self.where}.rdma: must be an object")
        for device, obj in value.items():
            r = _Object(obj, f"rdma.{device}", self.where, ("hcaHandles", "hcaObjects"))
            if not device or any(ch.isspace() or ch in "/=" for ch in device):
                raise PyrtError(f"{self.where}.rdma: {device!r} is not a device name")
            parts = [f"{name}={v}" for name, v in (("hca_handle", r.int("hcaHandles", 0, MAX_UINT32)),
                                                   ("hca_object", r.int("hcaObjects", 0, MAX_UINT32))) if v is not None]
            if parts:
                self.add(f"rdma.{device}", self.version(f"rdma.{device}", "rdma", "rdma"), "rdma", "rdma.max",
                         f"{device} {' '.join(parts)}")

    def network(self, obj: object) -> None:
        n = _Object(obj, "network", self.where, ("classID", "priorities"))
        class_id = n.int("classID", 0, MAX_UINT32)
        if class_id is not None:
            self.version("network.classID", "net_cls", None)
            self.add("network.classID", 1, "net_cls", "net_cls.classid", str(class_id))
        for i, obj in enumerate(n.list("priorities")):
            p = _Object(obj, f"network.priorities[{i}]", self.where, ("name", "priority"))
            name, prio = p.str("name"), p.int("priority", 0, MAX_UINT32)
            if not name or any(ch.isspace() for ch in name) or prio is None:
                raise p.fail("name", "needs an interface name and a priority")
            self.version(f"network.priorities[{i}]", "net_prio", None)
            self.add(f"network.priorities[{i}]", 1, "net_prio", "net_prio.ifpriomap", f"{name} {prio}")

    # -- unified, devices ------------------------------------------------------------------

    def unified(self, value: object) -> None:
        """Arbitrary cgroup2 files: each key a plain file name of an available controller."""
        from pyrt.cgroups import UNIFIED_CORE

        if not isinstance(value, dict):
            raise PyrtError(f"{self.where}.unified: must be an object")
        for key, v in value.items():
            field = f"unified.{key}"
            if not key or "/" in key or key.startswith(".") or "\0" in key or "." not in key:
                raise PyrtError(f"{self.where}.{field}: not a cgroup file name")
            if not isinstance(v, str):
                raise PyrtError(f"{self.where}.{field}: the value must be a string")
            controller = key.split(".", 1)[0]
            if controller == "cgroup":
                if key not in UNIFIED_CORE:
                    raise PyrtError(f"{self.where}.{field}: only {' and '.join(UNIFIED_CORE)} of the cgroup.* "
                                    "files may be set")
            elif controller in self.cg.v1:
                raise PyrtError(f"{self.where}.{field}: the {controller} controller is on a cgroup v1 hierarchy on "
                                "this host (use the v1 fields of linux.resources)")
            elif controller not in self.cg.v2_controllers():
                raise PyrtError(f"{self.where}.{field}: {controller} is not a cgroup v2 controller of this host")
            self.add(field, 2, controller, key, v)

    def devices(self, value: object, device_nodes) -> None:
        if value is None:
            value = []
        if not isinstance(value, list):
            raise PyrtError(f"{self.where}.devices: must be an array")
        rules = [(False, "a", -1, -1, "rwm")]
        for i, obj in enumerate(value):
            d = _Object(obj, f"devices[{i}]", self.where, ("allow", "type", "major", "minor", "access"))
            allow, kind, access = d.bool("allow"), d.str("type") or "a", d.str("access")
            if allow is None:
                raise d.fail("allow", "is required")
            if kind not in ("a", "b", "c"):
                raise d.fail("type", f"{kind!r} is not a, b or c")
            access = "rwm" if access in (None, "") else access
            if not set(access) <= set("rwm"):
                raise d.fail("access", f"{access!r} is not a combination of r, w and m")
            major, minor = d.int("major", 0, MAX_UINT32 >> 1, minus_one=True), d.int("minor", 0, MAX_UINT32 >> 1,
                                                                                       minus_one=True)
            rules.append((allow, kind, -1 if major is None else major, -1 if minor is None else minor, access))
        rules += DEFAULT_RULES
        # pyrt-init creates the linux.devices nodes inside the cgroup: it may mknod them
        rules += [(True, n.type, n.major, n.minor, "m") for n in device_nodes if n.type in ("b", "c")]
        ver = self.version("devices", "devices", "devices")
        if ver == 2:
            self.add("devices", 2, "devices", "", tuple(rules))
            return
        for allow, kind, major, minor, access in rules:
            rule = "a" if kind == "a" else f"{kind} {_star(major)}:{_star(minor)} {access}"
            self.add("devices", 1, "devices", "devices.allow" if allow else "devices.deny", rule)


def plan(resources: object, cg, where: str, device_nodes=(), update: bool = False, current=None) -> list[Write]:
    """Validate linux.resources and turn it into the writes that enforce it on `cg`'s host.
    `update`: only what is given changes (no device rules unless given); `current(controller,
    file)` reads a value now in force (partial updates need it)."""
    from pyrt import log

    if not isinstance(resources, dict):
        raise PyrtError(f"{where}: must be an object")
    p = _Planner(cg, where, current)
    handlers = {"memory": p.memory, "cpu": p.cpu, "pids": p.pids, "blockIO": p.block_io,
                "hugepageLimits": p.hugepages, "rdma": p.rdma, "network": p.network}
    for key, value in resources.items():
        if key in handlers:
            if value is not None:
                handlers[key](value)
        elif key not in ("devices", "unified"):
            raise PyrtError(f"{where}.{key}: unknown field")
    if not update or resources.get("devices") is not None:
        p.devices(resources.get("devices"), device_nodes)
    if resources.get("unified") is not None:
        p.unified(resources["unified"])  # last: it overrides what the fields above set
    for warning in p.warnings:
        log.warning(warning)
    return p.writes


def apply(cg, writes: list[Write], where: str) -> None:
    """Perform the writes. Every target file is checked first, so a limit this kernel lacks
    fails before anything is written."""
    targets = []
    for w in writes:
        if w.version == 2 and w.controller == "devices":
            targets.append(None)
            continue
        path = os.path.join(cg.controller_dir(w.controller) if w.version == 1 else cg.dir, w.file)
        if not os.path.exists(path):
            raise PyrtError(f"{w.where}.{w.field}: this host's {w.controller} controller has no {w.file}")
        targets.append(path)
    for w, path in zip(writes, targets, strict=True):
        if path is None:
            _device_filter(cg, w)
            continue
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, w.value.encode())
            finally:
                os.close(fd)
        except OSError as e:
            why = os.strerror(e.errno).lower()
            raise PyrtError(f"{w.where}.{w.field}: write {w.value!r} to {path}: {why}") from None


def _device_filter(cg, w: Write) -> None:
    """Load the rules as a BPF device program on the cgroup, replacing any earlier one."""
    from pyrt._native import ffi, lib

    flat = []
    for allow, kind, major, minor, access in w.value:
        flat += [int(allow), ord(kind), major, minor, sum(ACCESS_BITS[a] for a in access)]
    log = ffi.new("char[]", 4096)
    fd = os.open(cg.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        prog = lib.pyrt_bpf_devices(fd, ffi.new("int[]", flat), len(w.value), log, len(log))
        if prog < 0:
            detail = ffi.string(log).decode(errors="replace").strip().splitlines()
            raise PyrtError(f"{w.where}.devices: load the device filter on {cg.dir}: {os.strerror(-prog).lower()}"
                            + (f" ({detail[-1]})" if detail else ""))
        try:
            rc = lib.pyrt_bpf_detach_others(fd, prog)
            if rc < 0:
                raise PyrtError(f"{w.where}.devices: replace the device filter on {cg.dir}: "
                                f"{os.strerror(-rc).lower()}")
        finally:
            os.close(prog)
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- conversions


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144, default 1024) -> cpu.weight (1..10000, default 100).

    The quadratic-in-log mapping runc (1.3.2+) and crun (1.23+) adopted: it keeps the
    endpoints and maps the v1 default 1024 to the v2 default 100 (the older linear formula
    gave 39, quietly starving every container that asked for the default)."""
    import math

    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    exponent = (math.log2(shares) ** 2 + 125 * math.log2(shares)) / 612.0 - 7.0 / 34.0
    return min(10000, max(1, math.ceil(10**exponent)))


def blkio_to_io_weight(weight: int) -> int:
    """blkio.weight (10..1000) -> io.weight (1..10000), linearly (the kernel's documented
    conversion, as runc and crun apply it)."""
    return 1 + (weight - 10) * 9999 // 990


def _max(value: int) -> str:
    return "max" if value == -1 else str(value)


def _star(value: int) -> str:
    return "*" if value == -1 else str(value)


def _dev(o: _Object) -> str:
    major, minor = o.int("major", 0, MAX_UINT32), o.int("minor", 0, MAX_UINT32)
    if major is None or minor is None:
        raise o.fail("major", "major and minor are required")
    return f"{major}:{minor}"


def _cpu_list(o: _Object, key: str) -> str | None:
    """A cpuset list ("0-3,8"): digits, commas and ranges only."""
    text = o.str(key)
    if not text:
        return None
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        if not part.isascii() or not lo.isdigit() or (hi and (not hi.isdigit() or int(hi) < int(lo))):
            raise o.fail(key, f"{text!r} is not a list like 0-3,8")
    return text


# ----------------------------------------------------------------------------- pyrt update


def cmd_update(g, opts: dict, args: list[str]) -> int:
    """runc's update: new limits from flags, or a LinuxResources JSON (--resources FILE|-)."""
    from pyrt.state import Container

    c = Container.load(g.root, args[0])
    try:
        if c.status() == "stopped":
            raise PyrtError("container not running")
        if opts["resources"]:
            resources, where = _read_resources(opts["resources"]), "update: resources"
        else:
            resources, where = _from_flags(opts), "update"
        cg = c.cgroup()

        def current(controller: str, file: str) -> str | None:
            try:
                with open(os.path.join(cg.controller_dir(controller), file), "rb") as f:
                    return f.read().decode().strip()
            except OSError:
                return None

        writes = plan(resources, cg, where, update=True, current=current)
        cg.check_alone("update")  # a limit on a joined cgroup reaches all its subtree
        apply(cg, writes, where)
    finally:
        c.close()
    return 0


def _read_resources(path: str) -> dict:
    """The LinuxResources JSON of `--resources FILE|-`: a regular file or stdin, at most
    jsonio.MAX_SIZE, no NUL byte in any string."""
    from pyrt import jsonio, spec

    name = f"update --resources {path}"
    try:
        data = jsonio.read_capped(0, path) if path == "-" else jsonio.read_regular(path)
    except OSError as e:
        raise PyrtError(f"{name}: {os.strerror(e.errno).lower()}") from None
    except PyrtError as e:
        raise PyrtError(f"update --resources {e}") from None
    try:
        value = jsonio.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise PyrtError(f"{name}: not JSON: {e}") from None
    if not isinstance(value, dict):
        raise PyrtError(f"{name}: must hold a JSON object (LinuxResources)")
    spec.check_tree(value, name)
    return value


#: update flag -> (resources section, field, parser)
_FLAGS = {
    "memory": ("memory", "limit", "bytes"), "memory-reservation": ("memory", "reservation", "bytes"),
    "memory-swap": ("memory", "swap", "bytes"), "kernel-memory": ("memory", "kernel", "bytes"),
    "kernel-memory-tcp": ("memory", "kernelTCP", "bytes"),
    "cpu-period": ("cpu", "period", "int"), "cpu-quota": ("cpu", "quota", "int"), "cpu-burst": ("cpu", "burst", "int"),
    "cpu-share": ("cpu", "shares", "int"), "cpu-shares": ("cpu", "shares", "int"),
    "cpu-rt-period": ("cpu", "realtimePeriod", "int"), "cpu-rt-runtime": ("cpu", "realtimeRuntime", "int"),
    "cpu-idle": ("cpu", "idle", "int"), "cpuset-cpus": ("cpu", "cpus", "str"), "cpuset-mems": ("cpu", "mems", "str"),
    "pids-limit": ("pids", "limit", "int"), "blkio-weight": ("blockIO", "weight", "int"),
}


def _from_flags(opts: dict) -> dict:
    for flag in ("l3-cache-schema", "mem-bw-schema"):
        if opts.get(flag):
            raise PyrtError(f"update --{flag}: Intel RDT is not supported by pyrt")
    resources: dict = {}
    for flag, (section, field, kind) in _FLAGS.items():
        text = opts.get(flag)
        if text is None:
            continue
        if kind == "str" or isinstance(text, int):
            value = text
        elif kind == "bytes":
            value = parse_bytes(text, flag)
        else:
            try:
                value = int(text)
            except ValueError:
                raise PyrtError(f"update --{flag}: {text!r} is not an integer") from None
        resources.setdefault(section, {})[field] = value
    return resources


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_bytes(text: str, flag: str) -> int:
    """A size as runc's update takes it: 1048576, 512k, 64m, 1.5g, 1GiB; -1 is unlimited.
    Digits only (no nan, inf, 1e3), computed exactly; the range is checked with the field."""
    s = text.strip().lower()
    if s == "-1":
        return -1
    num = s.rstrip("kmgtpib ")
    unit = s[len(num):].strip().removesuffix("b").removesuffix("i")
    whole, dot, frac = num.partition(".")
    if not (num.isascii() and whole.isdigit() and (frac.isdigit() or not dot) and len(num) <= 40
            and unit in _UNITS):
        raise PyrtError(f"update --{flag}: {text!r} is not a size (bytes, or with k, m, g, t)")
    scale = _UNITS[unit]
    return int(whole) * scale + (int(frac) * scale // 10 ** len(frac) if frac else 0)
