"""`pyrt exec ID CMD`: start one more process in a container.

    state.json     the container's namespaces, cgroup, seccomp program, process defaults
    process.json   (or flags over the defaults) -> the gate (config.load_process)
    launch.exec_process: clone3 into the container's cgroup -> pyrt-init: setns(pidfd of the
    init, every namespace), fork into its pid namespace, rlimits, credentials, seccomp, chdir
    inside the root, execve

No Python enters the container: the joining stage is pyrt-init, non-dumpable, from a sealed
memfd; of pyrt's fds it holds only those its plan names, each closed once used (CVE-2016-9962).
The exit status is the process's own (128+N if killed by signal N); pyrt's own failures exit
255, as runc's do.
"""

from __future__ import annotations

from pyrt.errors import PyrtError


def main(g, opts: dict, args: list[str]) -> int:
    try:
        return _exec(g.root, args[0], args[1:], opts)
    except PyrtError as e:
        raise PyrtError(f"exec failed: {e}", 255) from None


def _require_controlling_terminal() -> None:
    """`exec --tty` without --detach relays the caller's terminal: as runc 1.5, a caller whose
    stdio is no terminal and who has no controlling terminal either fails (`exec failed: open
    /dev/tty: no such device or address`, 255)."""
    import os

    if any(os.isatty(fd) for fd in (0, 1, 2)):
        return
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC))
    except OSError as e:
        raise PyrtError(f"open /dev/tty: {os.strerror(e.errno).lower()}") from None


def _exec(root: str, container_id: str, argv: list[str], opts: dict) -> int:
    from pyrt.commands.common import tracer

    _check_flags(opts)
    trace = tracer(opts, f"exec {container_id}")
    if trace is None:
        return _exec_traced(root, container_id, argv, opts, None)
    try:
        return _exec_traced(root, container_id, argv, opts, trace)
    finally:
        trace.finish()


def _exec_traced(root: str, container_id: str, argv: list[str], opts: dict, trace) -> int:
    """exec, with --trace's tracer or None."""
    from pyrt import launch
    from pyrt.commands.common import timed
    from pyrt.state import Container

    relay = forward = init = None
    # held until the process is in the cgroup: no delete meanwhile
    c = timed(trace, "state", "read and lock the container's state.json", Container.load, root, container_id)
    try:
        c.status().require("exec --ignore-paused" if opts["ignore-paused"] else "exec")
        if c.record.process is None:
            raise PyrtError(f"container {container_id} was created by an older pyrt: recreate it to exec")
        proc = timed(trace, "process", "the process (the container's, with the flags, or --process) through the gate",
                     _process, opts, argv, c.record.process)
        detach, console_socket = opts["detach"], opts["console-socket"]
        if detach and proc.terminal and not console_socket:
            raise PyrtError("cannot allocate tty if pyrt will detach without setting console socket")
        if (not detach or not proc.terminal) and console_socket:
            raise PyrtError("cannot use console socket if pyrt will not detach or allocate tty")
        if not detach:
            from pyrt.forward import Forwarder

            forward = Forwarder()  # before the process exists: no signal to us is lost
            if proc.terminal:
                from pyrt.terminal import Relay

                _require_controlling_terminal()
                relay = Relay(3 + opts["preserve-fds"])
        init = launch.exec_process(c, proc, opts["preserve-fds"], console_socket, relay.child_fd if relay else -1,
                                   trace, _cgroup_subs(opts["cgroup"]), opts["pidfd-socket"])
        if trace is not None:
            trace.finish(" (to the process's execve)")
        if relay:
            relay.receive()
        if opts["pid-file"]:
            launch.write_pid_file(opts["pid-file"], init.pid)  # its errors are one-line PyrtErrors
    except BaseException:
        if init is not None:
            init.kill()
        if relay:
            relay.close()
        if forward:
            forward.restore()
        raise
    finally:
        c.close()
    if detach:
        init.close()  # the caller (conmon, the shim) is a subreaper: the process goes to it
        return 0
    try:
        forward.pidfd = init.pidfd
        init.close()
        return forward.wait_exit(init.pid, relay)
    finally:
        if relay:
            relay.close()
        forward.restore()


def _check_flags(opts: dict) -> None:
    from pyrt.commands.common import check_console_socket, check_preserve_fds

    if opts["process-label"]:
        raise PyrtError("--process-label: pyrt cannot apply SELinux labels")
    if opts["apparmor"]:
        raise PyrtError("--apparmor: pyrt cannot apply AppArmor profiles")
    _cgroup_subs(opts["cgroup"])
    check_preserve_fds(opts["preserve-fds"])
    check_console_socket(opts["console-socket"])
    check_console_socket(opts["pidfd-socket"], "pidfd socket")


def _cgroup_subs(values: list[str]) -> dict[str, str] | None:
    """exec --cgroup in runc's syntax (subcgroup.parse), or None."""
    if not values:
        return None
    from pyrt import subcgroup

    return subcgroup.parse(values)


def _process(opts: dict, argv: list[str], base: dict):
    """The process to start, through the gate: --process FILE as given (capabilities and
    rlimits default to the container's, as runc does), or the container's process (state.json
    keeps it as config.json has it) with the command line's changes."""
    from pyrt import config

    if opts["process"]:
        from pyrt import jsonio

        path = opts["process"]
        obj = jsonio.load_file(path)
        if isinstance(obj, dict):
            obj = dict(obj)
            if obj.get("capabilities") is None:
                obj["capabilities"] = base["capabilities"]
            if not obj.get("rlimits"):
                obj["rlimits"] = base["rlimits"]
        return config.load_process(obj, path)
    if not argv:
        raise PyrtError("process args cannot be empty")
    obj = dict(base, args=argv, terminal=opts["tty"], user=dict(base["user"]))
    obj.pop("consoleSize", None)  # the terminal's size is the one exec relays or sends
    if opts["cwd"]:
        if not opts["cwd"].startswith("/"):
            raise PyrtError(f'--cwd "{opts["cwd"]}": must be an absolute path')
        obj["cwd"] = opts["cwd"]
    env = dict(e.partition("=")[::2] for e in base["env"])
    for e in opts["env"]:
        if "=" not in e:
            raise PyrtError(f'--env "{e}": must be KEY=VALUE')
        key, _, value = e.partition("=")
        env[key] = value  # a later value wins, as in runc
    obj["env"] = [f"{k}={v}" for k, v in env.items()]
    if opts["user"]:
        obj["user"].update(_user(opts["user"]))
    if opts["additional-gids"]:
        obj["user"]["additionalGids"] = _gids(opts["additional-gids"])
    if opts["no-new-privs"]:
        obj["noNewPrivileges"] = True
    if opts["cap"]:
        caps = {k: list(v) for k, v in base["capabilities"].items()}
        for name in opts["cap"]:
            # ambient only where inheritable is set: the kernel raises nothing else (runc's rule)
            for kind in ("bounding", "effective", "permitted", *(("ambient",) if caps.get("inheritable") else ())):
                caps.setdefault(kind, []).append(name)
        obj["capabilities"] = caps
    return config.load_process(obj, "exec (the container's process and the flags)")


def _user(text: str) -> dict:
    """`--user UID[:GID]`, numbers only, as runc's exec takes it."""
    from pyrt.reader import MAX_ID

    ids = dict(zip(("uid", "gid"), text.split(":", 1), strict=False))
    for key, value in ids.items():
        if not (value.isascii() and value.isdigit()):
            raise PyrtError(f'--user "{text}": bad {key} "{value}": must be UID[:GID] (numbers)')
        if len(value) > 10 or int(value) > MAX_ID:
            raise PyrtError(f'--user "{text}": uids and gids must be in range 0-{MAX_ID}')
    return {k: int(v) for k, v in ids.items()}


def _gids(gids: list[int]) -> list[int]:
    from pyrt.config import NGROUPS_MAX
    from pyrt.reader import MAX_ID

    for g in gids:
        if not 0 <= g <= MAX_ID:
            raise PyrtError(f"--additional-gids {g}: uids and gids must be in range 0-{MAX_ID}")
    if len(gids) > NGROUPS_MAX:
        raise PyrtError(f"--additional-gids: {len(gids)} groups: the kernel takes at most {NGROUPS_MAX}")
    return gids
