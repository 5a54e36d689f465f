"""Images made in the tests: layers built entry by entry (hostile ones included), OCI image
layouts written around them, and a snapshot of an unpacked tree to compare with umoci's."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path


class Layer:
    """A layer tar written entry by entry (pax format, as podman writes them)."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115 (closed in bytes())

    def _add(self, name: str, kind: bytes, mode: int, uid: int = 0, gid: int = 0, data: bytes = b"",
             link: str = "", xattrs: dict[str, bytes] | None = None, major: int = 0, minor: int = 0) -> Layer:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, gid, 1_700_000_000
        info.linkname, info.devmajor, info.devminor, info.size = link, major, minor, len(data)
        # binary values travel as surrogate escapes (tarfile then marks the header hdrcharset=BINARY)
        info.pax_headers = {f"SCHILY.xattr.{k}": os.fsdecode(v) for k, v in (xattrs or {}).items()}
        self.tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        return self

    def dir(self, name: str, mode: int = 0o755, **kw) -> Layer:
        return self._add(name, tarfile.DIRTYPE, mode, **kw)

    def file(self, name: str, data: bytes = b"", mode: int = 0o644, **kw) -> Layer:
        return self._add(name, tarfile.REGTYPE, mode, data=data, **kw)

    def symlink(self, name: str, target: str, **kw) -> Layer:
        return self._add(name, tarfile.SYMTYPE, 0o777, link=target, **kw)

    def hardlink(self, name: str, target: str, **kw) -> Layer:
        return self._add(name, tarfile.LNKTYPE, 0o644, link=target, **kw)

    def device(self, name: str, kind: str, major: int = 0, minor: int = 0, mode: int = 0o666, **kw) -> Layer:
        flag = {"char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}[kind]
        return self._add(name, flag, mode, major=major, minor=minor, **kw)

    def whiteout(self, name: str) -> Layer:
        head, _, base = name.rpartition("/")
        return self.file(f"{head}/.wh.{base}" if head else f".wh.{base}")

    def opaque(self, directory: str) -> Layer:
        return self.file(f"{directory}/.wh..wh..opq")

    def raw(self, data: bytes) -> Layer:
        """Bytes appended as they are (hand-made headers)."""
        self.tar.fileobj.write(data)
        self.tar.offset += len(data)
        return self

    def bytes(self) -> bytes:
        self.tar.close()
        return self.buf.getvalue()


def header(name: str, size: int = 0, flag: bytes = b"0", mode: int = 0o644, size_field: bytes | None = None,
           linkname: str = "") -> bytes:
    """A hand-made ustar header (for what tarfile refuses to write): valid checksum."""
    block = bytearray(512)
    block[0:len(name)] = name.encode()
    block[100:108] = b"%07o\0" % mode
    block[108:116] = block[116:124] = b"0000000\0"
    block[124:136] = size_field if size_field is not None else b"%011o\0" % size
    block[136:148] = b"14000000000\0"
    block[156:157] = flag
    block[157:157 + len(linkname)] = linkname.encode()
    block[257:265] = b"ustar\x0000"
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compress(tar: bytes, how: str) -> tuple[bytes, str]:
    """The blob and its media type."""
    base = "application/vnd.oci.image.layer.v1.tar"
    if how == "gzip":
        return gzip.compress(tar, compresslevel=1, mtime=0), base + "+gzip"
    if how == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(tar), base + "+zstd"
    return tar, base


def write_layout(path: Path, layers: list[tuple[bytes, str]], config: dict | None = None, ref: str = "test",
                 tamper=None, fake_diff_ids: list[str] | None = None) -> Path:
    """An OCI image layout at `path` with one image named `ref`. `layers` are (tar, compression);
    `tamper(manifest)` may change the manifest's descriptors before it is written; `fake_diff_ids`
    replace the true ones in the image config."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> dict:
        digest = sha256(data)
        (blobs / digest[7:]).write_bytes(data)
        return {"digest": digest, "size": len(data)}

    descs, diff_ids = [], []
    for tar, how in layers:
        blob, media = compress(tar, how)
        descs.append({"mediaType": media, **put(blob)})
        diff_ids.append(sha256(tar))
    image_config = {"architecture": "amd64", "os": "linux", "config": config or {},
                    "rootfs": {"type": "layers", "diff_ids": fake_diff_ids or diff_ids}}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           **put(json.dumps(image_config).encode())},
                "layers": descs}
    if tamper is not None:
        tamper(manifest)
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                **put(json.dumps(manifest).encode()),
                                                "annotations": {"org.opencontainers.image.ref.name": ref}}]}
    (path / "index.json").write_text(json.dumps(index))
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return path


def tree(root: Path, contents: bool = True) -> dict[str, tuple]:
    """Every entry below `root`: type, mode, owner, size, link target or device, xattrs, and
    (for files) a hash of the contents; hard links as the sorted group of names they share."""
    out: dict[str, tuple] = {}
    inodes: dict[int, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames] if dirpath == str(root) else [*dirnames, *filenames]:
            path = os.path.normpath(os.path.join(dirpath, name))
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            kind = stat.S_IFMT(st.st_mode)
            extra: object = None
            if stat.S_ISLNK(st.st_mode):
                extra = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                extra = (os.major(st.st_rdev), os.minor(st.st_rdev))
            elif stat.S_ISREG(st.st_mode):
                extra = hashlib.sha256(Path(path).read_bytes()).hexdigest() if contents else None
                if st.st_nlink > 1:
                    inodes.setdefault(st.st_ino, []).append(rel)
            try:
                xattrs = tuple(sorted((k, os.getxattr(path, k, follow_symlinks=False))
                                      for k in os.listxattr(path, follow_symlinks=False)))
            except OSError:
                xattrs = ()
            size = st.st_size if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode) else None
            out[rel] = (oct(kind), oct(st.st_mode & 0o7777), st.st_uid, st.st_gid, size, extra, xattrs)
    for names in inodes.values():
        for name in names:
            out[name] += (tuple(sorted(names)),)
    return out
