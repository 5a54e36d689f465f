"""`pyrt exec`: start one more process in a container.

    state.json     the container's namespaces, cgroup, seccomp program, process defaults
    process.json   (or flags over the defaults) -> Process -> planner.for_exec
    clone3 into the container's cgroup -> pyrt-init: setns(pidfd of the init, every namespace),
    fork into its pid namespace, rlimits, credentials, seccomp, chdir inside the root, execve

No Python enters the container: the joining stage is pyrt-init, non-dumpable, from a sealed
memfd; of pyrt's fds it holds only those its plan names, each closed once used (CVE-2016-9962).
The exit status is the process's own (128+N if killed by signal N); pyrt's own failures exit
255, as runc's do.
"""

from __future__ import annotations

import os

from pyrt.errors import PyrtError
from pyrt.spec import Process, Spec

TYPE_CHECKING = False  # `typing` costs an import on the start path; type checkers know the name
if TYPE_CHECKING:
    from pyrt.cli import Globals


def defaults(spec: Spec, no_new_keyring: bool) -> dict:
    """What exec needs from the container, kept in its state record at create: an exec must
    not re-read a bundle that may have changed since."""
    proc = spec.process
    user: dict = {"uid": proc.uid, "gid": proc.gid, "additionalGids": proc.additional_gids}
    if proc.umask is not None:
        user["umask"] = proc.umask
    process = {
        "args": proc.args, "env": proc.env, "cwd": proc.cwd, "user": user, "capabilities": proc.capabilities,
        "rlimits": [{"type": kind, "soft": soft, "hard": hard} for kind, soft, hard in proc.rlimits],
        "noNewPrivileges": proc.no_new_privileges,
    }
    if proc.oom_score_adj is not None:
        process["oomScoreAdj"] = proc.oom_score_adj
    process.update(proc.sched_json)  # as runc: an exec'd process is scheduled as the container's
    return {"namespaces": sorted(spec.namespaces), "process": process, "noNewKeyring": no_new_keyring,
            "personality": spec.personality, "memoryPolicy": spec.memory_policy}


def main(g: Globals, opts: dict, args: list[str]) -> int:
    try:
        return _exec(g.root, args[0], args[1:], opts)
    except PyrtError as e:
        raise PyrtError(f"exec failed: {e}", 255) from None


def _exec(root: str, container_id: str, argv: list[str], opts: dict) -> int:
    from pyrt.state import Container

    _check_flags(opts)
    relay = forward = init = None
    c = Container.load(root, container_id)  # held until the process runs: no delete meanwhile
    try:
        status = c.status()
        if status == "stopped":
            raise PyrtError("cannot exec in a stopped container")
        if status == "paused" and not opts["ignore-paused"]:
            raise PyrtError("cannot exec in a paused container (use --ignore-paused to override)")
        if "exec" not in c.record:
            raise PyrtError(f"container {container_id} was created by an older pyrt: recreate it to exec")
        proc = _process(opts, argv, c.record["exec"]["process"])
        detach, console_socket = opts["detach"], opts["console-socket"]
        if detach and proc.terminal and not console_socket:
            raise PyrtError("cannot allocate tty if pyrt will detach without setting console socket")
        if (not detach or not proc.terminal) and console_socket:
            raise PyrtError("cannot use console socket if pyrt will not detach or allocate tty")
        if not detach:
            from pyrt.container import _Forwarder

            forward = _Forwarder()  # before the process exists: no signal to us is lost
            if proc.terminal:
                from pyrt.terminal import Relay

                relay = Relay(3 + opts["preserve-fds"])
        init = _spawn(c, proc, opts, relay.child_fd if relay else -1)
        if relay:
            relay.receive()
        if opts["pid-file"]:
            from pyrt.container import _write_pid_file

            _write_pid_file(opts["pid-file"], init.pid)  # its errors are one-line PyrtErrors
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
    if opts["process-label"]:
        raise PyrtError("--process-label: pyrt cannot apply SELinux labels")
    if opts["apparmor"]:
        raise PyrtError("--apparmor: pyrt cannot apply AppArmor profiles")
    if opts["cgroup"]:
        raise PyrtError("--cgroup: pyrt runs exec'd processes in the container's own cgroup only")
    from pyrt.cli import check_console_socket, check_preserve_fds

    check_preserve_fds(opts["preserve-fds"])
    check_console_socket(opts["console-socket"])


def _process(opts: dict, argv: list[str], base: dict) -> Process:
    """The process to start: --process FILE as given (capabilities and rlimits default to the
    container's, as runc does), or the container's process with the command line's changes."""
    from pyrt.spec import load_process

    if opts["process"]:
        path = opts["process"]
        from pyrt import jsonio

        obj = jsonio.load_file(path)
        if isinstance(obj, dict):
            obj = dict(obj)
            if obj.get("capabilities") is None:
                obj["capabilities"] = base["capabilities"]
            if not obj.get("rlimits"):
                obj["rlimits"] = base["rlimits"]
        return load_process(obj, path)
    if not argv:
        raise PyrtError("process args cannot be empty")
    obj = dict(base, args=argv, terminal=opts["tty"], user=dict(base["user"]))
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
    return load_process(obj, "exec (the container's process and the flags)")


def _user(text: str) -> dict:
    """`--user UID[:GID]`, numbers only, as runc's exec takes it."""
    from pyrt.spec import MAX_ID

    ids = dict(zip(("uid", "gid"), text.split(":", 1), strict=False))
    for key, value in ids.items():
        if not (value.isascii() and value.isdigit()):
            raise PyrtError(f'--user "{text}": bad {key} "{value}": must be UID[:GID] (numbers)')
        if len(value) > 10 or int(value) > MAX_ID:
            raise PyrtError(f'--user "{text}": uids and gids must be in range 0-{MAX_ID}')
    return {k: int(v) for k, v in ids.items()}


def _gids(gids: list[int]) -> list[int]:
    from pyrt.spec import MAX_ID, NGROUPS_MAX

    for g in gids:
        if not 0 <= g <= MAX_ID:
            raise PyrtError(f"--additional-gids {g}: uids and gids must be in range 0-{MAX_ID}")
    if len(gids) > NGROUPS_MAX:
        raise PyrtError(f"--additional-gids: {len(gids)} groups: the kernel takes at most {NGROUPS_MAX}")
    return gids


def _spawn(c, proc: Process, opts: dict, console_fd: int):
    """Start pyrt-init in the container's cgroup on the exec plan; return once the process has
    exec'd (the Init, our child: with a pid namespace, the intermediate reported its pid)."""
    from pyrt import log, planner
    from pyrt.cgroups import Cgroup
    from pyrt.host import HostLayout
    from pyrt.spawn import Init, above

    record, floor = c.record, 3 + opts["preserve-fds"]
    opened: dict[str, int] = {}  # the plan's fd slots (and the cgroup's directory), opened here
    init = None
    try:
        try:
            opened["pidfd"] = above(os.pidfd_open(record["pid"]), floor)
        except ProcessLookupError:
            raise PyrtError("cannot exec in a stopped container") from None
        if not c.init_alive():  # the pid was recycled since status()
            raise PyrtError("cannot exec in a stopped container")
        if opts["console-socket"]:
            from pyrt.container import _connect

            opened["console"] = above(_connect(opts["console-socket"]), floor)
        seccomp = None
        if "seccomp_flags" in record:
            from pyrt import seccomp as seccomp_mod

            seccomp = seccomp_mod.for_exec(c.dir_fd, record)
            if seccomp:
                opened["seccomp"] = above(seccomp[0], floor)
        cg = Cgroup.from_state(record["cgroup"])
        try:
            cgroup_fd = cg.open_dir()
        except FileNotFoundError:
            raise PyrtError("cannot exec in a stopped container (its cgroup is gone)") from None
        opened["cgroup"] = cgroup_fd  # not a slot of the plan: pyrt-init does not get it
        opened.update((slot, above(fd, floor)) for slot, fd in cg.open_v1_tasks().items())  # pyrt-init joins them
        fds = dict(opened, console=console_fd) if console_fd >= 0 and proc.terminal else opened
        saved = record["exec"]
        plan_opts = planner.Options(c.id, opts["preserve-fds"], no_new_keyring=saved["noNewKeyring"],
                                    trace=log.debugging(), seccomp=seccomp[1] if seccomp else None,
                                    console="console" in fds)
        plan = planner.for_exec(proc, HostLayout(cg.root, cg.v1), saved["namespaces"], plan_opts,
                                saved.get("personality"), saved.get("memoryPolicy"))
        init = Init.spawn(plan, fds, 0, cgroup_fd, floor, cg.dir)
        for fd in opened.values():
            os.close(fd)
        opened = {}
        init.go()
        init.wait(b"")  # end-of-file: the execve happened (an error raises)
        return init
    except BaseException:
        for fd in opened.values():
            os.close(fd)
        if init is not None:
            init.kill()
        raise
