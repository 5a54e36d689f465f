"""What cgroups cost: memory the runtime charges to the container, and start latency with limits.

    python bench/cgroups.py memory  [--rounds N]   in a pure cgroup v2 system (the VM:
                                                   tools/run-in-vm.sh python3 bench/cgroups.py memory)
    python bench/cgroups.py latency [--rounds N]   on the host

memory: memory.peak of a busybox container whose only command is `cat
/sys/fs/cgroup/memory.peak` (cgroup namespace, cgroup2 mounted), for pyrt, runc and crun side
by side (runc PR #5288 measured runc 1.5 at 4.7-5.4 MB, crun at 0.5-0.8 MB); then whether a
container with memory.max = 2M starts and runs.

latency: `run` of /bin/true with memory + cpu + pids limits and without, interleaved (medians,
pyrt and runc), and pyrt's own cgroup work in-process (Cgroup.create + destroy), which is what
the limits add. Not a test: numbers for the README.
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
LIMITS = {"memory": {"limit": 64 << 20}, "cpu": {"shares": 512, "quota": 50000, "period": 100000},
          "pids": {"limit": 100}}


def config(args: list[str], resources: dict | None = None, rootfs: str = ROOTFS) -> dict:
    sys.path.insert(0, REPO)
    from pyrt import defaults

    cfg = defaults.config()  # has a cgroup namespace and a read-only cgroup mount
    cfg["ociVersion"] = "1.0.2"  # what crun 1.8 accepts
    cfg["process"].update(terminal=False, args=args)
    cfg["root"] = {"path": rootfs, "readonly": True}
    if resources is not None:
        cfg["linux"]["resources"] = {**cfg["linux"]["resources"], **resources}
    return cfg


def bundle(cfg: dict) -> str:
    path = tempfile.mkdtemp(prefix="bench-cg-")
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f)
    return path


def runtimes() -> dict[str, str]:
    found = {name: shutil.which(name) or path for name, path in
             (("pyrt", "/usr/local/bin/pyrt"), ("runc", "/usr/sbin/runc"), ("crun", "/usr/bin/crun"))}
    return {name: path for name, path in found.items() if os.path.exists(path)}


def run(path: str, root: str, bundle_dir: str, cid: str) -> subprocess.CompletedProcess:
    return subprocess.run([path, "--root", root, "run", "--bundle", bundle_dir, cid], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300)


def memory(rounds: int) -> None:
    with open("/sys/fs/cgroup/cgroup.controllers") as f:
        v2_memory = "memory" in f.read().split()
    if not v2_memory or os.path.exists("/sys/fs/cgroup/cgroup.clone_children"):
        raise SystemExit("needs a pure cgroup v2 system with memory.peak (run it in tools/run-in-vm.sh)")
    # The rootfs on tmpfs: its pages are charged to whoever wrote them (us), so the container is
    # charged only for what the runtime does, not for reading busybox from a (9p) disk.
    rootfs = os.path.join(tempfile.mkdtemp(prefix="bench-cg-rootfs-", dir="/dev/shm"), "rootfs")
    shutil.copytree(ROOTFS, rootfs, symlinks=True)
    plain = bundle(config(["cat", "/sys/fs/cgroup/memory.peak"], rootfs=rootfs))
    tiny = bundle(config(["sh", "-c", "cat /sys/fs/cgroup/memory.max; echo ran"], {"memory": {"limit": 2 << 20}},
                         rootfs))
    rts = runtimes()
    peaks: dict[str, list[int]] = {name: [] for name in rts}
    tiny_ok: dict[str, str] = {}
    root = tempfile.mkdtemp(prefix="bench-cg-root-")
    try:
        for i in range(rounds):
            for name, path in (rts.items() if i % 2 == 0 else reversed(rts.items())):
                r = run(path, f"{root}/{name}", plain, f"peak{i}")
                if r.returncode != 0 or not r.stdout.strip().isdigit():
                    peaks.pop(name, None)
                    tiny_ok[name] = f"fails: {(r.stderr.strip().splitlines() or ['?'])[-1][:80]}"
                    continue
                if name in peaks:
                    peaks[name].append(int(r.stdout))
        for name, path in rts.items():
            if name not in tiny_ok:
                r = run(path, f"{root}/{name}", tiny, "tiny")
                tiny_ok[name] = "starts and runs" if r.returncode == 0 and "ran" in r.stdout else \
                    f"fails ({r.returncode}): {(r.stderr.strip().splitlines() or ['?'])[-1][:80]}"
    finally:
        shutil.rmtree(root, ignore_errors=True)
        for b in (plain, tiny, os.path.dirname(rootfs)):
            shutil.rmtree(b, ignore_errors=True)
    print(f"memory.peak of `cat /sys/fs/cgroup/memory.peak` (busybox on tmpfs, cgroupns), {rounds} interleaved "
          "rounds, MB")
    print(f"{'':8}{'min':>8}{'median':>8}{'max':>8}   memory.max=2M")
    for name in rts:
        if peaks.get(name):
            p = [v / 1e6 for v in peaks[name]]
            print(f"{name:8}{min(p):8.2f}{statistics.median(p):8.2f}{max(p):8.2f}   {tiny_ok[name]}")
        else:
            print(f"{name:8}{'-':>8}{'-':>8}{'-':>8}   {tiny_ok.get(name, '')}")


def latency(rounds: int) -> None:
    sys.path.insert(0, REPO)
    from pyrt import cgroups

    rts = {k: v for k, v in runtimes().items() if k in ("pyrt", "runc")}
    bundles = {"no limits": bundle(config(["true"])), "limits": bundle(config(["true"], LIMITS))}
    wall: dict[tuple[str, str], list[float]] = {(n, b): [] for n in rts for b in bundles}
    root = tempfile.mkdtemp(prefix="bench-cg-root-")
    try:
        for i in range(rounds + 2):
            order = [(n, b) for n in rts for b in bundles]
            for name, kind in (order if i % 2 == 0 else reversed(order)):
                t0 = time.perf_counter()
                r = run(rts[name], f"{root}/{name}", bundles[kind], f"lat{i}")
                if r.returncode != 0:
                    raise SystemExit(f"{name} run ({kind}) failed: {r.stderr.strip()}")
                if i >= 2:  # two warm-up rounds
                    wall[(name, kind)].append(time.perf_counter() - t0)
        inproc = {}
        for kind, res in (("no limits", {}), ("limits", LIMITS)):
            samples = []
            for i in range(rounds):
                cg = cgroups.Cgroup.for_spec(f"/pyrt-bench-{os.getpid()}/c{i}", "x")
                t0 = time.perf_counter()
                cg.create(res)
                t1 = time.perf_counter()
                cg.destroy()
                samples.append(t1 - t0)
            inproc[kind] = statistics.median(samples) * 1000
    finally:
        shutil.rmtree(root, ignore_errors=True)
        for b in bundles.values():
            shutil.rmtree(b, ignore_errors=True)
    print(f"`run` of /bin/true, {rounds} interleaved rounds, median wall ms (limits: memory + cpu + pids)")
    print(f"{'':8}{'no limits':>10}{'limits':>10}{'added':>8}")
    for name in rts:
        a, b = (statistics.median(wall[(name, k)]) * 1000 for k in bundles)
        print(f"{name:8}{a:10.1f}{b:10.1f}{b - a:8.1f}")
    print(f"pyrt Cgroup.create in-process (mkdir in every hierarchy + writes), median ms: "
          f"{inproc['no limits']:.2f} without limits, {inproc['limits']:.2f} with "
          f"(+{inproc['limits'] - inproc['no limits']:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("memory", "latency"))
    ap.add_argument("--rounds", type=int, default=0, help="default: 10 (memory), 40 (latency)")
    args = ap.parse_args()
    if not os.path.exists(os.path.join(ROOTFS, "bin", "busybox")):
        raise SystemExit("build the busybox bundle first: make bundles")
    if args.what == "memory":
        memory(args.rounds or 10)
    else:
        latency(args.rounds or 40)


if __name__ == "__main__":
    sys.exit(main())
