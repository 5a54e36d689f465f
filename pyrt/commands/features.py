"""`pyrt features`: the runtime-spec features document, only what this pyrt really does."""

from __future__ import annotations

import sys


def main(g, opts: dict, args: list[str]) -> int:
    from pyrt import defaults, jsonio

    sys.stdout.write(jsonio.pretty(defaults.features()) + "\n")
    return 0
