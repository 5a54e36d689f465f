"""`pyrt plan BUNDLE`: what `create` would do, step by step, without doing it: the same gate
(config.load) and the same planners, so it refuses exactly what `create` refuses. It plans as
`pyrt run` in the foreground does (a terminal of its own), for the container id --id. With
--explain, each step's system calls and why it is there (declared with the step: steps.py,
parent_plan.EXPLAIN)."""

from __future__ import annotations

import os
import sys


def main(g, opts: dict, args: list[str]) -> int:
    from pyrt import config, namespaces, parent_plan
    from pyrt.commands import common
    from pyrt.launch import CreateOptions

    bundle = args[0] if args else "."
    spec = config.load(bundle, config.Overrides(relay=True))
    for fd in namespaces.open_joined(spec).values():  # as create opens them: a bad path is refused
        os.close(fd)
    plan = common.prepare(g.root, opts["id"], spec, CreateOptions(bundle), g.rootless)
    sys.stdout.write(parent_plan.render(plan.parent, plan.child, opts["explain"]) + "\n")
    return 0
