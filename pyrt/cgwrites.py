"""Checked resources (limits.Resources) -> the cgroup files that enforce them on this host.

`writes` turns the resources into an ordered list of `Write`s, each in the dialect of the
hierarchy its controller lives in on this host (`Cgroup.version`): v1 files
(memory.limit_in_bytes ...) or v2 files (memory.max ...), with the conversions the OCI spec, the
kernel and runc document (cpu.shares -> cpu.weight, memory+swap -> memory.swap.max, blkio weight
-> io.weight, ...). A limit that cannot be applied anywhere is an error naming the controller,
never dropped; a setting that means nothing on v2 (swappiness, kernel memory) is dropped with a
warning. Nothing is written here: `apply` does that, for create's cgroup step and for `update`.

Device rules are always installed (deny all, the config's rules in order, then the devices
every container gets): devices.deny/allow on v1, a BPF program on v2 (native/bpf.c).
"""

from __future__ import annotations

import os

from pyrt.errors import PyrtError
from pyrt.limits import UNIFIED_CORE, Resources, Section

#: The devices pyrt puts in every container's /dev (and the ptys): always usable.
DEFAULT_RULES = (*((True, "c", major, minor, "rwm") for _, major, minor in
                   (("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7), ("/dev/random", 1, 8),
                    ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0))),
                 (True, "c", 5, 2, "rwm"),  # /dev/ptmx
                 (True, "c", 136, -1, "rwm"))  # /dev/pts/*, the console
ACCESS_BITS = {"m": 1, "r": 2, "w": 4}


class Write:
    """One value for one cgroup file. `where` names the config field it comes from (errors:
    "config.json: linux.resources.memory.limit"); on v2, `devices` writes carry the rule list
    for the BPF program instead of a file."""

    __slots__ = ("where", "version", "controller", "file", "value")

    def __init__(self, where: str, version: int, controller: str, file: str, value) -> None:
        self.where, self.version, self.controller, self.file, self.value = where, version, controller, file, value

    def __repr__(self) -> str:
        return f"Write({self.where}: v{self.version} {self.controller}/{self.file} = {self.value!r})"

    def describe(self) -> str:
        target = "the device filter (BPF)" if self.version == 2 and self.controller == "devices" else self.file
        value = f"{len(self.value)} rules" if isinstance(self.value, tuple) else repr(self.value)
        return f"write {value} to {target} (cgroup v{self.version})"


class _Writer:
    """Builds the writes for one Resources on one cgroup."""

    def __init__(self, res: Resources, cg, current) -> None:
        self.res, self.cg, self.current = res, cg, current
        self.writes: list[Write] = []
        self.warnings: list[str] = []

    def fail(self, field: str, why: str) -> PyrtError:
        return self.res.error(field, why)

    def version(self, field: str, v1_name: str, v2_name: str | None) -> int:
        ver = self.cg.version(v1_name, v2_name)
        if not ver:
            name = v1_name if v2_name in (None, v1_name) else f"{v1_name} (v1) / {v2_name} (v2)"
            raise self.fail(field, f"the {name} controller is not available on this host")
        if ver == 2 and v2_name is None:
            raise self.fail(field, f"cgroup v2 has no {v1_name} controller")
        return ver

    def add(self, field: str, version: int, controller: str, file: str, value) -> None:
        self.writes.append(Write(self.res.where.name(field), version, controller, file, value))

    def warn(self, field: str, why: str) -> None:
        self.warnings.append(f"{self.res.where.name(field)}: ignored: {why}")

    # -- memory ----------------------------------------------------------------------------

    def memory(self, m: Section) -> None:
        if not m.given("limit", "reservation", "swap", "kernel", "kernel_tcp", "swappiness", "disable_oom_killer",
                       "use_hierarchy"):
            return
        ver = self.version("memory", "memory", "memory")
        if m.check_before_update and m.limit not in (None, -1) and self.current:
            usage = self.current("memory", "memory.usage_in_bytes" if ver == 1 else "memory.current")
            if usage is not None and int(usage) > m.limit:
                m.reader.fail(f"{m.limit} is below the current usage ({int(usage)}) and checkBeforeUpdate is set",
                              "limit")
        if m.kernel is not None:
            self.warn("memory.kernel", "the kernel charges kernel memory to the memory limit; there is no separate "
                      "kernel memory limit any more")
        if m.use_hierarchy is False:
            self.warn("memory.useHierarchy", "memory accounting is always hierarchical on this kernel")
        (self._memory_v1 if ver == 1 else self._memory_v2)(m)

    def _memory_v1(self, m: Section) -> None:
        limit, swap = m.limit, m.swap
        if swap not in (None, -1) and limit not in (None, -1) and swap < limit:
            m.reader.fail(f"{swap} is below memory.limit ({limit}): on v1 it is memory plus swap", "swap")
        if swap is None and limit not in (None, -1) and self.current:
            cur = self.current("memory", "memory.memsw.limit_in_bytes")
            if cur is not None and int(cur) < limit:
                m.reader.fail(f"{limit} is above the memory+swap limit in force ({cur}): set the swap limit too",
                              "limit")
        if limit == -1 and swap is None and self.current:  # as runc 1.5: no memory limit lifts the swap one
            cur = self.current("memory", "memory.memsw.limit_in_bytes")
            if cur is not None and int(cur) < 1 << 62:
                swap = -1
        writes = []
        if limit is not None:
            writes.append(("memory.limit", "memory.limit_in_bytes", limit))
        if swap is not None:
            # the kernel wants limit <= memsw at every moment: raise memsw first when it grows
            cur = self.current("memory", "memory.memsw.limit_in_bytes") if self.current else None
            memsw_first = limit is not None and cur is not None and (swap == -1 or swap > int(cur))
            writes.insert(0 if memsw_first else len(writes), ("memory.swap", "memory.memsw.limit_in_bytes", swap))
        if m.reservation is not None:
            writes.append(("memory.reservation", "memory.soft_limit_in_bytes", m.reservation))
        if m.kernel_tcp is not None:
            writes.append(("memory.kernelTCP", "memory.kmem.tcp.limit_in_bytes", m.kernel_tcp))
        if m.swappiness is not None and m.swappiness != -1:
            writes.append(("memory.swappiness", "memory.swappiness", m.swappiness))
        if m.disable_oom_killer is not None:
            writes.append(("memory.disableOOMKiller", "memory.oom_control", int(m.disable_oom_killer)))
        for field, file, value in writes:
            self.add(field, 1, "memory", file, str(value))

    def _memory_v2(self, m: Section) -> None:
        limit = m.limit
        if limit is not None:
            self.add("memory.limit", 2, "memory", "memory.max", _max(limit))
        if m.swap is not None:
            if limit is None and self.current:  # update of the swap alone: against the current limit
                cur = self.current("memory", "memory.max")
                limit = -1 if cur in (None, "max") else int(cur)
            if m.swap == -1:
                value = "max"
            elif limit in (None, -1):
                m.reader.fail("a swap limit needs a memory limit (on v2 swap is limited apart from memory)", "swap")
            elif m.swap < limit:
                m.reader.fail(f"{m.swap} is below memory.limit ({limit}): it is memory plus swap", "swap")
            else:
                value = str(m.swap - limit)
            self.add("memory.swap", 2, "memory", "memory.swap.max", value)
        if m.reservation is not None:
            self.add("memory.reservation", 2, "memory", "memory.low", _max(m.reservation))
        if m.kernel_tcp is not None:
            self.warn("memory.kernelTCP", "cgroup v2 charges TCP buffers to memory.max")
        if m.swappiness not in (None, -1):
            self.warn("memory.swappiness", "cgroup v2 has no per-cgroup swappiness")
        if m.disable_oom_killer:
            self.warn("memory.disableOOMKiller", "cgroup v2 cannot disable the OOM killer (memory.high throttles)")

    # -- cpu, cpuset -----------------------------------------------------------------------

    def cpu(self, c: Section) -> None:
        if c.given("shares", "quota", "period", "burst", "realtime_runtime", "realtime_period", "idle"):
            if self.version("cpu", "cpu", "cpu") == 1:
                for field, file, value in (("period", "cpu.cfs_period_us", c.period),
                                           ("quota", "cpu.cfs_quota_us", c.quota),
                                           ("burst", "cpu.cfs_burst_us", c.burst),
                                           ("shares", "cpu.shares", c.shares),
                                           ("realtimePeriod", "cpu.rt_period_us", c.realtime_period),
                                           ("realtimeRuntime", "cpu.rt_runtime_us", c.realtime_runtime),
                                           ("idle", "cpu.idle", c.idle)):
                    if value is not None:
                        self.add("cpu." + field, 1, "cpu", file, str(value))
            else:
                self._cpu_v2(c)
        for field, value in (("cpus", c.cpus), ("mems", c.mems)):
            if value:
                ver = self.version("cpu." + field, "cpuset", "cpuset")
                self.add("cpu." + field, ver, "cpuset", "cpuset." + field, value)

    def _cpu_v2(self, c: Section) -> None:
        if c.realtime_runtime is not None or c.realtime_period is not None:
            key = "realtimeRuntime" if c.realtime_runtime is not None else "realtimePeriod"
            c.reader.fail("cgroup v2 has no realtime CPU bandwidth control", key)
        if c.shares is not None:
            self.add("cpu.shares", 2, "cpu", "cpu.weight", str(shares_to_weight(c.shares)))
        if c.quota is not None or c.period is not None:
            if c.quota is None and self.current:  # update of the period alone keeps the quota
                quota_text = (self.current("cpu", "cpu.max") or "max").split()[0]
            else:
                quota_text = _max(c.quota) if c.quota is not None else "max"
            self.add("cpu.quota", 2, "cpu", "cpu.max", quota_text + (f" {c.period}" if c.period else ""))
        if c.burst is not None:
            self.add("cpu.burst", 2, "cpu", "cpu.max.burst", str(c.burst))
        if c.idle is not None:
            self.add("cpu.idle", 2, "cpu", "cpu.idle", str(c.idle))

    # -- pids, block I/O, hugepages, rdma, network -----------------------------------------

    def pids(self, limit: int) -> None:
        """-1 is no limit; 0 is 1, as runc 1.5 (config and `update --pids-limit`): the init only."""
        self.add("pids.limit", self.version("pids", "pids", "pids"), "pids", "pids.max", _max(limit or 1))

    def block_io(self, b: Section) -> None:
        if b.weight is None and b.leaf_weight is None and not b.weight_devices and not b.throttles:
            return
        ver = self.version("blockIO", "blkio", "io")
        if ver == 1:
            prefix = "blkio.bfq." if os.path.exists(os.path.join(self.cg.v1["blkio"], "blkio.bfq.weight")) \
                else "blkio."
            if b.weight is not None:
                self.add("blockIO.weight", 1, "blkio", prefix + "weight", str(b.weight))
            if b.leaf_weight is not None:
                self.add("blockIO.leafWeight", 1, "blkio", "blkio.leaf_weight", str(b.leaf_weight))
        else:
            if b.weight is not None:
                self.add("blockIO.weight", 2, "io", "io.weight", f"default {blkio_to_io_weight(b.weight)}")
            if b.leaf_weight is not None:
                self.warn("blockIO.leafWeight", "cgroup v2 has no leaf weight")
        for i, dev, w, lw in b.weight_devices:
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
        from pyrt.limits import THROTTLES

        for key, dev, rate in b.throttles:
            v1_file, v2_key = THROTTLES[key]
            if ver == 1:
                self.add(f"blockIO.{key}", 1, "blkio", v1_file, f"{dev} {rate or 0}")
            else:
                self.add(f"blockIO.{key}", 2, "io", "io.max", f"{dev} {v2_key}={rate or 'max'}")

    def hugepages(self, limits: list[tuple[int, str, int]]) -> None:
        for i, size, limit in limits:
            ver = self.version(f"hugepageLimits[{i}]", "hugetlb", "hugetlb")
            self.add(f"hugepageLimits[{i}]", ver, "hugetlb",
                     f"hugetlb.{size}.limit_in_bytes" if ver == 1 else f"hugetlb.{size}.max", str(limit))

    def rdma(self, devices: list[tuple[str, int | None, int | None]]) -> None:
        for device, handles, objects in devices:
            parts = [f"{name}={v}" for name, v in (("hca_handle", handles), ("hca_object", objects)) if v is not None]
            if parts:
                self.add(f"rdma.{device}", self.version(f"rdma.{device}", "rdma", "rdma"), "rdma", "rdma.max",
                         f"{device} {' '.join(parts)}")

    def network(self, n: Section) -> None:
        if n.class_id is not None:
            self.version("network.classID", "net_cls", None)
            self.add("network.classID", 1, "net_cls", "net_cls.classid", str(n.class_id))
        for i, name, prio in n.priorities:
            self.version(f"network.priorities[{i}]", "net_prio", None)
            self.add(f"network.priorities[{i}]", 1, "net_prio", "net_prio.ifpriomap", f"{name} {prio}")

    # -- unified, devices ------------------------------------------------------------------

    def unified(self, files: list[tuple[str, str]]) -> None:
        """Arbitrary cgroup2 files, each of a controller this host has on cgroup2."""
        for key, v in files:
            field = f"unified.{key}"
            controller = key.split(".", 1)[0]
            if controller in self.cg.v1:
                raise self.fail(field, f"invalid configuration: cannot use unified on cgroup v1 (runc's words: the "
                                f"{controller} controller is on a cgroup v1 hierarchy on this host; use the v1 fields "
                                "of linux.resources)")
            if key not in UNIFIED_CORE and controller not in self.cg.v2_controllers():
                raise self.fail(field, f"{controller} is not a cgroup v2 controller of this host")
            self.add(field, 2, controller, key, v)

    def devices(self, given: list, device_nodes) -> None:
        rules = [(False, "a", -1, -1, "rwm"), *given, *DEFAULT_RULES]
        # pyrt-init creates the linux.devices nodes inside the cgroup: it may mknod them
        rules += [(True, n.type, n.major, n.minor, "m") for n in device_nodes if n.type in ("b", "c")]
        ver = self.version("devices", "devices", "devices")
        if ver == 2:
            self.add("devices", 2, "devices", "", tuple(rules))
            return
        for allow, kind, major, minor, access in rules:
            rule = "a" if kind == "a" else f"{kind} {_star(major)}:{_star(minor)} {access}"
            self.add("devices", 1, "devices", "devices.allow" if allow else "devices.deny", rule)


def writes(res: Resources, cg, device_nodes=(), update: bool = False, current=None) -> list[Write]:
    """The writes that enforce `res` on `cg`'s host, in order. `update`: only what is given
    changes (no device rules unless given); `current(controller, file)` reads a value now in
    force (partial updates need it). Host-dependent errors (a controller this host lacks) are
    raised here, before anything is written."""
    from pyrt import log

    w = _Writer(res, cg, current)
    for section, handler in (("memory", w.memory), ("cpu", w.cpu), ("pids", w.pids), ("block_io", w.block_io),
                             ("hugepages", w.hugepages), ("rdma", w.rdma), ("network", w.network)):
        value = getattr(res, section)
        if value is not None:
            handler(value)
    if not update or res.devices is not None:
        w.devices(res.devices or [], device_nodes)
    if res.unified is not None:
        w.unified(res.unified)  # last: it overrides what the fields above set
    for warning in w.warnings:
        log.warning(warning)
    return w.writes


def apply(cg, writes: list[Write]) -> None:
    """Perform the writes. Every target file is checked first, so a limit this kernel lacks
    fails before anything is written."""
    targets = []
    for w in writes:
        if w.version == 2 and w.controller == "devices":
            targets.append(None)
            continue
        path = os.path.join(cg.controller_dir(w.controller) if w.version == 1 else cg.dir, w.file)
        if not os.path.exists(path):
            raise PyrtError(f"{w.where}: this host's {w.controller} controller has no {w.file}")
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
            raise PyrtError(f"{w.where}: write {w.value!r} to {path}: {os.strerror(e.errno).lower()}") from None


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
            raise PyrtError(f"{w.where}: load the device filter on {cg.dir}: {os.strerror(-prog).lower()}"
                            + (f" ({detail[-1]})" if detail else ""))
        try:
            rc = lib.pyrt_bpf_detach_others(fd, prog)
            if rc < 0:
                raise PyrtError(f"{w.where}: replace the device filter on {cg.dir}: {os.strerror(-rc).lower()}")
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
