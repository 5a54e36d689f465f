"""`pyrt state ID`: runc's state JSON, the status computed now."""

from __future__ import annotations

import sys


def main(g, opts: dict, args: list[str]) -> int:
    from pyrt import jsonio
    from pyrt.state import Container

    c = Container.load(g.root, args[0], lock=False)
    try:
        sys.stdout.write(jsonio.pretty(c.oci_state()))
    finally:
        c.close()
    return 0
