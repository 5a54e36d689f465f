"""`exec /bin/true` into a running container: pyrt beside runc, interleaved.

One busybox container per runtime runs `sleep`; each round execs /bin/true into both (the
order alternates). Prints medians of wall and CPU time (user+sys of the runtime and what it
waited for) and the pyrt/runc ratios. Target: pyrt <= 1.0x runc. Not a test.

    python bench/exec_bench.py [--rounds N] [--pyrt PATH] [--runc PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

from bench import config, spawn


class Runtime:
    def __init__(self, name: str, path: str, bundle: str) -> None:
        self.name, self.path, self.bundle = name, path, bundle
        self.root = tempfile.mkdtemp(prefix=f"bench-exec-{name}-")
        self.samples: list[tuple[float, float]] = []

    def cmd(self, *args: str) -> list[str]:
        return [self.path, "--root", self.root, *args]

    def _do(self, *args: str) -> tuple[float, float]:
        wall, cpu, code = spawn(self.cmd(*args))
        if code != 0:
            raise SystemExit(f"{self.name} {' '.join(args)} failed with {code}")
        return wall, cpu

    def start(self) -> None:
        self._do("run", "--detach", "--bundle", self.bundle, "execbench")

    def round(self) -> None:
        self.samples.append(self._do("exec", "execbench", "/bin/true"))

    def close(self) -> None:
        spawn(self.cmd("delete", "--force", "execbench"))
        shutil.rmtree(self.root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--pyrt", default=shutil.which("pyrt") or "/usr/local/bin/pyrt")
    ap.add_argument("--runc", default=shutil.which("runc") or "/usr/sbin/runc")
    args = ap.parse_args()

    cfg = config()
    cfg["process"]["args"] = ["sleep", "100000"]
    bundle = tempfile.mkdtemp(prefix="bench-exec-bundle-")
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    runtimes = [Runtime("pyrt", args.pyrt, bundle), Runtime("runc", args.runc, bundle)]
    try:
        for rt in runtimes:
            rt.start()
            rt.round()  # warm-up, not counted
            rt.samples.clear()
        for i in range(args.rounds):
            for rt in runtimes if i % 2 == 0 else reversed(runtimes):
                rt.round()
    finally:
        for rt in runtimes:
            rt.close()
        shutil.rmtree(bundle, ignore_errors=True)

    pyrt, runc = runtimes
    pw, pc = (statistics.median(s[k] for s in pyrt.samples) * 1000 for k in (0, 1))
    rw, rc = (statistics.median(s[k] for s in runc.samples) * 1000 for k in (0, 1))
    print(f"{args.rounds} interleaved rounds, exec /bin/true into a running busybox container; medians in ms")
    print(f"{'':10}{'pyrt wall':>10}{'runc wall':>10}{'ratio':>7}{'pyrt cpu':>10}{'runc cpu':>10}{'ratio':>7}")
    print(f"{'exec':10}{pw:10.1f}{rw:10.1f}{pw / rw:7.2f}{pc:10.1f}{rc:10.1f}{pc / rc:7.2f}")


if __name__ == "__main__":
    sys.exit(main())
