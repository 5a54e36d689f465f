"""Capability names and sets, from python-prctl's table of the kernel's capabilities."""

from __future__ import annotations

import prctl

#: The five sets of process.capabilities, in config.json's spelling.
SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")

# python-prctl's table predates CAP_CHECKPOINT_RESTORE (Linux 5.9); its number is fixed ABI.
_EXTRA = {"checkpoint_restore": 40}


def number(name: str) -> int | None:
    """CAP_SYS_ADMIN (or SYS_ADMIN) -> 21; None for a name the kernel ABI does not define."""
    short = name.upper().removeprefix("CAP_").lower()
    if short == "last_cap":
        return None
    if short in _EXTRA:
        return _EXTRA[short]
    value = getattr(prctl, "CAP_" + short.upper(), None) if short in prctl.ALL_CAP_NAMES else None
    return value if isinstance(value, int) else None


def all_names() -> list[str]:
    """Every capability pyrt can set, sorted by number (for `pyrt features`)."""
    names = {n: number(n) for n in (*prctl.ALL_CAP_NAMES, *_EXTRA)}
    return ["CAP_" + n.upper() for n, v in sorted(names.items(), key=lambda kv: kv[1] or -1) if v is not None]


def mask(names: list[str]) -> int:
    """The bit mask of a list of capability names (validated by spec.py)."""
    bits = 0
    for name in names:
        bits |= 1 << number(name)
    return bits
