"""A container's resource usage as runc's stats JSON (libcontainer's types), read from its
cgroup files (v2, or the v1 hierarchies of a hybrid host), and its OOM kill count: what
`pyrt events` reports."""

from __future__ import annotations

import os

#: What runc reports for "no limit" (Go's math.MaxUint64).
UNLIMITED = 2**64 - 1


# ----------------------------------------------------------------------------- reading files


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode()
    except OSError:
        return None


def _int(path: str) -> int | None:
    text = _read(path)
    if text is None:
        return None
    text = text.strip()
    return UNLIMITED if text == "max" else int(text)


def _keyed(path: str) -> dict[str, int]:
    """A flat keyed file (memory.stat, cpu.stat, memory.events): {key: value}."""
    out = {}
    for line in (_read(path) or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def _entry(**values: int | None) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def oom_kills(cg) -> int:
    """How many processes the OOM killer took from the cgroup (and its children)."""
    if "memory" in cg.v1:
        return _keyed(os.path.join(cg.controller_dir("memory"), "memory.oom_control")).get("oom_kill", 0)
    return _keyed(os.path.join(cg.dir, "memory.events")).get("oom_kill", 0)


# ----------------------------------------------------------------------------- stats


def stats(cg) -> dict:
    """runc's stats object (libcontainer's types) from the files of the container's cgroup."""
    return {"cpu": _cpu(cg), "memory": _memory(cg), "pids": _pids(cg), "blkio": _blkio(cg), "hugetlb": _hugetlb(cg)}


def _cpu(cg) -> dict:
    usage: dict = {}
    if "cpuacct" in cg.v1:
        d = cg.controller_dir("cpuacct")
        tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
        ticks = _keyed(os.path.join(d, "cpuacct.stat"))
        usage = _entry(total=_int(os.path.join(d, "cpuacct.usage")),
                       kernel=ticks.get("system", 0) * tick, user=ticks.get("user", 0) * tick)
        for key, name in (("percpu", "cpuacct.usage_percpu"), ("percpu_kernel", "cpuacct.usage_percpu_sys"),
                          ("percpu_user", "cpuacct.usage_percpu_user")):
            text = _read(os.path.join(d, name))
            if text is not None:
                usage[key] = [int(x) for x in text.split()]
    else:
        st = _keyed(os.path.join(cg.dir, "cpu.stat"))
        if st:
            usage = {"total": st.get("usage_usec", 0) * 1000, "kernel": st.get("system_usec", 0) * 1000,
                     "user": st.get("user_usec", 0) * 1000}
    if "cpu" in cg.v1:
        st = _keyed(os.path.join(cg.controller_dir("cpu"), "cpu.stat"))
        throttled = st.get("throttled_time", 0)
    else:
        st = _keyed(os.path.join(cg.dir, "cpu.stat"))
        throttled = st.get("throttled_usec", 0) * 1000
    throttling = {"periods": st.get("nr_periods", 0), "throttledPeriods": st.get("nr_throttled", 0),
                  "throttledTime": throttled} if "nr_periods" in st else {}
    return {"usage": usage, "throttling": throttling}


def _memory(cg) -> dict:
    if "memory" in cg.v1:
        d = cg.controller_dir("memory")

        def entry(prefix: str) -> dict:
            p = os.path.join(d, prefix)
            return _entry(limit=_int(p + "limit_in_bytes"), usage=_int(p + "usage_in_bytes"),
                          max=_int(p + "max_usage_in_bytes"), failcnt=_int(p + "failcnt"))

        raw = _keyed(os.path.join(d, "memory.stat"))
        out = {"cache": raw.get("cache", 0), "usage": entry("memory."), "swap": entry("memory.memsw."),
               "kernel": entry("memory.kmem."), "kernelTCP": entry("memory.kmem.tcp."), "raw": raw}
        return {k: v for k, v in out.items() if v != {}}
    d = cg.dir
    if not os.path.exists(os.path.join(d, "memory.current")):
        return {}
    raw = _keyed(os.path.join(d, "memory.stat"))
    events = _keyed(os.path.join(d, "memory.events"))
    out = {"cache": raw.get("file", 0),
           "usage": _entry(limit=_int(os.path.join(d, "memory.max")), usage=_int(os.path.join(d, "memory.current")),
                           max=_int(os.path.join(d, "memory.peak")), failcnt=events.get("max", 0)),
           "swap": _entry(limit=_int(os.path.join(d, "memory.swap.max")),
                          usage=_int(os.path.join(d, "memory.swap.current")),
                          max=_int(os.path.join(d, "memory.swap.peak")), failcnt=0),
           "raw": raw}
    return out


def _pids(cg) -> dict:
    d = cg.controller_dir("pids") if "pids" in cg.v1 else cg.dir
    limit = _int(os.path.join(d, "pids.max"))
    return _entry(current=_int(os.path.join(d, "pids.current")), limit=0 if limit == UNLIMITED else limit)


def _blkio(cg) -> dict:
    out: dict = {}
    if "blkio" in cg.v1:
        d = cg.controller_dir("blkio")
        for key, name in (("ioServiceBytesRecursive", "blkio.throttle.io_service_bytes_recursive"),
                          ("ioServicedRecursive", "blkio.throttle.io_serviced_recursive")):
            entries = []
            for line in (_read(os.path.join(d, name)) or "").splitlines():
                fields = line.split()
                if len(fields) == 3 and ":" in fields[0]:
                    major, minor = fields[0].split(":")
                    entries.append({"major": int(major), "minor": int(minor), "op": fields[1],
                                    "value": int(fields[2])})
            if entries:
                out[key] = entries
        return out
    for line in (_read(os.path.join(cg.dir, "io.stat")) or "").splitlines():
        dev, *pairs = line.split()
        major, minor = (int(x) for x in dev.split(":"))
        values = dict(p.split("=", 1) for p in pairs)
        for key, read, write in (("ioServiceBytesRecursive", "rbytes", "wbytes"),
                                 ("ioServicedRecursive", "rios", "wios")):
            for op, name in (("Read", read), ("Write", write)):
                if name in values:
                    out.setdefault(key, []).append({"major": major, "minor": minor, "op": op,
                                                    "value": int(values[name])})
    return out


def _hugetlb(cg) -> dict:
    v1 = "hugetlb" in cg.v1
    d = cg.controller_dir("hugetlb") if v1 else cg.dir
    try:
        names = os.listdir(d)
    except OSError:
        return {}
    out = {}
    for size in sorted({n.split(".")[1] for n in names if n.startswith("hugetlb.") and n.count(".") >= 2}):
        p = os.path.join(d, f"hugetlb.{size}.")
        if v1:
            out[size] = _entry(usage=_int(p + "usage_in_bytes"), max=_int(p + "max_usage_in_bytes"),
                               failcnt=_int(p + "failcnt"))
        else:
            out[size] = _entry(usage=_int(p + "current"), max=_int(p + "max"),
                               failcnt=_keyed(p + "events").get("max", 0))
    return out
