"""`pyrt spec`: write a default config.json (an interactive sh in ./rootfs), as `runc spec`."""

from __future__ import annotations

import os

from pyrt.errors import PyrtError


def main(g, opts: dict, args: list[str]) -> int:
    from pyrt import defaults, jsonio

    if opts["rootless"]:
        raise PyrtError("spec --rootless: rootless containers are not supported by pyrt")
    path = os.path.join(opts["bundle"] or ".", "config.json")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except FileExistsError:
        raise PyrtError("File config.json exists. Remove it first") from None
    except OSError as e:
        raise PyrtError(f"open {path}: {os.strerror(e.errno).lower()}") from None
    try:
        os.write(fd, jsonio.pretty(defaults.config(), indent="\t").encode())
    finally:
        os.close(fd)
    return 0
