"""pyrt without root: where its state lives, and the container without a cgroup.

As runc's `--rootless auto` (the default): rootless when pyrt is not run by root. Its state
goes under $XDG_RUNTIME_DIR/pyrt unless --root says otherwise. A user may not make cgroups
unless a manager delegated one to it: where none is writable the container has no cgroup at
all (NoCgroup): nothing limits it, an unset limit is not an error, a set one is (one line);
its processes are those of its own pid namespace, and `pause` and `update` refuse.
"""

from __future__ import annotations

import os

from pyrt.cgroups import Cgroup
from pyrt.errors import PyrtError


def enabled(value: str) -> bool:
    """--rootless auto|true|false: auto is rootless unless pyrt runs as the host's root; as root
    of a user namespace (rootless podman's `podman unshare`) it is rootless too, as runc's
    cgroupfs driver decides: the cgroups there are the host's, not its own."""
    if value != "auto":
        return value == "true"
    from pyrt.procfs import in_user_namespace

    return os.geteuid() != 0 or in_user_namespace()


def default_root() -> str:
    """Where pyrt keeps its containers' state without --root: /run/pyrt for root; a user's under
    $XDG_RUNTIME_DIR (or /run/user/UID); root of a user namespace, as runc, under
    $XDG_RUNTIME_DIR when it is set and $USER is not root (rootless podman sets both: the
    namespace's root cannot write the host's /run/pyrt)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if os.geteuid() != 0:
        return os.path.join(xdg or f"/run/user/{os.geteuid()}", "pyrt")
    if xdg and os.environ.get("USER") != "root":
        from pyrt.procfs import in_user_namespace

        if in_user_namespace():
            return os.path.join(xdg, "pyrt")
    return "/run/pyrt"


def writable(cg: Cgroup) -> bool:
    """Whether this user can make the container's cgroup (a delegated subtree): the nearest
    existing directory of its path is writable in every hierarchy."""
    for d in cg.dirs():
        while d and not os.path.isdir(d):
            d = os.path.dirname(d)
        if not os.access(d, os.W_OK):
            return False
    return True


def from_state(state: dict) -> Cgroup:
    """The container's cgroup from its state record: a NoCgroup, or a Cgroup."""
    if state.get("none"):
        return NoCgroup(state.get("owner", ""), state.get("own_pidns", False))
    return Cgroup.from_state(state)


class NoCgroup(Cgroup):
    """A rootless container's stand-in for the cgroup it could not have."""

    def __init__(self, owner: str, own_pidns: bool) -> None:
        super().__init__("", "", None, owner, own_pidns)

    def to_state(self) -> dict:
        return {"none": True, "root": "", "path": "", "owner": self.owner, "own_pidns": self.own_pidns}

    def bases(self) -> list[str]:
        return []

    def version(self, v1_name: str, v2_name: str | None) -> int:
        return 0

    def make(self, state_dir_fd: int) -> None:
        pass

    def limit(self, writes: list) -> None:
        if writes:
            raise PyrtError(f"{writes[0].where}: rootless: no writable cgroup to apply linux.resources in")

    def open_dir(self) -> int:
        return -1

    def open_v1_tasks(self) -> dict[str, int]:
        return {}

    def processes(self) -> list[int]:
        """The init and, in its own pid namespace, every process of that namespace."""
        pid = self.init_pid
        if not pid:
            return []
        try:
            ns = os.readlink(f"/proc/{pid}/ns/pid")
        except OSError:
            return []
        if not self.own_pidns:
            return [pid]
        out = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    if os.readlink(f"/proc/{name}/ns/pid") == ns:
                        out.append(int(name))
                except OSError:
                    continue
        return out

    def kill(self, sig: int) -> None:
        import signal

        for pid in self.processes():
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                continue
            try:
                signal.pidfd_send_signal(fd, sig)
            except ProcessLookupError:
                pass
            finally:
                os.close(fd)

    def foreign(self, path: str) -> list[int]:
        return []

    def check_alone(self, what: str, paths: list[str] | None = None) -> None:
        raise PyrtError(f"{what}: a rootless container without a cgroup has none to {what}")

    def freeze(self, frozen: bool) -> None:
        self.check_alone("pause" if frozen else "resume")

    def frozen(self) -> bool:
        return False
