"""Reading an image: an OCI image layout (a directory), an oci-archive or a docker-archive
(tarballs, what `podman save` writes), down to a config and an ordered list of layer streams.

Every blob is verified: manifests, configs and layers against their digests and sizes (the
digest a descriptor names, and each layer's uncompressed `diff_id` from the config), JSON blobs
read whole only up to MAX_JSON bytes, layers streamed in chunks and decompressed on the way
(gzip by Python's own module, zstd by the optional `zstandard` package).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import posixpath
import stat
import zlib
from collections.abc import Callable

from pyrt import tarstream
from pyrt.errors import PyrtError

CHUNK = 1 << 20
MAX_JSON = 8 << 20
MAX_MEMBERS = 200_000
_HEX_LEN = {"sha256": 64, "sha512": 128}
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json")
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}
GZIP_MAGIC, ZSTD_MAGIC = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"


def split_digest(digest: object, where: str) -> tuple[str, str]:
    """`sha256:HEX` → (algorithm, hex); anything else (a path in disguise included) is refused."""
    alg, _, hexpart = str(digest).partition(":")
    if len(hexpart) != _HEX_LEN.get(alg, -1) or not all(c in "0123456789abcdef" for c in hexpart):
        raise PyrtError(f"{where}: invalid digest {str(digest)[:100]!r}")
    return alg, hexpart


class Slice:
    """`size` bytes of an open file from `offset`, read with pread (many slices share one fd)."""

    def __init__(self, fd: int, offset: int, size: int, name: str) -> None:
        self.fd, self.offset, self.left, self.name = fd, offset, size, name

    def read(self, n: int = CHUNK) -> bytes:
        if self.left <= 0 or n <= 0:
            return b""
        data = os.pread(self.fd, min(n, self.left), self.offset)
        if not data:
            raise PyrtError(f"{self.name}: truncated ({self.left} bytes missing)")
        self.offset += len(data)
        self.left -= len(data)
        return data

    def peek(self, n: int) -> bytes:
        return os.pread(self.fd, min(n, self.left), self.offset)


class Source:
    """Where an image's files live: `open(name)` gives a Slice of the file `name` (relative)."""

    def __init__(self, path: str, fd: int) -> None:
        self.path, self.fd = path, fd

    def open(self, name: str) -> Slice:
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        os.close(self.fd)


class LayoutDir(Source):
    """An OCI image layout directory (`oci-layout`, `index.json`, `blobs/ALG/HEX`)."""

    def __init__(self, path: str, fd: int) -> None:
        super().__init__(path, fd)
        self._opened: list[int] = []

    def open(self, name: str) -> Slice:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError as e:
            raise PyrtError(f"{os.path.join(self.path, name)}: {os.strerror(e.errno).lower()}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise PyrtError(f"{os.path.join(self.path, name)}: not a regular file")
        self._opened.append(fd)
        return Slice(fd, 0, st.st_size, os.path.join(self.path, name))

    def exists(self, name: str) -> bool:
        try:
            os.stat(name, dir_fd=self.fd)
        except OSError:
            return False
        return True

    def close(self) -> None:
        for fd in self._opened:
            os.close(fd)
        super().close()


class Archive(Source):
    """A tarball holding an OCI layout (oci-archive) or docker's format (docker-archive): its
    members are indexed once (headers only), then read in place with pread."""

    def __init__(self, path: str, fd: int) -> None:
        super().__init__(path, fd)
        self.members: dict[str, tuple[str, int, int, str]] = {}  # name -> (kind, offset, size, link target)
        reader = tarstream.TarReader(lambda: os.read(fd, 1 << 16), lambda n: os.lseek(fd, n, os.SEEK_CUR))
        for entry in reader:
            if len(self.members) >= MAX_MEMBERS:
                raise PyrtError(f"{path}: more than {MAX_MEMBERS} files: not an image archive")
            name = posixpath.normpath(entry.name.lstrip("/"))
            self.members[name] = (entry.kind, reader.offset, entry.size, entry.linkname)

    def _resolve(self, name: str) -> tuple[str, int, int, str] | None:
        for _ in range(8):  # docker-archive: `ID/layer.tar -> ../DIGEST.tar`
            member = self.members.get(posixpath.normpath(name))
            if member is None or member[0] not in (tarstream.SYMLINK, tarstream.LINK):
                return member
            target = member[3]
            name = posixpath.join(posixpath.dirname(name), target) if member[0] == tarstream.SYMLINK else target
            if name.startswith("/") or posixpath.normpath(name).startswith(".."):
                return None
        return None

    def open(self, name: str) -> Slice:
        member = self._resolve(name)
        if member is None or member[0] != tarstream.REGULAR:
            raise PyrtError(f"{self.path}: no file {name!r} in the archive")
        return Slice(self.fd, member[1], member[2], f"{self.path}:{name}")

    def exists(self, name: str) -> bool:
        return self._resolve(name) is not None


def open_source(path: str) -> Source:
    """The image at `path`: a layout directory, or an archive file (format told by its contents)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise PyrtError(f"open {path}: {os.strerror(e.errno).lower()}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            source: Source = LayoutDir(path, fd)
            if not source.exists("index.json"):
                raise PyrtError(f"{path}: not an OCI image layout (no index.json)")
            return source
        if not stat.S_ISREG(mode):
            raise PyrtError(f"{path}: not an image layout directory or archive file")
        magic = os.pread(fd, 4, 0)
        if magic.startswith(GZIP_MAGIC) or magic == ZSTD_MAGIC:
            raise PyrtError(f"{path}: a compressed archive: decompress it first (gunzip, unzstd)")
        try:
            source = Archive(path, fd)
        except tarstream.TarError as e:
            raise PyrtError(f"{path}: not an image archive: {e}") from None
        if not source.exists("index.json") and not source.exists("manifest.json"):
            raise PyrtError(f"{path}: not an image archive (neither index.json nor manifest.json inside)")
        return source
    except BaseException:
        os.close(fd)
        raise


# ----------------------------------------------------------------------------- manifests


class Layer:
    """One layer to apply: where its blob is, what it must hash to, how it is compressed."""

    def __init__(self, member: str, digest: str | None, size: int | None, diff_id: str) -> None:
        self.member, self.digest, self.size, self.diff_id = member, digest, size, diff_id

    @property
    def label(self) -> str:
        return (self.digest or self.diff_id)[:19]


class Image:
    def __init__(self, config: dict, layers: list[Layer]) -> None:
        self.config, self.layers = config, layers


def read_json(source: Source, member: str, digest: str | None, size: int | None, what: str) -> object:
    blob = source.open(member)
    if size is not None and blob.left != size:
        raise PyrtError(f"{what} {member}: {blob.left} bytes, its descriptor says {size}")
    if blob.left > MAX_JSON:
        raise PyrtError(f"{what} {member}: {blob.left} bytes (the limit is {MAX_JSON})")
    data = b"".join(iter(blob.read, b""))
    if digest is not None:
        alg, hexpart = split_digest(digest, what)
        if hashlib.new(alg, data).hexdigest() != hexpart:
            raise PyrtError(f"{what} {member}: digest mismatch (want {digest})")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise PyrtError(f"{what} {member}: invalid JSON: {e}") from None


def _field(obj: object, key: str, kind: type, where: str, default: object = None):
    value = obj.get(key, default) if isinstance(obj, dict) else None
    if not isinstance(value, kind):
        raise PyrtError(f"{where}: {key} is missing or not a {kind.__name__}")
    return value


def name_forms(name: str) -> set[str]:
    """The ways a user may name an image: `localhost/hello:latest`, `hello:latest`, `hello`, `latest`."""
    forms = {name}
    repo, colon, tag = name.rpartition(":")
    if not colon or "/" in tag:
        repo, tag = name, "latest"
    forms |= {tag, f"{repo}:{tag}"} | ({repo} if tag == "latest" else set())
    if repo.startswith("localhost/"):
        forms |= {f"{repo[10:]}:{tag}"} | ({repo[10:]} if tag == "latest" else set())
    return forms


def _choose(candidates: list[tuple[list[str], object]], ref: str | None, where: str) -> object:
    """The one candidate `ref` names (or the only one when no ref is given)."""
    shown = ", ".join(sorted({n for names, _ in candidates for n in names if not n.startswith(tuple(_HEX_LEN))}))
    if not candidates:
        raise PyrtError(f"{where}: no image inside")
    if ref is None:
        if len(candidates) > 1:
            raise PyrtError(f"{where}: {len(candidates)} images inside ({shown or 'unnamed'}): choose one with --ref")
        return candidates[0][1]
    found = [c for names, c in candidates if any(ref in name_forms(n) for n in names)]
    if len(found) != 1:
        raise PyrtError(f"{where}: {'no' if not found else 'more than one'} image named {ref!r} "
                        f"(images: {shown or 'unnamed'})")
    return found[0]


def select(source: Source, ref: str | None) -> Image:
    if source.exists("index.json"):
        return _select_oci(source, ref)
    return _select_docker(source, ref)


def _blob_member(digest: str, where: str) -> str:
    alg, hexpart = split_digest(digest, where)
    return f"blobs/{alg}/{hexpart}"


def _select_oci(source: Source, ref: str | None) -> Image:
    index = read_json(source, "index.json", None, None, "index")
    candidates = []
    for i, desc in enumerate(_field(index, "manifests", list, "index.json")):
        where = f"index.json: manifests[{i}]"
        ann = _field(desc, "annotations", dict, where, {})
        names = [n for n in (ann.get("org.opencontainers.image.ref.name"), ann.get("io.containerd.image.name"))
                 if isinstance(n, str) and n]
        digest = _field(desc, "digest", str, where)
        candidates.append((names + [digest], desc))
    desc = _choose(candidates, ref, source.path)
    for _ in range(4):  # an index may point to an index (one manifest per platform)
        digest = _field(desc, "digest", str, "descriptor")
        doc = read_json(source, _blob_member(digest, "descriptor"), digest, _field(desc, "size", int, "descriptor"),
                        "manifest")
        media = doc.get("mediaType") if isinstance(doc, dict) else None
        if media in INDEX_TYPES or (media is None and isinstance(doc, dict) and "manifests" in doc):
            desc = _platform(_field(doc, "manifests", list, f"index {digest}"), digest)
            continue
        break
    else:
        raise PyrtError(f"{source.path}: indexes nested too deep")
    if media not in (None, *MANIFEST_TYPES):
        raise PyrtError(f"manifest {digest}: media type {media!r} is not an image manifest")
    cdesc = _field(doc, "config", dict, f"manifest {digest}")
    cdigest = _field(cdesc, "digest", str, f"manifest {digest}: config")
    config = read_json(source, _blob_member(cdigest, "config"), cdigest, _field(cdesc, "size", int, "config"),
                       "config")
    diff_ids = _diff_ids(config, cdigest)
    layers = []
    descs = _field(doc, "layers", list, f"manifest {digest}")
    if len(descs) != len(diff_ids):
        raise PyrtError(f"manifest {digest}: {len(descs)} layers, but its config lists {len(diff_ids)} diff_ids")
    for i, (ldesc, diff_id) in enumerate(zip(descs, diff_ids, strict=True)):
        where = f"manifest {digest}: layers[{i}]"
        media = _field(ldesc, "mediaType", str, where)
        if "encrypted" in media or not media.startswith(("application/vnd.oci.image.layer.",
                                                          "application/vnd.docker.image.rootfs.")):
            raise PyrtError(f"{where}: media type {media!r} is not a layer pyrt can apply")
        ldigest = _field(ldesc, "digest", str, where)
        layers.append(Layer(_blob_member(ldigest, where), ldigest, _field(ldesc, "size", int, where), diff_id))
    return Image(config, layers)


def _platform(manifests: list, where: str) -> dict:
    arch = _ARCH.get(os.uname().machine, os.uname().machine)
    found = [m for m in manifests if isinstance(m, dict) and isinstance(m.get("platform"), dict)
             and m["platform"].get("os") == "linux" and m["platform"].get("architecture") == arch]
    if not found:
        raise PyrtError(f"index {where}: no manifest for linux/{arch}")
    return found[0]


def _diff_ids(config: object, where: str) -> list[str]:
    if not isinstance(config, dict):
        raise PyrtError(f"config {where}: not a JSON object")
    if config.get("os", "linux") != "linux":
        raise PyrtError(f"config {where}: an image for {config.get('os')!r}, not linux")
    diff_ids = _field(_field(config, "rootfs", dict, f"config {where}"), "diff_ids", list, f"config {where}: rootfs")
    for d in diff_ids:
        split_digest(d, f"config {where}: rootfs.diff_ids")
    return diff_ids


def _select_docker(source: Source, ref: str | None) -> Image:
    manifest = read_json(source, "manifest.json", None, None, "manifest")
    if not isinstance(manifest, list):
        raise PyrtError(f"{source.path}: manifest.json is not a list")
    candidates = [(list(_field(m, "RepoTags", list, f"manifest.json[{i}]", []) or []), m)
                  for i, m in enumerate(manifest)]
    chosen = _choose(candidates, ref, source.path)
    config_name = _field(chosen, "Config", str, "manifest.json")
    stem = posixpath.basename(config_name).removesuffix(".json")
    # docker names the config by its digest (the image id): check it when it does
    cdigest = f"sha256:{stem}" if len(stem) == 64 and all(c in "0123456789abcdef" for c in stem) else None
    config = read_json(source, config_name, cdigest, None, "config")
    diff_ids = _diff_ids(config, config_name)
    paths = _field(chosen, "Layers", list, "manifest.json")
    if len(paths) != len(diff_ids):
        raise PyrtError(f"manifest.json: {len(paths)} layers, but the config lists {len(diff_ids)} diff_ids")
    if not all(isinstance(p, str) for p in paths):
        raise PyrtError("manifest.json: Layers must be file names")
    return Image(config, [Layer(p, None, None, d) for p, d in zip(paths, diff_ids, strict=True)])


# ----------------------------------------------------------------------------- layer streams


class LayerStream:
    """A layer's decompressed bytes, chunk by chunk, hashed on the way: the blob as stored (its
    digest) and the tar it decompresses to (its diff_id). `verify()` after the last chunk."""

    def __init__(self, source: Source, layer: Layer, progress: Callable[[int], None] | None = None) -> None:
        self.layer, self.progress = layer, progress
        self.blob = source.open(layer.member)
        self.total = self.blob.left
        if layer.size is not None and self.blob.left != layer.size:
            raise PyrtError(f"{self.blob.left} bytes, its descriptor says {layer.size}")
        self._blob_hash = hashlib.new(split_digest(layer.digest, "layer")[0]) if layer.digest else None
        # an uncompressed blob is its own diff_id: hash it once
        self._tar_hash = None if layer.digest == layer.diff_id else hashlib.new(split_digest(layer.diff_id,
                                                                                            "diff_id")[0])
        self._errors: tuple[type[BaseException], ...] = (EOFError, OSError, zlib.error)
        magic = self.blob.peek(4)
        if magic.startswith(GZIP_MAGIC):
            self.compression = "gzip"
            self._decoded = gzip.GzipFile(fileobj=self, mode="rb")
        elif magic == ZSTD_MAGIC:
            self.compression = "zstd"
            try:
                import zstandard
            except ImportError:
                raise PyrtError("zstd-compressed: install the Python package zstandard "
                                "(pip install 'pyrt[zstd]')") from None
            self._errors += (zstandard.ZstdError,)
            self._decoded = zstandard.ZstdDecompressor().stream_reader(self, read_size=CHUNK, read_across_frames=True)
        else:
            self.compression = "none"
            self._decoded = None

    def read(self, n: int = CHUNK) -> bytes:
        """The stored (compressed) bytes: what the decompressor reads."""
        data = self.blob.read(n)
        if self._blob_hash is not None:
            self._blob_hash.update(data)
        if self.progress is not None:
            self.progress(len(data))
        return data

    def chunk(self) -> bytes:
        """The next chunk of the uncompressed tar (b"" at its end)."""
        try:
            data = self.read() if self._decoded is None else self._decoded.read(CHUNK)
        except PyrtError:
            raise
        except self._errors as e:
            raise PyrtError(f"corrupt {self.compression} data: {e}") from None
        if self._tar_hash is not None:
            self._tar_hash.update(data)
        return data

    def verify(self) -> None:
        if self.blob.left:
            raise PyrtError(f"{self.blob.left} bytes after the end of the compressed data")
        if self._blob_hash is not None:
            want = split_digest(self.layer.digest, "layer")[1]
            if self._blob_hash.hexdigest() != want:
                raise PyrtError(f"digest mismatch: the blob is "
                                f"{self._blob_hash.name}:{self._blob_hash.hexdigest()}")
        want = split_digest(self.layer.diff_id, "layer diff_id")[1]
        if self._tar_hash is not None and self._tar_hash.hexdigest() != want:
            raise PyrtError(f"its uncompressed content does not match the config's "
                            f"diff_id {self.layer.diff_id}")
