"""`pyrt create ID`: set the container up, its process parked until `pyrt start`.

    spec   = config.load(bundle, overrides)     the gate: every check, no side effect
    parent = common.prepare(root, id, spec)      the parent's steps, checked against this host
    launch.create(root, id, spec, parent)        side effects start here
"""

from __future__ import annotations


def main(g, opts: dict, args: list[str]) -> int:
    from pyrt import config, launch
    from pyrt.commands import common

    bundle = opts["bundle"] or "."
    options = common.create_options(opts, bundle)
    trace = options.trace = common.tracer(opts, f"create {args[0]}")
    try:
        spec = common.timed(trace, "config", common.CONFIG, config.load, bundle, common.overrides(opts))
        plan = common.timed(trace, "plan", common.PLAN, common.prepare, g.root, args[0], spec, options, g.rootless)
        launch.create(g.root, args[0], spec, plan, options).close()
    finally:
        if trace is not None:
            trace.finish(" (to `create`'s return; pyrt-init's last steps run at `pyrt start`)")
    return 0

