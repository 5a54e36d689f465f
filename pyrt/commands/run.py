"""`pyrt run ID` (bundle from --bundle or the current directory), or `pyrt run BUNDLE_DIR`:
create + start, then in the foreground wait (forwarding signals, relaying a terminal) and
delete (unless --keep). Exits with the container's status (128+N if killed by signal N)."""

from __future__ import annotations

import os
import sys


def main(g, opts: dict, args: list[str]) -> int:
    from pyrt import config
    from pyrt.commands import common

    target, bundle, generated = args[0], opts["bundle"] or ".", False
    if not opts["bundle"] and os.path.isfile(os.path.join(target, "config.json")):
        bundle, generated = target, True
        target = f"{os.path.basename(os.path.abspath(target))}-{os.urandom(4).hex()}"
    options = common.create_options(opts, bundle)
    trace = options.trace = common.tracer(opts, f"run {target}")
    try:
        spec = common.timed(trace, "config", common.CONFIG, config.load, bundle,
                            common.overrides(opts, relay=not opts["detach"]))
        plan = common.timed(trace, "plan", common.PLAN, common.prepare, g.root, target, spec, options, g.rootless)
        code = run(g.root, target, options, spec, plan, opts["detach"], opts["keep"])
    finally:
        if trace is not None:
            trace.finish()  # if the container ran, at its execve already
    if generated and opts["detach"]:
        sys.stdout.write(target + "\n")  # the id pyrt chose: needed for kill and delete
    return code


def run(root: str, container_id: str, opts, spec, plan, detach: bool, keep: bool = False) -> int:
    """With `keep` (runc's --keep) the stopped container stays, for `state`, until `delete`."""
    from pyrt import launch
    from pyrt.commands import common
    from pyrt.commands.delete import delete
    from pyrt.commands.start import start

    relay = forward = None
    if not detach:
        import _prctl  # python-prctl's C module (its wrapper costs 2-3 ms to import)

        from pyrt.forward import Forwarder

        _prctl.prctl(_prctl.PR_SET_CHILD_SUBREAPER, 1)  # processes the container leaves come to us
        if not opts.console_socket and spec.process.terminal:
            from pyrt.terminal import Relay

            relay = Relay(3 + opts.preserve_fds)
        forward = Forwarder()
    try:
        init = launch.create(root, container_id, spec, plan, opts, console_fd=relay.child_fd if relay else -1)
    except BaseException:
        if relay:
            relay.close()
        if forward:
            forward.restore()
        raise
    try:
        if relay:
            relay.receive()
        common.timed(opts.trace, "start", "write into the exec fifo; wait for pyrt-init's execve (its socket closes)",
                     start, root, container_id, init)
        if opts.trace is not None:
            opts.trace.finish(" (to the container's execve)")
        if detach:
            init.close()
            return 0
        forward.pidfd = init.pidfd
        init.wait(b"")  # the execve happened (or failed: raises)
        init.close()
        status = forward.wait_exit(init.pid, relay)
    except BaseException:
        if not detach and not keep:
            delete(root, container_id, force=True)
        raise
    finally:
        if relay:
            relay.close()
        if forward:
            forward.restore()
    if not keep:
        delete(root, container_id, force=True)
    return status
