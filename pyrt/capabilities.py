"""Capability names and sets, from python-prctl's table of the kernel's capabilities.

python-prctl's C module `_prctl` holds the table (its CAP_* constants); the `prctl` wrapper
module on top builds ~120 property objects at import (2-3 ms), so the start path reads the C
module directly.
"""

from __future__ import annotations

import _prctl

#: The five sets of process.capabilities, in config.json's spelling.
SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")

# Names that are not capabilities but sit in the same namespace of constants.
_NOT_CAPS = ("CAP_EFFECTIVE", "CAP_INHERITABLE", "CAP_PERMITTED", "CAP_LAST_CAP")
# python-prctl's table predates CAP_CHECKPOINT_RESTORE (Linux 5.9); its number is fixed ABI.
_EXTRA = {"CAP_CHECKPOINT_RESTORE": 40}


def number(name: str) -> int | None:
    """CAP_SYS_ADMIN (or SYS_ADMIN, any case) -> 21; None for a name the kernel does not define."""
    full = "CAP_" + name.upper().removeprefix("CAP_")
    if full in _NOT_CAPS:
        return None
    value = _EXTRA.get(full, getattr(_prctl, full, None))
    return value if isinstance(value, int) else None


def all_names() -> list[str]:
    """Every capability pyrt can set, by number (for `pyrt features`)."""
    names = {n: number(n) for n in dir(_prctl) if n.startswith("CAP_") and n not in _NOT_CAPS}
    names.update(_EXTRA)
    return [n for n, _ in sorted(((n, v) for n, v in names.items() if v is not None), key=lambda kv: kv[1])]


def mask(names: list[str]) -> int:
    """The bit mask of a list of capability names (validated by spec.py)."""
    bits = 0
    for name in names:
        bits |= 1 << number(name)
    return bits
