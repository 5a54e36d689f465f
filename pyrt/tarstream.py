"""A streaming tar reader that accepts exactly what image layers need, within fixed bounds.

Python's tarfile reads a pax or GNU long-name header whole, whatever size it claims: a layer
declaring a 10 GB header would be read into memory. This reader parses the ustar header itself
(checksum, octal and base-256 numbers), pax (`x`, `g`) and GNU long names (`L`, `K`) up to
MAX_META bytes, and refuses what pyrt does not apply (sparse files, multi-volume archives, unknown
types) instead of guessing. It never holds more than one chunk of the stream plus one header.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from pyrt.errors import PyrtError

BLOCK = 512
MAX_META = 1 << 20  # the largest pax or long-name header accepted
MAX_NAME = 4096  # PATH_MAX: a longer name could not be created anyway
REGULAR, LINK, SYMLINK, CHAR, BLOCKDEV, DIR, FIFO = "file", "link", "symlink", "char", "block", "dir", "fifo"
_TYPES = {b"0": REGULAR, b"\0": REGULAR, b"7": REGULAR, b"1": LINK, b"2": SYMLINK, b"3": CHAR, b"4": BLOCKDEV,
          b"5": DIR, b"6": FIFO}
_REFUSED = {b"S": "a GNU sparse file", b"M": "a multi-volume continuation", b"V": "a volume label",
            b"D": "a GNU dump directory"}


class TarError(PyrtError):
    """The layer is not a tar archive pyrt accepts (the message says what is wrong)."""


class Entry:
    """One member: its normalised fields (xattrs from pax `SCHILY.xattr.*` records, raw bytes)."""

    __slots__ = ("name", "kind", "size", "mode", "uid", "gid", "mtime_ns", "linkname", "major", "minor", "xattrs")

    def __init__(self, name: str, kind: str, size: int, mode: int, uid: int, gid: int, mtime_ns: int,
                 linkname: str, major: int, minor: int, xattrs: dict[str, bytes]) -> None:
        self.name, self.kind, self.size, self.mode, self.uid, self.gid = name, kind, size, mode, uid, gid
        self.mtime_ns, self.linkname, self.major, self.minor, self.xattrs = mtime_ns, linkname, major, minor, xattrs


def number(field: bytes, what: str) -> int:
    """A numeric header field: octal text, or GNU base-256 (leading 0x80) for large values."""
    if field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    if field[:1] == b"\xff":
        raise TarError(f"tar header: negative {what}")
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    if not all(48 <= c <= 55 for c in text):
        raise TarError(f"tar header: {what} is not an octal number")
    return int(text, 8)


def _checksum_ok(block: bytes) -> bool:
    stored = number(block[148:156], "checksum")
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    if stored == unsigned:
        return True
    rest = block[:148] + block[156:]  # some old tars summed signed chars
    return stored == unsigned - 256 * sum(1 for b in rest if b > 127)


def parse_pax(data: bytes) -> dict[str, bytes]:
    """pax extended header records, `LENGTH KEY=VALUE\\n` each (the length counts itself)."""
    records: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:  # NUL padding after the last record
            break
        space = data.find(b" ", pos, pos + 20)
        length = int(data[pos:space]) if space > pos and data[pos:space].isdigit() else 0
        end = pos + length
        record = data[space + 1:end]
        if length <= 0 or end > len(data) or not record.endswith(b"\n") or b"=" not in record:
            raise TarError("malformed pax header")
        key, _, value = record[:-1].partition(b"=")
        try:
            records[key.decode()] = value
        except UnicodeDecodeError:
            raise TarError("malformed pax header: a key is not UTF-8") from None
        pos = end
    return records


def _pax_int(value: bytes, key: str) -> int:
    if not value.isdigit():
        raise TarError(f"pax header: {key} is not a number")
    return int(value)


def _pax_time_ns(value: bytes) -> int:
    whole, _, frac = value.partition(b".")
    sign = -1 if whole.startswith(b"-") else 1
    digits = whole.lstrip(b"-")
    if not digits.isdigit() or (frac and not frac.isdigit()):
        raise TarError("pax header: mtime is not a number")
    return sign * (int(digits) * 10**9 + int((frac + b"000000000")[:9] or b"0"))


def _name(raw: bytes, what: str) -> str:
    if len(raw) > MAX_NAME:
        raise TarError(f"tar header: a {what} of {len(raw)} bytes (the limit is {MAX_NAME})")
    if b"\0" in raw:
        raise TarError(f"tar header: a {what} with a NUL byte")
    return os.fsdecode(raw)


class TarReader:
    """Iterate over the members of a tar stream; `data()` yields the current member's bytes.

    `read()` returns the next chunk of the stream (b"" at its end); `seek(n)`, if given, skips n
    bytes of the source without reading them (indexing an archive file). `offset` is the stream
    position: right after an entry is yielded, where its data starts.
    """

    def __init__(self, read: Callable[[], bytes], seek: Callable[[int], None] | None = None) -> None:
        self._read, self._seek = read, seek
        self._buf = memoryview(b"")
        self._left = 0  # data of the current member not consumed yet, then its padding
        self._pad = 0
        self._consumed = 0
        self._globals: dict[str, bytes] = {}

    @property
    def offset(self) -> int:
        return self._consumed - len(self._buf)

    def _chunk(self, limit: int) -> memoryview:
        """Up to `limit` (> 0) bytes of the stream; the end of the stream here is truncation."""
        if not self._buf:
            data = self._read()
            if not data:
                raise TarError("unexpected end of data: the archive is truncated")
            self._consumed += len(data)
            self._buf = memoryview(data)
        piece, self._buf = self._buf[:limit], self._buf[limit:]
        return piece

    def _take(self, n: int) -> bytes:
        if len(self._buf) >= n:
            piece, self._buf = self._buf[:n], self._buf[n:]
            return piece.tobytes()
        parts = []
        while n:
            parts.append(self._chunk(n))
            n -= len(parts[-1])
        return b"".join(parts)

    def _skip(self, n: int) -> None:
        if self._seek is not None and n > len(self._buf):
            n -= len(self._buf)
            self._buf = memoryview(b"")
            self._seek(n)
            self._consumed += n
            return
        while n:
            n -= len(self._chunk(n))

    def data(self) -> Iterator[memoryview]:
        """The current member's data, chunk by chunk (each valid until the next is requested)."""
        while self._left:
            piece = self._chunk(self._left)
            self._left -= len(piece)
            yield piece

    def __iter__(self) -> Iterator[Entry]:
        while True:
            self._skip(self._left + self._pad)
            self._left = self._pad = 0
            entry = self._next()
            if entry is None:
                return
            yield entry

    def drain(self) -> None:
        """Read the rest of the stream (after the end-of-archive blocks), so that all of it is hashed."""
        self._buf = memoryview(b"")
        while self._read():
            pass

    def _header(self) -> bytes | None:
        """The next 512-byte header; None at the end of the archive (a zero block, or the end of
        the stream exactly between members)."""
        if not self._buf:
            data = self._read()
            if not data:
                return None
            self._consumed += len(data)
            self._buf = memoryview(data)
        block = self._take(BLOCK)
        return None if block.count(0) == BLOCK else block

    def _next(self) -> Entry | None:
        pax = dict(self._globals)
        long_name = long_link = None
        meta_total = 0  # all the extended headers of one member together stay within MAX_META
        while True:
            block = self._header()
            if block is None:
                if pax != self._globals or long_name is not None or long_link is not None:
                    raise TarError("the archive ends after an extended header, without its member")
                return None
            if not _checksum_ok(block):
                raise TarError(f"bad tar header checksum at offset {self.offset - BLOCK}")
            flag = block[156:157]
            size = number(block[124:136], "size")
            if flag in (b"x", b"g", b"L", b"K"):
                meta_total += size
                if meta_total > MAX_META:
                    raise TarError(f"tar header: extended headers of {meta_total} bytes (the limit is {MAX_META})")
                meta = self._take(size)
                self._skip(-size % BLOCK)
                if flag == b"x":
                    pax.update(parse_pax(meta))
                elif flag == b"g":
                    self._globals.update(parse_pax(meta))
                    if sum(len(k) + len(v) for k, v in self._globals.items()) > MAX_META:
                        raise TarError(f"tar header: global extended headers over {MAX_META} bytes")
                    pax.update(self._globals)
                elif flag == b"L":
                    long_name = meta.split(b"\0", 1)[0]
                else:
                    long_link = meta.split(b"\0", 1)[0]
                continue
            return self._entry(block, flag, size, pax, long_name, long_link)

    def _entry(self, block: bytes, flag: bytes, size: int, pax: dict[str, bytes], long_name: bytes | None,
               long_link: bytes | None) -> Entry:
        name = block[0:100].split(b"\0", 1)[0]
        if block[257:265] == b"ustar\x0000" and block[345] != 0:  # POSIX ustar: a prefix field
            name = block[345:500].split(b"\0", 1)[0] + b"/" + name
        name = pax.get("path", long_name if long_name is not None else name)
        link = pax.get("linkpath", long_link if long_link is not None else block[157:257].split(b"\0", 1)[0])
        name_s = _name(name, "name")
        kind = _TYPES.get(flag)
        if kind is None:
            what = _REFUSED.get(flag, f"an entry of type {flag!r}")
            raise TarError(f"{name_s!r} is {what}: not supported in image layers")
        if any(k.startswith("GNU.sparse.") for k in pax):
            raise TarError(f"{name_s!r} is a sparse file: not supported in image layers")
        if "size" in pax:
            size = _pax_int(pax["size"], "size")
        xattrs = {k[len("SCHILY.xattr."):]: v for k, v in pax.items() if k.startswith("SCHILY.xattr.")}
        entry = Entry(
            name_s, kind, size if kind == REGULAR else 0, number(block[100:108], "mode") & 0o7777,
            _pax_int(pax["uid"], "uid") if "uid" in pax else number(block[108:116], "uid"),
            _pax_int(pax["gid"], "gid") if "gid" in pax else number(block[116:124], "gid"),
            _pax_time_ns(pax["mtime"]) if "mtime" in pax else number(block[136:148], "mtime") * 10**9,
            _name(link, "link name"), number(block[329:337], "device major"), number(block[337:345], "device minor"),
            xattrs)
        if entry.uid >= 1 << 32 or entry.gid >= 1 << 32:
            raise TarError(f"{name_s!r}: owner {entry.uid}:{entry.gid} is out of range")
        # only regular files carry data (as in Go's archive/tar: a link's or a directory's size is ignored)
        self._left = entry.size
        self._pad = -entry.size % BLOCK
        return entry
