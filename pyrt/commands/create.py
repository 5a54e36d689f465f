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
    spec = config.load(bundle, common.overrides(opts))
    init = launch.create(g.root, args[0], spec, common.prepare(g.root, args[0], spec, options), options)
    init.close()
    return 0
