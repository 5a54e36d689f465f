"""pyrt with many containers (issue 14, goal 4): parallel creates, and `list` / `state` as
containers pile up. Not a test: numbers for the README.

1. A lone `create` (busybox, `sleep`), then P creates started at once: each one's wall time
   beside the lone one's.
2. `list` and `state` of one container, with 1, then N/10, then N containers in the root.
3. create + delete cycles: the first and the last of C cycles, as the state dir, the cgroup
   tree and the address book see their entries come and go.

    python bench/scale.py [--parallel P] [--many N] [--cycles C] [--pyrt PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOTFS = os.path.join(REPO, "bundles", "busybox", "rootfs")


def bundle(tmp: str) -> str:
    sys.path.insert(0, REPO)
    from pyrt import defaults

    cfg = defaults.config()
    cfg["process"].update(terminal=False, args=["sleep", "1d"])
    cfg["root"] = {"path": ROOTFS, "readonly": True}
    path = os.path.join(tmp, "bundle")
    os.makedirs(path)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f)
    return path


class Pyrt:
    def __init__(self, path: str, root: str, tmp: str) -> None:
        self.path, self.root, self.log = path, root, os.path.join(tmp, "log")

    def start(self, *args: str) -> subprocess.Popen:
        """stderr goes to a file, not a pipe: a created container keeps what it inherited open."""
        with open(self.log, "ab") as log:
            return subprocess.Popen([self.path, "--root", self.root, *args], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=log)

    def check(self, proc: subprocess.Popen, args: list[str]) -> None:
        if proc.wait():
            with open(self.log) as f:
                sys.exit(f"pyrt {' '.join(args)} failed: {f.read()[-500:]}")

    def timed(self, *args: str) -> float:
        """Wall ms of one command; fails loudly."""
        t0 = time.perf_counter()
        self.check(self.start(*args), list(args))
        return (time.perf_counter() - t0) * 1000

    def parallel(self, argvs: list[list[str]]) -> list[float]:
        """Start every command at once; each one's wall ms (from the start of all of them)."""
        t0 = time.perf_counter()
        procs = [self.start(*argv) for argv in argvs]
        walls = []
        for argv, proc in zip(argvs, procs, strict=True):
            self.check(proc, argv)
            walls.append((time.perf_counter() - t0) * 1000)
        return walls

    def delete_all(self, ids: list[str], batch: int = 20) -> None:
        for i in range(0, len(ids), batch):
            self.parallel([["delete", "--force", cid] for cid in ids[i:i + batch]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parallel", type=int, default=100)
    ap.add_argument("--many", type=int, default=1000)
    ap.add_argument("--cycles", type=int, default=1000)
    ap.add_argument("--pyrt", default=shutil.which("pyrt") or "/usr/local/bin/pyrt")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pyrt-scale-")
    pyrt = Pyrt(args.pyrt, os.path.join(tmp, "root"), tmp)
    path = bundle(tmp)
    made: list[str] = []
    med = statistics.median
    try:
        lone = []
        for i in range(5):
            lone.append(pyrt.timed("create", "-b", path, f"lone{i}"))
            pyrt.timed("delete", "--force", f"lone{i}")
        ids = [f"p{i}" for i in range(args.parallel)]
        walls = pyrt.parallel([["create", "-b", path, cid] for cid in ids])
        made += ids
        print(f"lone create {med(lone):.1f} ms; {args.parallel} at once: each done after median {med(walls):.0f} ms, "
              f"last {max(walls):.0f} ms ({max(walls) / med(lone):.1f} x the lone create; the machine has "
              f"{os.cpu_count()} CPUs)")
        pyrt.delete_all(made)
        made = []

        print(f"\n{'containers':>10} {'list ms':>9} {'state ms':>9}   (medians of 5)")
        for target in (1, args.many // 10, args.many):
            while len(made) < target:
                batch = [f"m{i}" for i in range(len(made), min(target, len(made) + 20))]
                pyrt.parallel([["create", "-b", path, cid] for cid in batch])
                made += batch
            ls = med(pyrt.timed("list") for _ in range(5))
            st = med(pyrt.timed("state", made[0]) for _ in range(5))
            print(f"{len(made):10} {ls:9.1f} {st:9.1f}")
        pyrt.delete_all(made)
        made = []

        cycle = []
        for i in range(args.cycles):
            t = pyrt.timed("create", "-b", path, f"c{i}") + pyrt.timed("delete", "--force", f"c{i}")
            cycle.append(t)
        k = max(1, args.cycles // 10)
        print(f"\ncreate + delete, {args.cycles} cycles: first {k} median {med(cycle[:k]):.1f} ms, "
              f"last {k} median {med(cycle[-k:]):.1f} ms")
    finally:
        pyrt.delete_all(made)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
