"""`pyrt update ID`: runc's update: new limits from flags, or a LinuxResources JSON
(--resources FILE|-), checked at the gate (limits.py), turned into this host's cgroup files
(cgwrites.py) and written, on the container's own cgroup only."""

from __future__ import annotations

import os

from pyrt.errors import PyrtError

#: update flag -> (resources section, field, parser)
FLAGS = {
    "memory": ("memory", "limit", "bytes"), "memory-reservation": ("memory", "reservation", "bytes"),
    "memory-swap": ("memory", "swap", "bytes"), "kernel-memory": ("memory", "kernel", "bytes"),
    "kernel-memory-tcp": ("memory", "kernelTCP", "bytes"),
    "cpu-period": ("cpu", "period", "int"), "cpu-quota": ("cpu", "quota", "int"), "cpu-burst": ("cpu", "burst", "int"),
    "cpu-share": ("cpu", "shares", "int"), "cpu-shares": ("cpu", "shares", "int"),
    "cpu-rt-period": ("cpu", "realtimePeriod", "int"), "cpu-rt-runtime": ("cpu", "realtimeRuntime", "int"),
    "cpu-idle": ("cpu", "idle", "int"), "cpuset-cpus": ("cpu", "cpus", "str"), "cpuset-mems": ("cpu", "mems", "str"),
    "pids-limit": ("pids", "limit", "int"), "blkio-weight": ("blockIO", "weight", "int"),
}
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def main(g, opts: dict, args: list[str]) -> int:
    from pyrt import cgwrites, limits
    from pyrt.state import Container

    c = Container.load(g.root, args[0])
    try:
        c.status().require("update")
        if opts["resources"]:
            res = limits.parse(_read_resources(opts["resources"]), "update", "resources")
        else:
            res = limits.parse(_from_flags(opts), "", "update")
        cg = c.cgroup()

        def current(controller: str, file: str) -> str | None:
            try:
                with open(os.path.join(cg.controller_dir(controller), file), "rb") as f:
                    return f.read().decode().strip()
            except OSError:
                return None

        writes = cgwrites.writes(res, cg, update=True, current=current)
        cg.check_alone("update")  # a limit on a joined cgroup reaches all its subtree
        cgwrites.apply(cg, writes)
    finally:
        c.close()
    return 0


def _read_resources(path: str) -> dict:
    """The LinuxResources JSON of `--resources FILE|-`: a regular file or stdin, at most
    jsonio.MAX_SIZE, no NUL byte in any string."""
    from pyrt import jsonio
    from pyrt.reader import check_tree

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
    check_tree(value, name)
    return value


def _from_flags(opts: dict) -> dict:
    for flag in ("l3-cache-schema", "mem-bw-schema"):
        if opts.get(flag):
            raise PyrtError(f"update --{flag}: Intel RDT is not supported by pyrt")
    resources: dict = {}
    for flag, (section, field, kind) in FLAGS.items():
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
