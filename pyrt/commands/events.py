"""`pyrt events ID`: the container's stats (stats.py) every --interval, plus
`{"type":"oom","id":ID}` whenever the kernel's oom_kill count for its cgroup rises (polled every
100 ms), until the container stops; `events --stats ID` prints one stats object and exits."""

from __future__ import annotations

import sys
import time

from pyrt.errors import PyrtError

OOM_POLL = 0.1
#: Go's time.Duration is an int64 of nanoseconds: runc refuses longer intervals.
MAX_DURATION_NS = 2**63 - 1
_UNITS = {"ns": 1, "us": 1000, "µs": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def main(g, opts: dict, args: list[str]) -> int:
    from pyrt import jsonio, state, stats

    cid = args[0]
    c = state.Container.load(g.root, cid, lock=False)
    try:
        c.status().require("events")
        cg = c.cgroup()
    finally:
        c.close()

    def emit(event: dict) -> None:
        sys.stdout.write(jsonio.dumps(event) + "\n")
        sys.stdout.flush()

    if opts["stats"]:
        emit({"type": "stats", "id": cid, "data": stats.stats(cg)})
        return 0
    interval = parse_duration(opts["interval"])
    oom = stats.oom_kills(cg)
    due = time.monotonic()
    while c.init_alive():
        now = time.monotonic()
        if now >= due:
            emit({"type": "stats", "id": cid, "data": stats.stats(cg)})
            due = max(due + interval, now)
        count = stats.oom_kills(cg)
        if count > oom:
            emit({"type": "oom", "id": cid})
        oom = count
        time.sleep(max(0.0, min(OOM_POLL, due - time.monotonic())))
    return 0


def parse_duration(text: str) -> float:
    """A Go duration as runc's --interval takes it (5s, 100ms, 1m30s, 1.5s) -> seconds. Counted
    exactly in nanoseconds, like Go, and refused beyond Go's largest (about 292 years)."""
    rest, total = text.strip(), 0
    if not rest:
        raise PyrtError(f"events --interval: {text!r} is not a duration")
    while rest:
        i = 0
        while i < len(rest) and (rest[i].isdigit() or rest[i] == "."):
            i += 1
        j = i
        while j < len(rest) and not (rest[j].isdigit() or rest[j] == "."):
            j += 1
        whole, dot, frac = rest[:i].partition(".")
        unit = _UNITS.get(rest[i:j])
        if unit is None or not (whole or frac) or not (whole + frac).isascii() or not (whole + frac).isdigit() \
                or "." in frac:
            raise PyrtError(f"events --interval: {text!r} is not a duration (like 5s or 100ms)")
        frac = frac[:20]  # beyond a nanosecond of an hour: nothing
        if len(whole.lstrip("0")) > 20:  # more than any unit's worth of int64 nanoseconds (and than int() reads)
            total = MAX_DURATION_NS + 1
        else:
            total += int(whole or 0) * unit + (int(frac) * unit // 10 ** len(frac) if frac else 0)
        if total > MAX_DURATION_NS:
            raise PyrtError(f"events --interval: {text!r} is longer than the longest duration runc takes "
                            "(2562047h47m16.854775807s)")
        rest = rest[j:]
    if total <= 0:
        raise PyrtError("events --interval: must be positive")
    return total / 1e9
