"""`pyrt unpack` beside `umoci unpack` on a ~100 MB image (a benchmark, not a test).

The image is made here from the host's own files (Python's standard library, C headers, shared
libraries: many small files and some large ones, like a distribution image), in up to three gzip
layers (level 6, podman's default), as an OCI image layout. Each round unpacks it with both
tools, interleaved, into fresh bundles on the same filesystem; the medians and their ratio are
printed. Run as root: python3 bench/unpack.py [--pyrt BIN] [--rounds N] [--mb SIZE]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

SOURCES = ["/usr/lib/python3", "/usr/include", "/usr/lib/x86_64-linux-gnu", "/usr/share"]


def layer(files: list[Path]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            tar.add(path, arcname=str(path).lstrip("/"), recursive=False)
    return buf.getvalue()


def pick(total: int) -> list[list[Path]]:
    """Regular files, directories and symlinks from SOURCES up to `total` bytes, in three groups."""
    groups: list[list[Path]] = [[] for _ in SOURCES]
    size = 0
    for i, top in enumerate(SOURCES):
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            groups[i].append(Path(dirpath))
            for name in sorted(filenames):
                path = Path(dirpath, name)
                if path.is_symlink() or path.is_file():
                    groups[i].append(path)
                    size += path.lstat().st_size
                if size >= total:
                    return [g for g in groups if g][:3]
    return [g for g in groups if g][:3]


def make_layout(root: Path, total: int) -> int:
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": "sha256:" + digest, "size": len(data)}

    descs, diff_ids, raw = [], [], 0
    for files in pick(total):
        tar = layer(files)
        raw += len(tar)
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                      **put(gzip.compress(tar, compresslevel=6, mtime=0))})
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(json.dumps(config).encode())},
                "layers": descs}
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                **put(json.dumps(manifest).encode()),
                                                "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}
    (root / "index.json").write_text(json.dumps(index))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return raw


def timed(cmd: list[str], bundle: Path) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one run; the bundle is removed afterwards."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    shutil.rmtree(bundle)
    return elapsed, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pyrt", default=shutil.which("pyrt") or "/usr/local/bin/pyrt")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mb", type=int, default=100, help="uncompressed size of the image, in MB")
    args = ap.parse_args()
    if not shutil.which("umoci"):
        sys.exit("umoci is not installed (apt-get install umoci)")
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        work = Path(tmp)
        raw = make_layout(work / "image", args.mb * 10**6)
        packed = sum(p.stat().st_size for p in (work / "image" / "blobs" / "sha256").iterdir())
        print(f"image: {raw / 1e6:.0f} MB of layers ({packed / 1e6:.0f} MB gzip), "
              f"{args.rounds} rounds, medians")
        times: dict[str, list[tuple[float, float]]] = {"umoci": [], "pyrt": []}
        for _ in range(args.rounds):
            b = work / "umoci-bundle"
            times["umoci"].append(timed(["umoci", "unpack", "--image", f"{work / 'image'}:bench", str(b)], b))
            b = work / "pyrt-bundle"
            times["pyrt"].append(timed([args.pyrt, "unpack", str(work / "image"), str(b)], b))
        print(f"{'':14}{'wall':>8}{'CPU':>8}")
        med = {k: [statistics.median(t[i] for t in v) for i in (0, 1)] for k, v in times.items()}
        for name in ("umoci", "pyrt"):
            print(f"{name + ' unpack':14}{med[name][0]:7.2f}s{med[name][1]:7.2f}s")
        print(f"{'pyrt/umoci':14}{med['pyrt'][0] / med['umoci'][0]:8.2f}{med['pyrt'][1] / med['umoci'][1]:8.2f}")


if __name__ == "__main__":
    main()
