"""`pyrt events`: a container's resource usage (runc's stats JSON) and OOM notifications.

`events --stats ID` prints one `{"type":"stats","id":ID,"data":{...}}` object read from the
container's cgroup files (v2, or the v1 hierarchies of a hybrid host); `events ID` streams one
every --interval, plus `{"type":"oom","id":ID}` whenever the kernel's oom_kill count for the
cgroup rises (polled every 100 ms), until the container stops.
"""

from __future__ import annotations

import os
import sys
import time

from pyrt.errors import PyrtError

#: What runc reports for "no limit" (Go's math.MaxUint64).
UNLIMITED = 2**64 - 1
OOM_POLL = 0.1


def main(g, opts: dict, args: list[str]) -> int:
    from pyrt import jsonio, state

    cid = args[0]
    c = state.Container.load(g.root, cid, lock=False)
    try:
        if c.status() == "stopped":
            raise PyrtError(f"container with id {cid} is not running")
        cg = c.cgroup()
    finally:
        c.close()

    def emit(event: dict) -> None:
        sys.stdout.write(jsonio.dumps(event) + "\n")
        sys.stdout.flush()

    if opts["stats"]:
        emit({"type": "stats", "id": cid, "data": stats(cg)})
        return 0
    interval = parse_duration(opts["interval"])
    oom = oom_kills(cg)
    due = time.monotonic()
    while c.init_alive():
        now = time.monotonic()
        if now >= due:
            emit({"type": "stats", "id": cid, "data": stats(cg)})
            due = max(due + interval, now)
        count = oom_kills(cg)
        if count > oom:
            emit({"type": "oom", "id": cid})
        oom = count
        time.sleep(max(0.0, min(OOM_POLL, due - time.monotonic())))
    return 0


_UNITS = (("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0))


def parse_duration(text: str) -> float:
    """A Go duration as runc's --interval takes it (5s, 100ms, 1m30s, 1.5s) -> seconds."""
    rest, total = text.strip(), 0.0
    if not rest:
        raise PyrtError(f"events --interval: {text!r} is not a duration")
    while rest:
        i = 0
        while i < len(rest) and (rest[i].isdigit() or rest[i] == "."):
            i += 1
        j = i
        while j < len(rest) and not (rest[j].isdigit() or rest[j] == "."):
            j += 1
        unit = dict(_UNITS).get(rest[i:j])
        try:
            if unit is None:
                raise ValueError
            total += float(rest[:i]) * unit
        except ValueError:
            raise PyrtError(f"events --interval: {text!r} is not a duration (like 5s or 100ms)") from None
        rest = rest[j:]
    if total <= 0:
        raise PyrtError("events --interval: must be positive")
    return total


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
