"""`pyrt list`: the containers under --root, as runc's table or JSON (or their ids, -q)."""

from __future__ import annotations

import os
import sys

from pyrt.errors import PyrtError


def main(g, opts: dict, args: list[str]) -> int:
    from pyrt import jsonio, state

    try:  # a missing root fails, as in runc 1.5 (runc 1.1 printed an empty table)
        os.close(os.open(g.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
    except OSError as e:
        raise PyrtError(f"open {g.root}: {os.strerror(e.errno).lower()}") from None
    rows = []
    for cid in state.list_ids(g.root):
        try:
            c = state.Container.load(g.root, cid, lock=False)
        except PyrtError:
            continue  # being created or deleted right now
        try:
            rows.append(c.oci_state(owner=_owner(c.dir_fd)))
        finally:
            c.close()
    if opts["quiet"]:
        sys.stdout.write("".join(r["id"] + "\n" for r in rows))
    elif opts["format"] == "json":
        sys.stdout.write(jsonio.dumps(rows) + "\n")
    elif opts["format"] == "table":
        table = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        table += [(r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], r["owner"]) for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(5)]
        for row in table:
            cells = [cell.ljust(max(w + 2, 12)) for cell, w in zip(row, widths, strict=False)]
            sys.stdout.write("".join(cells) + row[5] + "\n")
    else:
        raise PyrtError(f'invalid format option "{opts["format"]}": use table or json')
    return 0


def _owner(dir_fd: int) -> str:
    import pwd

    uid = os.fstat(dir_fd).st_uid  # the open directory: a concurrent delete cannot make it vanish
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"
