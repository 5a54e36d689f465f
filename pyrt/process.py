"""The container's process: the last steps before execve, shared by `create` and `exec`.

    prepare_steps  rlimits, session keyring, HOME, finding args[0]
    become_steps   credentials, capabilities, seccomp (privileged load), cwd, fds, umask: what
                   can fail is done before `create` reports ready, as runc does, so a bad
                   capability set fails `create`, not a container nobody watches any more
    exec_steps     seccomp (with noNewPrivileges: right before execve; `create` loads it before
                   the exec fifo instead, as runc), execve
"""

from __future__ import annotations

from pyrt import capabilities
from pyrt.kernel import RLIMITS
from pyrt.spec import Process
from pyrt.steps import Step


def env_value(env: list[str], key: str) -> str | None:
    for e in reversed(env):
        k, _, v = e.partition("=")
        if k == key:
            return v
    return None


def dedup_env(env: list[str]) -> list[str]:
    """One entry per key, the last one given, in the order of the last ones (as runc and Go's
    os/exec): `A=1 B=2 A=3` -> `B=2 A=3`."""
    last = {e.partition("=")[0]: i for i, e in enumerate(env)}
    return [e for i, e in enumerate(env) if last[e.partition("=")[0]] == i]


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
    if not env_value(proc.env, "HOME"):
        steps.append(Step("home", proc.uid))  # as runc: from the container's /etc/passwd (also for HOME=)
    steps.append(resolve_step(proc))
    return steps


def resolve_step(proc: Process) -> Step:
    """Find args[0] in the container, relative names in the cwd (as runc, after its chdir).
    Without PATH in env, runc's lookup finds nothing."""
    return Step("resolve-exec", proc.args[0], env_value(proc.env, "PATH") or "", proc.cwd)


def become_steps(proc: Process, preserve_fds: int, seccomp: Step | None = None) -> list[Step]:
    """From the container's credentials to its cwd. Without noNewPrivileges the seccomp filter
    must be loaded here, while we still hold CAP_SYS_ADMIN (as runc); with it, see exec_steps."""
    caps = {k: capabilities.mask(proc.capabilities.get(k, [])) for k in capabilities.SETS}
    raisable = caps["ambient"] & caps["permitted"] & caps["inheritable"]
    if raisable != caps["ambient"]:
        # The kernel raises an ambient capability only if it is permitted and inheritable;
        # runc warns and goes on, and so do we (configs from `runc spec` rely on it).
        from pyrt import log

        log.debug("ambient capabilities that are not also inheritable and permitted are not raised")
        caps["ambient"] = raisable
    steps = [Step("chown-stdio", proc.uid)] if proc.uid else []  # runc: the user may reopen /dev/stdout
    steps.append(Step("chdir", proc.cwd, True))  # as runc: a cwd only root can enter works for any user
    if seccomp and not proc.no_new_privileges:
        steps.append(seccomp)
    steps += [
        Step("cap-bounding", caps["bounding"]),
        Step("user", proc.uid, proc.gid, list(proc.additional_gids)),
        Step("caps", caps["effective"], caps["permitted"], caps["inheritable"], caps["ambient"]),
    ]
    if proc.no_new_privileges:
        steps.append(Step("no-new-privileges"))
    return steps + [
        Step("chdir", proc.cwd, False),
        Step("close-fds", 3 + preserve_fds),
        Step("umask", 0o022 if proc.umask is None else proc.umask),
    ]


def exec_steps(proc: Process, preserve_fds: int, seccomp: Step | None = None) -> list[Step]:
    """The very last: with noNewPrivileges and `seccomp` given (exec), the seccomp filter right
    before execve (the profile need not allow pyrt-init's own calls), then execve."""
    env = dedup_env(proc.env)
    if preserve_fds:
        env.append(f"LISTEN_FDS={preserve_fds}")
    steps = [seccomp] if seccomp and proc.no_new_privileges else []
    return steps + [Step("exec", bool(preserve_fds), env, list(proc.args))]
