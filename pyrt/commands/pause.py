"""`pyrt pause ID` / `pyrt resume ID`: freeze or thaw the container's cgroup (a joined one only
while it holds the container's processes alone)."""

from __future__ import annotations


def pause(g, opts: dict, args: list[str]) -> int:
    _freeze(g.root, args[0], True)
    return 0


def resume(g, opts: dict, args: list[str]) -> int:
    _freeze(g.root, args[0], False)
    return 0


def _freeze(root: str, container_id: str, frozen: bool) -> None:
    from pyrt.state import Container

    c = Container.load(root, container_id)
    try:
        c.status().require("pause" if frozen else "resume")
        c.cgroup().freeze(frozen)
    finally:
        c.close()
