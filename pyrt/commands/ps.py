"""`pyrt ps ID`: runc's ps. JSON: an array of host pids; table: the host's `ps` (-ef, or the
options given) filtered to the container's processes."""

from __future__ import annotations

import sys

from pyrt.errors import PyrtError


def main(g, opts: dict, args: list[str]) -> int:
    import subprocess

    from pyrt import jsonio
    from pyrt.state import Container

    fmt, ps_args = opts["format"], args[1:]
    c = Container.load(g.root, args[0], lock=False)
    try:
        pids = c.cgroup().processes()  # none once stopped (or what the init left), not an error: as runc
    finally:
        c.close()
    if fmt == "json":
        sys.stdout.write(jsonio.dumps(pids) + "\n")
        return 0
    if fmt != "table":
        raise PyrtError(f'invalid format option "{fmt}": use table or json')
    try:
        out = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise PyrtError(f"ps: {e}") from None
    lines = out.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        raise PyrtError("ps: the output has no PID column")
    col = header.index("PID")
    wanted = set(pids)
    sys.stdout.write(lines[0] + "\n")
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            sys.stdout.write(line + "\n")
    return 0
