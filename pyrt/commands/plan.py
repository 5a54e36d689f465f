"""`pyrt plan BUNDLE`: what `create` would do, step by step, without doing it: the same gate
(config.load) and the same planners, so it refuses exactly what `create` refuses. It plans as
`pyrt run` in the foreground does (a terminal of its own), for the container id --id."""

from __future__ import annotations

import os
import sys


def main(g, opts: dict, args: list[str]) -> int:
    from pyrt import config, namespaces, parent_plan, planner
    from pyrt.commands import common
    from pyrt.launch import CreateOptions

    bundle = args[0] if args else "."
    spec = config.load(bundle, config.Overrides(relay=True))
    for fd in namespaces.open_joined(spec).values():  # as create opens them: a bad path is refused
        os.close(fd)
    parent = common.prepare(g.root, opts["id"], spec, CreateOptions(bundle))
    joined = {k: 4 + i for i, k in enumerate(k for k, p in spec.namespaces.items() if p)}
    fds = planner.Fds(fifo=3, joined=joined, console=9 if spec.process.terminal else -1,
                      seccomp=10 if spec.seccomp else -1)
    seccomp_flags = spec.seccomp.flags if spec.seccomp else 0
    cg = next(a.values[0] for a in parent if a.name == "cgroup")
    child = planner.for_create(spec, fds, planner.Options(opts["id"], seccomp_flags=seccomp_flags), cg)
    sys.stdout.write(parent_plan.render(parent, child) + "\n")
    return 0
