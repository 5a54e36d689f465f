"""`pyrt kill ID [SIGNAL]`: pidfd_send_signal to the container's init, or with --all to every
process of the container (cgroup.kill where its whole cgroup is its own). As runc 1.5: signal 0
only checks that the init lives; SIGKILL of a container without a pid namespace of its own goes
to all its processes (killing an init kills the rest of its pid namespace only when it has one)."""

from __future__ import annotations

import _signal as signal  # the C module: `signal` only adds enums, ~5 ms of imports
import os

from pyrt.errors import PyrtError

SIGNALS = {name: int(getattr(signal, name)) for name in dir(signal)
           if name.startswith("SIG") and not name.startswith("SIG_") and isinstance(getattr(signal, name), int)}


def main(g, opts: dict, args: list[str]) -> int:
    kill(g.root, args[0], parse_signal(args[1] if len(args) > 1 else "SIGTERM"), opts["all"])
    return 0


def parse_signal(text: str) -> int:
    """A signal by name (KILL, SIGKILL) or number, as runc's kill accepts it (0, as kill(2):
    only whether the process is there)."""
    if text.isdigit():
        sig = int(text)
        if 0 <= sig < signal.NSIG:
            return sig
    else:
        name = text.upper()
        sig = SIGNALS.get(name if name.startswith("SIG") else "SIG" + name)
        if sig is not None:
            return sig
    raise PyrtError(f"unknown signal {text!r}")


def kill(root: str, container_id: str, sig: int, all_processes: bool = False) -> None:
    from pyrt.state import Container

    c = Container.load(root, container_id)
    try:
        if all_processes:  # as runc 1.1: also once the init is gone (what it left in the cgroup)
            c.cgroup().kill(sig)
            return
        c.status().require("kill")
        if sig == signal.SIGKILL and "pid" not in c.record.namespaces:
            c.cgroup().kill(sig)
            return
        try:
            pidfd = os.pidfd_open(c.record.pid)
        except ProcessLookupError:
            raise PyrtError("container not running") from None
        try:
            if not c.init_alive():  # the pid was recycled between status() and pidfd_open
                raise PyrtError("container not running")
            signal.pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            raise PyrtError("container not running") from None
        finally:
            os.close(pidfd)
    finally:
        c.close()
