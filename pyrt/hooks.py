"""OCI hooks, each at its point of the lifecycle and in the namespaces the spec names.

    prestart, createRuntime  `create`, run here (runtime namespaces) while pyrt-init waits at
                             its hook-sync step: everything mounted, the root not pivoted yet
    createContainer          `create`, run by pyrt-init right after, in the container's namespaces
    startContainer           `start`, run by pyrt-init with the container's credentials, just
                             before the process's execve (the path resolves in the container)
    poststart                `start`, run here once the container's process runs
    poststop                 `delete` (and a `create` that failed once its init existed)

A hook gets the container's state JSON on stdin, only its own env, no fd of ours, and its
process group is killed at its timeout. A failure before the process runs fails the
operation; as runc 1.5, a failing poststart hook fails `start` and kills the container's processes
(the spec leaves it open); poststop failures are logged and the rest goes on.
"""

from __future__ import annotations

import os

from pyrt import jsonio, log, protocol
from pyrt.errors import PyrtError

TYPE_CHECKING = False  # start, kill and delete need no spec or plan code: keep them off their path
if TYPE_CHECKING:
    from pyrt.spec import Hook, Spec
    from pyrt.steps import Step

#: Kinds that need pyrt-init to stop at hook-sync (for them to run, or for their state JSON).
_SYNC = ("prestart", "createRuntime", "createContainer", "startContainer")


def to_record(hooks: dict[str, list[Hook]]) -> dict:
    """Hooks as JSON for the state record: `start` and `delete` must not re-read a bundle that
    may have changed since `create`."""
    return {kind: [{"path": h.path, "args": h.args, "env": h.env, "timeout": h.timeout} for h in items]
            for kind, items in hooks.items() if items}


def from_record(record, kind: str) -> list[Hook]:
    """The hooks of one kind in a state.Record."""
    from pyrt.spec import Hook

    return [Hook(h["path"], h["args"], h["env"], h["timeout"]) for h in record.hooks.get(kind, [])]


def state(container_id: str, status: str, pid: int, bundle: str, annotations: dict) -> dict:
    """The runtime-spec state object hooks read on stdin: `ociVersion` the runtime-spec version
    pyrt implements, as runc (not the config's); no `pid` once stopped (0 is not a process)."""
    from pyrt import SPEC_VERSION

    out = {"ociVersion": SPEC_VERSION, "id": container_id, "status": status, "pid": pid, "bundle": bundle}
    if status == "stopped":
        del out["pid"]
    if annotations:
        out["annotations"] = annotations
    return out


# ----------------------------------------------------------------------------- pyrt-init's part


def create_steps(hooks: dict[str, list[Hook]]) -> list[Step]:
    """For the create plan, before pivot_root: stop for the runtime's hooks, then run the
    createContainer hooks in the container's namespaces."""
    from pyrt.steps import Step

    if not any(hooks.get(kind) for kind in _SYNC):
        return []
    return [Step("hook-sync"), *steps("createContainer", hooks)]


def steps(kind: str, hooks: dict[str, list[Hook]]) -> list[Step]:
    from pyrt.steps import Step

    return [Step("hook", kind, h.timeout or 0, h.path, list(h.env), list(h.args), i)
            for i, h in enumerate(hooks.get(kind, []))]


# ----------------------------------------------------------------------------- the runtime's part


def at_sync(spec: Spec, container_id: str, init, annotations: dict) -> None:
    """`create`: if the plan stops at hook-sync, wait for it, run prestart then createRuntime
    hooks, and hand pyrt-init the states for its own hooks (only now is its pid known).
    `annotations`: the container's, with what create added (bridge mode's address)."""
    if not any(spec.hooks.get(kind) for kind in _SYNC):
        return
    init.wait(protocol.HOOKS)
    creating = state(container_id, "creating", init.pid, spec.bundle, annotations)
    run("prestart", spec.hooks.get("prestart", []), creating, cwd=spec.bundle)  # runc: in the bundle
    run("createRuntime", spec.hooks.get("createRuntime", []), creating, cwd=spec.bundle)
    created = dict(creating, status="created")
    data = jsonio.dumps(creating).encode() + b"\0" + jsonio.dumps(created).encode()
    # its length, then the bytes: the states may be longer than one datagram can be
    os.write(init.sock, str(len(data)).encode())
    for at in range(0, len(data), protocol.CHUNK):
        os.write(init.sock, data[at:at + protocol.CHUNK])


def watch_start(c) -> int:
    """`start`, before it writes into the exec fifo: a reader of the fifo, to learn how the init
    goes on (see after_start)."""
    return os.open(c.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)


def after_start(c, watch: int, init=None) -> None:
    """`start`: wait until the container's process runs (what fails after the exec fifo, a
    startContainer hook or the execve, fails `start`), then run the poststart hooks."""
    try:
        if init is not None:
            init.wait(b"")  # `run` still holds the sync socket: end-of-file is the execve
        else:
            _wait_exec(watch)
    finally:
        os.close(watch)
    record = c.record
    poststart = from_record(record, "poststart")
    if poststart:
        st = state(record.id, "running", record.pid, record.bundle, record.annotations)
        try:
            run("poststart", poststart, st)
        except PyrtError:
            c.kill_and_wait()  # as runc 1.5: the process does not outlive its failed poststart
            raise


def _wait_exec(watch: int) -> None:
    """pyrt-init keeps its end of the exec fifo (close-on-exec) after taking `start`'s byte, and
    a failure writes the reason into the fifo first: the fifo's last writer going away (POLLHUP)
    is its execve, or its end. Only then read, or the byte could be taken from under the init."""
    import select

    p = select.poll()
    p.register(watch, 0)  # no POLLIN: only POLLHUP (and POLLERR) wake us
    p.poll()
    data = b""
    while chunk := os.read(watch, 4096):  # all writers are gone: to end-of-file
        data += chunk
    if data:
        reason = "it exited" if data == protocol.FIFO_START else data.decode(errors="replace").strip()
        raise PyrtError(f"unable to start container process: {reason}")


def poststop(record) -> None:
    """`delete`, once the container is gone: the poststop hooks (of a state.Record), failures logged."""
    hooks = from_record(record, "poststop")
    if hooks:
        st = state(record.id, "stopped", 0, record.bundle, record.annotations)
        run("poststop", hooks, st, must_succeed=False)


def run(kind: str, hooks: list[Hook], st: dict, must_succeed: bool = True, cwd: str | None = None) -> None:
    """Run hooks in order, in the runtime's namespaces (in `cwd`), the state JSON on stdin. With
    `must_succeed` the first failure raises; otherwise each failure is a warning."""
    data = jsonio.dumps(st).encode()
    for i, h in enumerate(hooks):
        try:
            _run_one(f"error running {kind} hook #{i}", h, data, cwd)
        except PyrtError as e:
            if must_succeed:
                raise
            log.warning(str(e))


def _run_one(what: str, h: Hook, data: bytes, cwd: str | None) -> None:
    """Run one hook; its failure in runc's words, `what` first ("error running KIND hook #N")."""
    import signal
    import subprocess

    env = dict(e.partition("=")[::2] for e in h.env)
    try:
        p = subprocess.Popen(h.args or [h.path], executable=h.path, env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd)
    except OSError as e:
        raise PyrtError(f"{what}: {h.path}: {os.strerror(e.errno).lower()}") from None
    try:
        out, _ = p.communicate(data, timeout=h.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        p.stdout.close()
        raise PyrtError(f"{what}: hook ran past specified timeout of {h.timeout:.1f}s") from None
    if p.returncode:
        how = f"killed by signal {-p.returncode}" if p.returncode < 0 else f"exit status {p.returncode}"
        text = " ".join(out[:512].decode(errors="replace").split())
        raise PyrtError(f"{what}: {h.path}: {how}" + (f", output: {text}" if text else ""))
