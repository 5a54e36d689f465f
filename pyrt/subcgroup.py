"""`exec --cgroup`: the sub-cgroup of the container an exec'd process runs in, in runc's syntax
and words. `PATH` moves the process down in every hierarchy; `CONTROLLER[,CONTROLLER...]:PATH`
(repeatable, one path per controller) in those v1 hierarchies only, the cgroup2 one keeping the
container's own directory (what runc 1.5 does on a hybrid host). The sub-cgroup must exist (pyrt
makes none) and lie within the container's cgroup: `..` cannot leave it.
"""

from __future__ import annotations

import os

from pyrt.errors import PyrtError
from pyrt.host import v1_slots


def parse(args: list[str]) -> dict[str, str]:
    """The --cgroup arguments -> controller ("" for all) -> path below the container's cgroup."""
    paths: dict[str, str] = {}
    for arg in args:
        controllers, colon, path = arg.partition(":")
        if not colon:
            if len(args) != 1:
                raise PyrtError(f"invalid --cgroup argument: {arg} (missing <controller>: prefix)")
            paths[""] = arg
            continue
        for name in controllers.split(","):
            if not name:
                raise PyrtError(f"invalid --cgroup argument: {arg} (empty <controller> prefix)")
            if name in paths:
                raise PyrtError(f"invalid --cgroup argument(s): controller {name} specified multiple times")
            paths[name] = path
    return paths


class SubCgroup:
    """The container's cgroup `cg` (cgroups.Cgroup) with some directories moved down to the
    sub-cgroups `paths` (parse()): what launch.start needs of a cgroup to clone3 into it."""

    def __init__(self, cg, paths: dict[str, str]) -> None:
        for name in paths:
            if name and name not in cg.v1:
                hint = "" if cg.v1 else " (a controller is named on cgroup v1 hierarchies only)"
                raise PyrtError(f"unknown controller {name} in SubCgroupPaths{hint}")
        self.root, self.path, self.v1, self.paths = cg.root, cg.path, cg.v1, paths

    def _dir(self, base: str, controllers: list[str]) -> str:
        sub = self.paths.get("", next((self.paths[c] for c in controllers if c in self.paths), ""))
        top = os.path.join(base, self.path)
        path = os.path.normpath(os.path.join(top, sub.lstrip("/")))
        if path != top and not path.startswith(top + "/"):
            raise PyrtError(f"bad sub cgroup path: {sub}")
        return path

    @property
    def dir(self) -> str:
        """The cgroup2 directory: a sub-cgroup only for a PATH without controllers."""
        return self._dir(self.root, [])

    def bases(self) -> list[str]:
        return [self.root, *dict.fromkeys(self.v1.values())]

    def open_dir(self) -> int:
        return _open(self.dir, os.O_RDONLY | os.O_DIRECTORY)

    def open_v1_tasks(self) -> dict[str, int]:
        """As Cgroup.open_v1_tasks, each hierarchy's `tasks` in its (sub-)cgroup."""
        fds: dict[str, int] = {}
        try:
            for slot, base in v1_slots(self.v1).items():
                controllers = [c for c, b in self.v1.items() if b == base]
                fds[slot] = _open(os.path.join(self._dir(base, controllers), "tasks"), os.O_WRONLY)
        except PyrtError:
            for fd in fds.values():
                os.close(fd)
            raise
        return fds


def _open(path: str, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise PyrtError(f"open {path}: {os.strerror(e.errno).lower()}") from None
