"""`pyrt start ID`: let the container's init go on to execve (a byte into the exec fifo)."""

from __future__ import annotations

import os

from pyrt.errors import PyrtError


def main(g, opts: dict, args: list[str]) -> int:
    start(g.root, args[0])
    return 0


def start(root: str, container_id: str, init=None) -> None:
    """`run` passes its Init (it still holds the sync socket)."""
    from pyrt import hooks, protocol
    from pyrt.state import Container

    c = Container.load(root, container_id)
    try:
        c.status().require("start")
        try:
            fd = os.open(c.fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            raise PyrtError("cannot start a container that has stopped") from None  # init gone
        watch = hooks.watch_start(c)  # opened before the byte goes in (see hooks.after_start)
        try:
            os.write(fd, protocol.FIFO_START)
        except OSError:  # EPIPE: the init went between the open and the write
            raise PyrtError("cannot start a container that has stopped") from None
        finally:
            os.close(fd)
        os.unlink(c.fifo)
        hooks.after_start(c, watch, init)
    finally:
        c.close()
