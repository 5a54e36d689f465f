"""Hostile images: `pyrt unpack` refuses them with one line, writes nothing outside the bundle
and leaves no partial bundle (nor its temporary directory) behind.

Each case is generated here. Beside the bundle sits `outside/` with a canary file: the attacks
aim at it (by `..`, absolute paths, symlinks planted by an earlier entry or layer, hard links),
and it must be exactly as it was afterwards.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BINARY
from images import Layer, header, sha256, tree, write_layout

pytestmark = pytest.mark.pyrt_only


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir(mode=0o755)
    (out / "canary").write_text("safe")
    (out / "canary").chmod(0o644)
    return out


def unpack(image: Path, bundle: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([BINARY, "unpack", str(image), str(bundle)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def refused(tmp_path: Path, outside: Path, layers: list[tuple[bytes, str]], word: str, **layout) -> str:
    """Unpack; assert a one-line refusal containing `word`, no bundle, nothing else changed."""
    before = tree(outside)
    image = write_layout(tmp_path / "image", layers, **layout)
    start = time.monotonic()
    r = unpack(image, tmp_path / "bundle")
    assert r.returncode == 1, f"not refused: {r.stderr}"
    assert word in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image", "outside"], "partial bundle left"
    assert tree(outside) == before
    assert time.monotonic() - start < 30
    return r.stderr


def tar(*entries) -> list[tuple[bytes, str]]:
    """One gzip layer per Layer given."""
    return [(e.bytes(), "gzip") for e in entries]


DOTDOT, ABSOLUTE, SYMLINK = "leaves the root", "is absolute", "is a symlink (or goes through one)"
ATTACKS = {  # name: (layers aimed at the directory `o`, the refusal's words)
    "dotdot": (lambda o: tar(Layer().file("../outside/pwned", b"x")), DOTDOT),
    "dotdot-deep": (lambda o: tar(Layer().dir("a").file("a/../../outside/pwned", b"x")), DOTDOT),
    "absolute": (lambda o: tar(Layer().file(f"{o}/pwned", b"x")), ABSOLUTE),
    "symlinked-parent": (lambda o: tar(Layer().symlink("esc", str(o)).file("esc/pwned", b"x")), SYMLINK),
    "symlinked-parent-relative": (lambda o: tar(Layer().symlink("esc", "../outside").file("esc/pwned", b"x")),
                                  SYMLINK),
    "symlinked-parent-next-layer": (lambda o: tar(Layer().symlink("esc", str(o)), Layer().file("esc/pwned", b"x")),
                                    SYMLINK),
    "symlinked-grandparent": (lambda o: tar(Layer().symlink("esc", str(o.parent)).file("esc/outside/pwned", b"x")),
                              SYMLINK),
    "symlinked-parent-dir-entry": (lambda o: tar(Layer().symlink("esc", str(o)).dir("esc/sub", 0o777)), SYMLINK),
    "hardlink-dotdot": (lambda o: tar(Layer().hardlink("h", "../outside/canary")), DOTDOT),
    "hardlink-absolute": (lambda o: tar(Layer().hardlink("h", f"{o}/canary")), ABSOLUTE),
    "hardlink-through-symlink": (lambda o: tar(Layer().symlink("esc", str(o)).hardlink("h", "esc/canary")), SYMLINK),
    "hardlink-through-symlink-next-layer": (
        lambda o: tar(Layer().symlink("esc", str(o)), Layer().hardlink("h", "esc/canary")), SYMLINK),
    "whiteout-dotdot": (lambda o: tar(Layer().file("../outside/.wh.canary")), DOTDOT),
    "whiteout-of-dotdot": (lambda o: tar(Layer().dir("d").file("d/.wh...")), "names no file"),
    "whiteout-of-dot": (lambda o: tar(Layer().dir("d").file("d/.wh..")), "names no file"),
    "whiteout-through-symlink": (lambda o: tar(Layer().symlink("esc", str(o)), Layer().whiteout("esc/canary")),
                                 SYMLINK),
    "opaque-through-symlink": (lambda o: tar(Layer().symlink("esc", str(o)), Layer().opaque("esc")), SYMLINK),
    "root-replaced": (lambda o: tar(Layer().symlink(".", str(o))), "replaces the root"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_escapes_are_refused(tmp_path, outside, attack):
    layers, word = ATTACKS[attack]
    refused(tmp_path, outside, layers(outside), word)


# ----------------------------------------------------------------------------- malformed archives


def raw_layer(*blocks: bytes) -> list[tuple[bytes, str]]:
    return [(b"".join(blocks) + b"\0" * 1024, "gzip")]


def test_huge_pax_header_is_refused_without_reading_it(tmp_path, outside):
    # claims 2 GiB of pax records: refused from the header alone (memory stays bounded)
    refused(tmp_path, outside, raw_layer(header("pax", size=2 << 30, flag=b"x")),
            "extended headers of 2147483648 bytes")


def test_many_pax_headers_are_refused(tmp_path, outside):
    # 64 KiB records, again and again before one member: bounded in total, not per header
    records = b"".join(b"%d SCHILY.xattr.user.k%03d=%s\n" % (65536, i, b"v" * (65536 - 30)) for i in range(8))
    blocks = [header("pax", size=len(records), flag=b"x"), records.ljust(-(-len(records) // 512) * 512, b"\0")]
    refused(tmp_path, outside, raw_layer(*(blocks * 4), header("f")),
            "extended headers of 1572864 bytes (the limit is 1048576)")


def test_huge_gnu_long_name_is_refused(tmp_path, outside):
    refused(tmp_path, outside, raw_layer(header("././@LongLink", size=1 << 30, flag=b"L")), "extended header")


def test_huge_size_field_is_truncation(tmp_path, outside):
    # base-256 size of 2**80 bytes: streamed until the data ends, then refused
    field = b"\x80" + (1 << 80).to_bytes(11, "big")
    refused(tmp_path, outside, raw_layer(header("big", size_field=field), b"x" * 512), "truncated")


def test_long_name_over_path_max_is_refused(tmp_path, outside):
    refused(tmp_path, outside, tar(Layer().file("d/" + "x" * 5000, b"x")), "the limit is 4096")


def test_malformed_pax_is_refused(tmp_path, outside):
    records = b"99999 path=x\n"
    refused(tmp_path, outside, raw_layer(header("pax", size=len(records), flag=b"x"), records.ljust(512, b"\0"),
                                         header("f")), "malformed pax header")


def test_bad_checksum_is_refused(tmp_path, outside):
    block = bytearray(header("f"))
    block[0] ^= 1
    refused(tmp_path, outside, raw_layer(bytes(block)), "bad tar header checksum")


@pytest.mark.parametrize("flag, word", [(b"S", "sparse file"), (b"V", "a volume label"),
                                         (b"Z", "an entry of type b'Z'")])
def test_unsupported_types_are_refused(tmp_path, outside, flag, word):
    refused(tmp_path, outside, raw_layer(header("s", flag=flag)), word)


def test_truncated_tar_is_refused(tmp_path, outside):
    data = Layer().file("a", b"x" * 100_000).bytes()[:50_000]
    refused(tmp_path, outside, [(data, "gzip")], "truncated")


def test_truncated_gzip_is_refused(tmp_path, outside):
    blob = gzip.compress(Layer().file("a", b"x" * 100_000).bytes())[:-100]
    _fake_blob(tmp_path, outside, blob, "corrupt gzip data")


def test_corrupt_gzip_is_refused(tmp_path, outside):
    blob = bytearray(gzip.compress(Layer().file("a", bytes(range(256)) * 400).bytes()))
    blob[len(blob) // 2] ^= 0xFF
    _fake_blob(tmp_path, outside, bytes(blob), "corrupt gzip data")


def _fake_blob(tmp_path: Path, outside: Path, blob: bytes, word: str) -> None:
    """A layer whose blob is `blob` (digest and size made to match: only its contents are bad)."""
    def swap(manifest: dict) -> None:
        desc = manifest["layers"][0]
        desc.update(digest=sha256(blob), size=len(blob))
        (tmp_path / "image" / "blobs" / "sha256" / sha256(blob)[7:]).write_bytes(blob)

    refused(tmp_path, outside, tar(Layer().file("placeholder")), word, tamper=swap)


def test_wrong_digest_is_refused(tmp_path, outside):
    def corrupt(manifest: dict) -> None:  # the blob's bytes change, its name (digest) stays
        path = tmp_path / "image" / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]
        data = bytearray(path.read_bytes())
        data[600] ^= 1  # inside the file's data: still a valid tar
        path.write_bytes(bytes(data))

    refused(tmp_path, outside, [(Layer().file("a", b"x" * 1000).bytes(), "none")], "digest mismatch", tamper=corrupt)


def test_wrong_size_is_refused(tmp_path, outside):
    refused(tmp_path, outside, tar(Layer().file("a")), "its descriptor says",
            tamper=lambda m: m["layers"][0].update(size=m["layers"][0]["size"] + 1))


def test_wrong_diff_id_is_refused(tmp_path, outside):
    refused(tmp_path, outside, tar(Layer().file("a")), "does not match the config's diff_id",
            fake_diff_ids=[sha256(b"something else")])


def test_digest_naming_a_path_is_refused(tmp_path, outside):
    refused(tmp_path, outside, tar(Layer().file("a")), "invalid digest",
            tamper=lambda m: m["layers"][0].update(digest="sha256:../../../../outside/canary"))


def test_huge_manifest_blob_is_refused(tmp_path, outside):
    image = write_layout(tmp_path / "image", tar(Layer().file("a")))
    index = json.loads((image / "index.json").read_text())
    blob = b" " * (9 << 20)
    (image / "blobs" / "sha256" / sha256(blob)[7:]).write_bytes(blob)
    index["manifests"][0].update(digest=sha256(blob), size=len(blob))
    (image / "index.json").write_text(json.dumps(index))
    r = unpack(image, tmp_path / "bundle")
    assert r.returncode == 1 and "the limit is 8388608" in r.stderr, r.stderr
    assert not (tmp_path / "bundle").exists()


# ----------------------------------------------------------------------------- replaced, not written through


def test_existing_names_are_replaced_never_written_through(tmp_path, outside):
    # an earlier layer plants a symlink to the host, a FIFO (opening it for writing would hang),
    # a device node and a hard link; the later layer's entries of the same names replace them
    first = (Layer().dir("etc").file("etc/passwd", b"root:x:0:0::/:/bin/sh\n").symlink("link", f"{outside}/canary")
             .device("fifo", "fifo").device("null", "char", 1, 3).hardlink("hard", "etc/passwd")
             .symlink("dirlink", str(outside)))
    second = (Layer().file("link", b"pwned", mode=0o777).file("fifo", b"data").file("null", b"data")
              .file("hard", b"pwned").dir("dirlink", 0o777))
    image = write_layout(tmp_path / "image", tar(first, second))
    before = tree(outside)
    r = unpack(image, tmp_path / "bundle", timeout=30)
    assert r.returncode == 0, r.stderr
    root = tmp_path / "bundle" / "rootfs"
    for name in ("link", "fifo", "null", "hard"):
        assert not (root / name).is_symlink() and (root / name).is_file(), name
    assert (root / "link").read_bytes() == b"pwned" and (root / "etc" / "passwd").read_bytes().startswith(b"root")
    assert (root / "dirlink").is_dir() and not (root / "dirlink").is_symlink()
    assert tree(outside) == before
