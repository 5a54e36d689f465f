"""pyrt beside runc and crun: the table of README's Speed section.

Busybox bundle, `/bin/true`. Each round runs, for every runtime in turn (the order alternates
from round to round): `run`; `create`, `state`, `start`, `delete --force` (each timed, and
create + start + delete as a sum); `exec /bin/true` into a running `sleep` container. pyrt also
runs `create -p` and `run -p` (bridge networking, one published port: runc and crun have no
such thing), and the lifecycle once more through the `pyrt` script pip installs (bin/pyrt)
beside the launcher `make install` writes. Printed: medians of wall time, medians of CPU time
(user + system of the command and of what it waited for: less sensitive to other load), the
peak RSS of each command (bench/peakrss.c), and the load average before and after, since the
machine may be shared. Not a test: numbers for the README.

crun 1.8 refuses this host's hybrid cgroups ("cgroups in hybrid mode not supported") and works
where cgroup2's controller list reads empty. So on such a host crun's commands are started from
a helper process in a private mount namespace with an empty file bound over that list; the
helper spawns and times them exactly as the others are: nothing extra is counted.

    python bench/bench.py [--rounds N] [--pyrt PATH] [--pip PATH] [--runc PATH] [--crun PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOTFS = os.path.join(REPO, "bundles", "busybox", "rootfs")
CONTROLLERS = "/sys/fs/cgroup/unified/cgroup.controllers"
NET = {"org.pyrt.network.bridge": "pyrtbench1", "org.pyrt.network.subnet": "10.213.249.0/24"}
LIFECYCLE = ("run", "create", "state", "start", "delete", "exec")


def config(args: list[str], annotations: dict | None = None) -> dict:
    sys.path.insert(0, REPO)
    from pyrt import defaults

    cfg = defaults.config()
    cfg["ociVersion"] = "1.0.2"  # the newest crun 1.8 accepts
    cfg["process"].update(terminal=False, args=args)
    cfg["root"] = {"path": ROOTFS, "readonly": True}
    if annotations:
        cfg["annotations"] = annotations
    return cfg


def write_bundle(tmp: str, name: str, cfg: dict) -> str:
    path = os.path.join(tmp, name)
    os.makedirs(path)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f)
    return path


def spawn(argv: list[str]) -> tuple[float, float, int]:
    """Run argv with stdio on /dev/null; (wall s, CPU s, exit status)."""
    null = os.open(os.devnull, os.O_RDWR)
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[
        (os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1), (os.POSIX_SPAWN_DUP2, null, 2)])
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    os.close(null)
    return wall, ru.ru_utime + ru.ru_stime, os.waitstatus_to_exitcode(status)


def serve() -> None:
    """The helper's side: spawn each argv it reads (a JSON line), answer with spawn()'s result."""
    for line in sys.stdin:
        print(json.dumps(spawn(json.loads(line))), flush=True)


class Isolated:
    """The helper in a private mount namespace where cgroup2's controller list reads empty."""

    def __init__(self, tmp: str) -> None:
        empty = os.path.join(tmp, "empty")
        open(empty, "w").close()
        script = f'mount --bind {empty} {CONTROLLERS} && exec "$0" "$1" --serve'
        self.proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                                      sys.executable, os.path.abspath(__file__)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def __call__(self, argv: list[str]) -> tuple[float, float, int]:
        self.proc.stdin.write(json.dumps(argv) + "\n")
        self.proc.stdin.flush()
        return tuple(json.loads(self.proc.stdout.readline()))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


class Runtime:
    def __init__(self, name: str, path: str, tmp: str, spawner=spawn) -> None:
        self.name, self.path, self.spawner = name, path, spawner
        self.root = os.path.join(tmp, "root-" + name.replace(" ", "-"))
        self.samples: dict[str, list[tuple[float, float]]] = {}

    def cmd(self, *args: str) -> list[str]:
        return [self.path, "--root", self.root, *args]

    def do(self, *args: str) -> tuple[float, float]:
        wall, cpu, code = self.spawner(self.cmd(*args))
        if code != 0 and args[0] != "delete":
            raise SystemExit(f"{self.name}: {' '.join(args)} failed with {code}")
        return wall, cpu

    def time(self, row: str, *args: str) -> tuple[float, float]:
        sample = self.do(*args)
        self.samples.setdefault(row, []).append(sample)
        return sample

    def round(self, bundle: str, n: int) -> None:
        self.time("run", "run", "--bundle", bundle, f"r{n}")
        cid = f"c{n}"
        create = self.time("create", "create", "--bundle", bundle, cid)
        self.time("state", "state", cid)
        start = self.time("start", "start", cid)
        delete = self.time("delete", "delete", "--force", cid)
        self.samples.setdefault("create + start + delete", []).append(
            (create[0] + start[0] + delete[0], create[1] + start[1] + delete[1]))
        self.time("exec", "exec", "execbench", "/bin/true")

    def networked(self, bundle: str, n: int) -> None:
        self.time("create -p", "create", "--bundle", bundle, "-p", f"{free_port()}:80", f"n{n}")
        self.do("delete", "--force", f"n{n}")
        self.time("run -p", "run", "--bundle", bundle, "-p", f"{free_port()}:80", f"m{n}")

    def median(self, row: str, k: int) -> float | None:
        return statistics.median(s[k] for s in self.samples[row]) * 1000 if row in self.samples else None

    def peak_rss(self, peakrss: str, bundle: str, tmp: str, samples: int = 5) -> dict[str, float]:
        """Median peak RSS (MiB) of each command of the lifecycle."""
        out = os.path.join(tmp, "rss")
        found: dict[str, list[int]] = {op: [] for op in LIFECYCLE}

        def measure(op: str, *args: str) -> None:
            self.spawner([peakrss, out, *self.cmd(*args)])
            with open(out) as f:
                found[op].append(int(f.read()))

        for i in range(samples):
            measure("run", "run", "--bundle", bundle, f"rss-r{i}")
            measure("create", "create", "--bundle", bundle, f"rss{i}")
            measure("state", "state", f"rss{i}")
            measure("start", "start", f"rss{i}")
            measure("delete", "delete", "--force", f"rss{i}")
            measure("exec", "exec", "execbench", "/bin/true")
        return {op: statistics.median(v) / 1024 for op, v in found.items()}


def free_port() -> int:
    while True:
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
                return port
            except OSError:
                continue


def shared_runc() -> str | None:
    """runc 1.5 from shared/bin beside the clone (a worktree sits a level deeper), or $SHARED_BIN."""
    dirs = [os.environ["SHARED_BIN"]] if os.environ.get("SHARED_BIN") else []
    parent = os.path.dirname(REPO)
    dirs += [os.path.join(up, "shared", "bin") for up in (parent, os.path.dirname(parent))]
    return next((p for d in dirs if os.access(p := os.path.join(d, "runc-1.5"), os.X_OK)), None)


def version(path: str) -> str:
    out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.split()
    return out[2] if len(out) > 2 else "?"


def fmt(value: float | None, width: int = 8) -> str:
    return f"{value:{width}.1f}" if value is not None else f"{'-':>{width}}"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:8.2f}" if a is not None and b else f"{'':8}"


def table(runtimes: dict[str, Runtime], k: int) -> None:
    runc, crun, pyrt, pip = (runtimes.get(n) for n in ("runc", "crun", "pyrt", "pip"))
    names = [n for n in ("runc", "crun", "pyrt") if runtimes.get(n)]
    print(f"{'':34}" + "".join(f"{n:>8}" for n in names) + f"{'pyrt/runc':>10}{'pyrt/crun':>10}")
    rows = ["run", "create", "state", "start", "delete", "create + start + delete", "exec", "create -p", "run -p"]
    for row in rows:
        p = pyrt.median(row, k)
        r, c = (rt.median(row, k) if rt else None for rt in (runc, crun))
        cells = "".join(fmt(runtimes[n].median(row, k)) for n in names)
        print(f"{row:34}{cells}{ratio(p, r):>10}{ratio(p, c) if crun else '':>10}")
    if pip:
        for row in ("run", "create + start + delete", "state"):
            p, s = pyrt.median(row, k), pip.median(row, k)
            print(f"{'pip script: ' + row:34}{'':{8 * (len(names) - 1)}}{fmt(s)}   {s / p:.2f} x the launcher")


def main() -> None:
    if sys.argv[1:] == ["--serve"]:
        return serve()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--pyrt", default=shutil.which("pyrt") or "/usr/local/bin/pyrt", help="the launcher")
    ap.add_argument("--pip", default=os.path.join(os.path.dirname(sys.executable), "pyrt"),
                    help="the script pip installed (default: beside this interpreter)")
    ap.add_argument("--runc", default=shared_runc() or "/usr/sbin/runc")
    ap.add_argument("--crun", default=shutil.which("crun") or "")
    args = ap.parse_args()
    if not os.path.exists(os.path.join(ROOTFS, "bin", "busybox")):
        raise SystemExit("build the busybox bundle first: make bundles")

    tmp = tempfile.mkdtemp(prefix="pyrt-bench-")
    isolated = None
    runtimes = {"runc": Runtime("runc", args.runc, tmp), "pyrt": Runtime("pyrt", args.pyrt, tmp)}
    if args.crun:
        isolated = Isolated(tmp) if os.path.exists(CONTROLLERS) else None
        runtimes["crun"] = Runtime("crun", args.crun, tmp, isolated or spawn)
    if os.access(args.pip, os.X_OK) and os.path.realpath(args.pip) != os.path.realpath(args.pyrt):
        runtimes["pip"] = Runtime("pip", args.pip, tmp)
    true, sleep = write_bundle(tmp, "true", config(["/bin/true"])), write_bundle(tmp, "sleep", config(["sleep", "1d"]))
    net = write_bundle(tmp, "net", config(["/bin/true"], NET))
    load = os.getloadavg()
    try:
        for rt in runtimes.values():
            rt.do("run", "--detach", "--bundle", sleep, "execbench")
            rt.round(true, -1)  # warm-up, not counted
            rt.samples.clear()
        runtimes["pyrt"].networked(net, -1)  # makes the bridge (and the nft table): not counted
        runtimes["pyrt"].samples.clear()
        for i in range(args.rounds):
            order = list(runtimes.values())
            for rt in order if i % 2 == 0 else reversed(order):
                rt.round(true, i)
                if rt.name == "pyrt":
                    rt.networked(net, i)
        peakrss = os.path.join(tmp, "peakrss")
        subprocess.run(["cc", "-O2", "-o", peakrss, os.path.join(REPO, "bench", "peakrss.c")], check=True)
        rss = {name: rt.peak_rss(peakrss, true, tmp) for name, rt in runtimes.items() if name != "pip"}
    finally:
        for rt in runtimes.values():
            rt.do("delete", "--force", "execbench")
        if isolated:
            isolated.close()
        shutil.rmtree(tmp, ignore_errors=True)

    who = ", ".join(f"{n} {version(runtimes[n].path)}" for n in ("runc", "crun") if n in runtimes)
    print(f"pyrt beside {who}: busybox bundle, /bin/true; {args.rounds} interleaved rounds")
    print(f"load average (1 min) {load[0]:.2f} before, {os.getloadavg()[0]:.2f} after, on {os.cpu_count()} CPUs")
    print("\nmedian wall time, ms")
    table(runtimes, 0)
    print("\nmedian CPU time (user + system), ms")
    table(runtimes, 1)
    print("\npeak RSS, MiB" + "".join(f"{op:>8}" for op in LIFECYCLE))
    for name, values in rss.items():
        print(f"{name:13}" + "".join(f"{values[op]:8.1f}" for op in LIFECYCLE))


if __name__ == "__main__":
    sys.exit(main())
