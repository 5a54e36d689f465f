"""Logging in runc's formats, because engines parse them.

With `--log FILE` records go to FILE (logrus text, or one JSON object per line with
`--log-format json`: containerd reads the last `level=error` record, podman the whole file)
and errors are also printed plainly on stderr. Without `--log` records go to stderr as text.
"""

from __future__ import annotations

import os
import sys
import time

_file: str | None = None
_json = False
_debug = False


def setup(path: str | None, fmt: str, debug: bool) -> None:
    global _file, _json, _debug
    _file, _json, _debug = path, fmt == "json", debug


def rfc3339(ns: int | None = None, nanos: bool = False) -> str:
    """UTC time as Go prints it: RFC 3339, with trailing-zero-trimmed nanoseconds if asked."""
    ns = time.time_ns() if ns is None else ns
    s = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))
    frac = ns % 1_000_000_000
    if nanos and frac:
        s += ("." + f"{frac:09d}").rstrip("0")
    return s + "Z"


def _quote(msg: str) -> str:
    return '"' + msg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _record(level: str, msg: str) -> str:
    if _json:
        from pyrt import jsonio

        return jsonio.dumps({"level": level, "msg": msg, "time": rfc3339()}) + "\n"
    return f"time={_quote(rfc3339())} level={level} msg={_quote(msg)}\n"


def _write(level: str, msg: str, fallback: bool = True) -> bool:
    """Write a record to the --log file, or (fallback) stderr; whether it went to the file."""
    line = _record(level, msg)
    if _file:
        try:
            fd = os.open(_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
            return True
        except OSError:
            pass  # an unwritable log must not hide the error: fall back to stderr
    if not fallback:
        return False
    try:
        sys.stderr.write(line)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    return False


def error(msg: str) -> None:
    """The record, and on stderr the plain message too if the record went to the --log file
    (one line on stderr either way)."""
    if _write("error", msg):
        try:
            sys.stderr.write(msg + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def error_in_log(msg: str) -> None:
    """An error record in the --log file only: an engine reads its message from there (the
    containerd shim: "unable to retrieve OCI runtime error" otherwise), while stderr gets the
    usage text or traceback the caller prints (also when the file cannot be written)."""
    if _file:
        _write("error", msg, fallback=False)


def warning(msg: str) -> None:
    _write("warning", msg)


def debug(msg: str) -> None:
    if _debug:
        _write("debug", msg)


def debugging() -> bool:
    return _debug
