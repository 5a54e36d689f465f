"""pyrt beside runc on the busybox bundle with /bin/true: run, create+start+delete, state.

Interleaved rounds (the order alternates), medians of wall time and CPU time (user+sys of the
runtime and everything it waited for), the pyrt/runc ratios, and peak RSS. Not a test: numbers
for the README.

    python bench/bench.py [--rounds N] [--pyrt PATH] [--runc PATH]
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


def config() -> dict:
    sys.path.insert(0, REPO)
    from pyrt import defaults

    cfg = defaults.config()
    cfg["process"].update(terminal=False, args=["/bin/true"])
    cfg["root"] = {"path": ROOTFS, "readonly": True}
    return cfg


def spawn(argv: list[str]) -> tuple[float, float, int]:
    """Run argv with stdio on /dev/null; (wall s, cpu s, exit status)."""
    null = os.open(os.devnull, os.O_RDWR)
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[
        (os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1), (os.POSIX_SPAWN_DUP2, null, 2)])
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    os.close(null)
    return wall, ru.ru_utime + ru.ru_stime, os.waitstatus_to_exitcode(status)


def peak_rss(peakrss: str, argv: list[str]) -> int:
    """Peak RSS (KiB) of one command, measured by bench/peakrss.c (see there why not here)."""
    import subprocess

    out = subprocess.run([peakrss, *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, check=True).stdout
    return int(out.split()[-1])


class Runtime:
    def __init__(self, name: str, path: str, bundle: str) -> None:
        self.name, self.path, self.bundle = name, path, bundle
        self.root = tempfile.mkdtemp(prefix=f"bench-{name}-")
        self.samples: dict[str, list[tuple[float, float]]] = {"run": [], "create+start+delete": [], "state": []}
        self.n = 0

    def cmd(self, *args: str) -> list[str]:
        return [self.path, "--root", self.root, *args]

    def _do(self, *args: str) -> tuple[float, float]:
        wall, cpu, code = spawn(self.cmd(*args))
        if code != 0 and args[0] not in ("delete",):
            raise SystemExit(f"{self.name} {' '.join(args)} failed with {code}")
        return wall, cpu

    def round(self, state_id: str) -> None:
        self.n += 1
        cid = f"bench{self.n}"
        self.samples["run"].append(self._do("run", "--bundle", self.bundle, cid))
        cid += "c"
        parts = [self._do("create", "--bundle", self.bundle, cid), self._do("start", cid),
                 self._do("delete", "--force", cid)]
        self.samples["create+start+delete"].append((sum(p[0] for p in parts), sum(p[1] for p in parts)))
        self.samples["state"].append(self._do("state", state_id))

    def close(self) -> None:
        spawn(self.cmd("delete", "--force", "statebench"))
        shutil.rmtree(self.root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--pyrt", default=shutil.which("pyrt") or "/usr/local/bin/pyrt")
    ap.add_argument("--runc", default=shutil.which("runc") or "/usr/sbin/runc")
    args = ap.parse_args()
    if not os.path.exists(os.path.join(ROOTFS, "bin", "busybox")):
        raise SystemExit("build the busybox bundle first: make bundles")

    bundle = tempfile.mkdtemp(prefix="bench-bundle-")
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config(), f)
    runtimes = [Runtime("pyrt", args.pyrt, bundle), Runtime("runc", args.runc, bundle)]
    try:
        for rt in runtimes:
            rt._do("create", "--bundle", bundle, "statebench")
            rt.round("statebench")  # warm-up, not counted
            for samples in rt.samples.values():
                samples.clear()
        for i in range(args.rounds):
            for rt in runtimes if i % 2 == 0 else reversed(runtimes):
                rt.round("statebench")
        peakrss = os.path.join(tempfile.mkdtemp(prefix="bench-peakrss-"), "peakrss")
        subprocess.run(["cc", "-O2", "-o", peakrss, os.path.join(REPO, "bench", "peakrss.c")], check=True)
        rss = {rt.name: max(peak_rss(peakrss, rt.cmd("run", "--bundle", bundle, f"rss{i}")) for i in range(5))
               for rt in runtimes}
        shutil.rmtree(os.path.dirname(peakrss))
    finally:
        for rt in runtimes:
            rt.close()
        shutil.rmtree(bundle, ignore_errors=True)

    pyrt, runc = runtimes
    print(f"{args.rounds} interleaved rounds, busybox bundle, /bin/true; medians in ms")
    print(f"{'':22}{'pyrt wall':>10}{'runc wall':>10}{'ratio':>7}{'pyrt cpu':>10}{'runc cpu':>10}{'ratio':>7}")
    for op in pyrt.samples:
        pw, pc = (statistics.median(s[k] for s in pyrt.samples[op]) * 1000 for k in (0, 1))
        rw, rc = (statistics.median(s[k] for s in runc.samples[op]) * 1000 for k in (0, 1))
        print(f"{op:22}{pw:10.1f}{rw:10.1f}{pw / rw:7.2f}{pc:10.1f}{rc:10.1f}{pc / rc:7.2f}")
    print(f"peak RSS of `run`: pyrt {rss['pyrt'] / 1024:.1f} MiB, runc {rss['runc'] / 1024:.1f} MiB")


if __name__ == "__main__":
    sys.exit(main())
