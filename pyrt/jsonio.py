"""JSON through the C accelerator only.

`import json` pulls in `re` and costs about 7 ms on this machine: a fifth of a whole
`pyrt run`. The `_json` extension behind it has the same scanner and encoder, so the start
path uses them directly. Errors surface as ValueError with the position, like json's.
"""

from __future__ import annotations

import _json
import os


class _Context:
    """The attributes `_json.make_scanner` reads from a json.JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        raise ValueError(f"invalid JSON constant {name}")


_scan = _json.make_scanner(_Context())
_encode = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ":", ",", False, False, True)
_WS = " \t\n\r"


def loads(text: str | bytes) -> object:
    """Parse one JSON document; ValueError (json's JSONDecodeError) says where it is bad."""
    if isinstance(text, bytes):
        text = text.decode()
    start = len(text) - len(text.lstrip(_WS))
    try:
        obj, end = _scan(text, start)
    except StopIteration as e:
        raise ValueError(f"expecting a value at offset {e.value}") from None
    except RecursionError:
        raise ValueError("arrays and objects nested too deeply") from None
    except SystemError:
        # _json raises its detailed errors only once json.decoder is loaded: on this (rare)
        # path, let the json package parse again for the message.
        import json

        json.loads(text)
        raise
    rest = text[end:]
    if rest.strip(_WS):
        raise ValueError(f"extra data at offset {end + len(rest) - len(rest.lstrip(_WS))}")
    return obj


def dumps(obj: object) -> str:
    """Compact JSON, as runc prints `list --format json` and `ps --format json`."""
    return "".join(_encode(obj, 0))


def pretty(obj: object, indent: str = "  ", level: int = 0) -> str:
    """Indented JSON, as runc prints `state` and `spec` (Go's json.MarshalIndent layout)."""
    pad, inner = indent * level, indent * (level + 1)
    if isinstance(obj, dict) and obj:
        items = (f"{inner}{dumps(str(k))}: {pretty(v, indent, level + 1)}" for k, v in obj.items())
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(obj, list) and obj:
        return "[\n" + ",\n".join(inner + pretty(v, indent, level + 1) for v in obj) + f"\n{pad}]"
    return dumps(obj)


def read(path: str, dir_fd: int | None = None) -> bytes:
    """The bytes of a file, opened close-on-exec (OSError as raised by open)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def temp_name(path: str) -> str:
    """The temporary file write_atomic() writes `path` through (`create` journals it)."""
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}.{os.getpid()}")


def write_atomic(path: str, data: bytes, mode: int = 0o600, dir_fd: int | None = None) -> None:
    """Replace a file whole (a temporary file beside it, then rename): a reader sees the old or
    the new bytes, never half. OSError as raised by open; no temporary file is left."""
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    try:
        try:
            if os.write(fd, data) != len(data):  # a full filesystem takes what fits
                raise OSError(28, os.strerror(28), path)
        finally:
            os.close(fd)
        os.rename(tmp, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise


#: The largest JSON input pyrt reads (config.json, process.json, update's resources). runc reads
#: any size; a cap turns a config.json that links to /dev/zero into an error instead of all the
#: memory. 32 MiB is far above any real config (100000 mounts, the kernel's mount-max, fit in 16).
MAX_SIZE = 32 << 20


def read_capped(fd: int, name: str) -> bytes:
    """Everything readable from fd (a pipe, stdin), refused beyond MAX_SIZE (PyrtError)."""
    from pyrt.errors import PyrtError

    chunks, size = [], 0
    while chunk := os.read(fd, 1 << 16):
        size += len(chunk)
        if size > MAX_SIZE:
            raise PyrtError(f"{name}: larger than {MAX_SIZE >> 20} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


def read_regular(path: str) -> bytes:
    """The bytes of a regular file of at most MAX_SIZE. Anything else (a device, a FIFO, a
    directory, through a symlink or not) is refused before it is opened for reading: opening a
    FIFO blocks, opening a device can act (a tape rewinds, a watchdog arms). The type is checked
    on an O_PATH fd and the same inode reopened through it: no swap in between. OSError as
    raised by open, PyrtError for the rest."""
    from pyrt.errors import PyrtError

    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if st.st_mode & 0o170000 != 0o100000:
            raise PyrtError(f"{path}: not a regular file")
        if st.st_size > MAX_SIZE:
            raise PyrtError(f"{path}: larger than {MAX_SIZE >> 20} MiB")
        data_fd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(fd)
    try:
        return read_capped(data_fd, path)  # it may have grown since fstat
    finally:
        os.close(data_fd)


def load_file(path: str) -> object:
    """Parse a JSON file (a regular one, at most MAX_SIZE); errors are one line naming the file
    (PyrtError)."""
    from pyrt.errors import PyrtError

    try:
        data = read_regular(path)
    except OSError as e:
        raise PyrtError(f"open {path}: {os.strerror(e.errno).lower()}") from None
    return parse_bytes(data, path)


def parse_bytes(data: bytes, name: str) -> object:
    """Parse JSON read from `name`; errors are one line naming it (PyrtError)."""
    from pyrt.errors import PyrtError

    if not data.strip():
        raise PyrtError(f"{name} is empty")
    try:
        return loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise PyrtError(f"{name}: invalid JSON: {e}") from None
