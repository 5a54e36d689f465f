"""The container's process: the last steps before execve, shared by `create` and `exec`."""

from __future__ import annotations

from pyrt import capabilities
from pyrt.plan import Step
from pyrt.spec import Process

RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}
RLIM_INFINITY = (1 << 64) - 1


def env_value(env: list[str], key: str) -> str | None:
    for e in reversed(env):
        k, _, v = e.partition("=")
        if k == key:
            return v
    return None


def rlimit_steps(proc: Process) -> list[Step]:
    steps = []
    for kind, soft, hard in proc.rlimits:  # soft <= hard: checked at the gate
        steps.append(Step("rlimit", RLIMITS[kind], soft, hard))
    return steps


def prepare_steps(proc: Process, container_id: str, no_new_keyring: bool) -> list[Step]:
    """What can still fail before the process is released (so `create` and `exec` report it):
    rlimits, a session keyring, HOME, and finding args[0]."""
    steps = rlimit_steps(proc)
    if not no_new_keyring:
        steps.append(Step("session-keyring", f"_ses.{container_id}"))
    if env_value(proc.env, "HOME") is None:
        steps.append(Step("home", proc.uid))  # as runc: from the container's /etc/passwd
    steps.append(resolve_step(proc))
    return steps


def resolve_step(proc: Process) -> Step:
    """Find args[0] in the container, relative names in the cwd (as runc, after its chdir).
    Without PATH in env, runc's lookup finds nothing."""
    return Step("resolve-exec", proc.args[0], env_value(proc.env, "PATH") or "", proc.cwd)


def final_steps(proc: Process, preserve_fds: int, seccomp: Step | None = None) -> list[Step]:
    """From the container's credentials to execve. With noNewPrivileges the seccomp filter is
    loaded last, just before execve; without it, it must be loaded while we still hold
    CAP_SYS_ADMIN (as runc)."""
    caps = {k: capabilities.mask(proc.capabilities.get(k, [])) for k in capabilities.SETS}
    raisable = caps["ambient"] & caps["permitted"] & caps["inheritable"]
    if raisable != caps["ambient"]:
        # The kernel raises an ambient capability only if it is permitted and inheritable;
        # runc warns and goes on, and so do we (configs from `runc spec` rely on it).
        from pyrt import log

        log.debug("ambient capabilities that are not also inheritable and permitted are not raised")
        caps["ambient"] = raisable
    steps = [Step("chown-stdio", proc.uid)] if proc.uid else []  # runc: the user may reopen /dev/stdout
    if seccomp and not proc.no_new_privileges:
        steps.append(seccomp)
    steps += [
        Step("cap-bounding", f"{caps['bounding']:x}"),
        Step("user", proc.uid, proc.gid, ",".join(map(str, proc.additional_gids))),
        Step("caps", f"{caps['effective']:x}", f"{caps['permitted']:x}", f"{caps['inheritable']:x}",
             f"{caps['ambient']:x}"),
    ]
    if proc.no_new_privileges:
        steps.append(Step("no-new-privileges"))
    env = list(proc.env)
    if preserve_fds:
        env.append(f"LISTEN_FDS={preserve_fds}")
    steps += [
        Step("chdir", proc.cwd),
        Step("close-fds", 3 + preserve_fds),
        Step("umask", f"0{0o022 if proc.umask is None else proc.umask:03o}"),
    ]
    if seccomp and proc.no_new_privileges:  # right before execve: the profile need not allow init's own calls
        steps.append(seccomp)
    steps.append(Step("exec", int(bool(preserve_fds)), len(env), *env, *proc.args))
    return steps
