"""pyrt's networking, measured (not a test: numbers for docs/networking.md).

1. What bridge mode adds to `create` (busybox, `sleep`): wall time of plain vs `--network
   bridge` vs `-p` creates, interleaved, with the bridge already up (the first container of a
   bridge also makes the bridge and the nft table: timed apart), and the setup's own cost as
   `create --debug` logs it (netlink + nft, apart from importing pyroute2).
2. The same work done by the standard CNI plugins, run by hand as a CNI runtime would:
   `bridge` (with `host-local` for the address) and then `portmap`, ADD and DEL, for one
   container namespace with one published port (Debian's containernetworking-plugins, in
   /usr/lib/cni). They run in a private network namespace of their own (`unshare --net`), so
   their bridge, iptables rules and address book vanish with it; beside them pyrt's setup as
   `create --debug` logs it (import + netlink + nft) and what `-p` adds to a `create`.
3. HTTP requests per second to the hello-world server, one Go client (bench/httpload), through
   the published port (127.0.0.1:HOST_PORT) vs straight to the container's address vs the same
   binary on the host; kept-alive connections and a new connection per request; ratios.

Traffic stays on this machine: loopback and the bench's own bridge subnet.

    python bench/network.py [--rounds N] [--seconds S] [--conns C] [--pyrt PATH] [--cni DIR]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench import free_port  # bench/bench.py, beside this script

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUSYBOX = os.path.join(REPO, "bundles", "busybox", "rootfs")
HELLO = os.path.join(REPO, "bundles", "hello-world")
NET = {"org.pyrt.network.bridge": "pyrtbench0", "org.pyrt.network.subnet": "10.213.250.0/24"}
CNI = "/usr/lib/cni"
SETUP = re.compile(r"network: .*: ([0-9.]+) ms \(\+ ([0-9.]+) ms to import pyroute2\)")


def bundle(tmp: str, name: str, config: dict) -> str:
    path = os.path.join(tmp, name)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    return path


def busybox_config() -> dict:
    sys.path.insert(0, REPO)
    from pyrt import defaults

    cfg = defaults.config()
    cfg["process"].update(terminal=False, args=["sleep", "1000"])
    cfg["root"] = {"path": BUSYBOX, "readonly": True}
    cfg["annotations"] = dict(NET)
    return cfg


def timed(argv: list[str], log: str) -> tuple[float, str]:
    """Run argv (stdio on a file: a container inherits it); (wall ms, output). Fails loudly."""
    with open(os.devnull) as null, open(log, "w+") as out:
        t0 = time.perf_counter()
        code = subprocess.call(argv, stdin=null, stdout=out, stderr=out)
        ms = (time.perf_counter() - t0) * 1000
        out.seek(0)
        text = out.read()
    if code:
        sys.exit(f"{' '.join(argv)} failed: {text}")
    return ms, text


def setup_cost(pyrt: list[str], tmp: str, rounds: int) -> dict[str, float]:
    path = bundle(tmp, "busybox", busybox_config())
    log = os.path.join(tmp, "create.log")
    first, text = timed([*pyrt, "--debug", "create", "-b", path, "-p", f"{free_port()}:80", "anchor"], log)
    first_setup = SETUP.search(text)
    kinds = {"plain": [], "bridge": [], "bridge -p": []}
    setup: dict[str, list[float]] = {"bridge": [], "bridge -p": []}
    imports, deletes = [], {k: [] for k in kinds}
    for i in range(rounds):
        order = list(kinds) if i % 2 == 0 else list(reversed(kinds))
        for kind in order:
            flags = {"plain": [], "bridge": ["--network", "bridge"], "bridge -p": ["-p", f"{free_port()}:80"]}[kind]
            cid = f"{kind.replace(' -p', 'p')}{i}"
            ms, text = timed([*pyrt, "--debug", "create", "-b", path, *flags, cid], log)
            kinds[kind].append(ms)
            if kind != "plain":
                found = SETUP.search(text)
                setup[kind].append(float(found.group(1)))
                imports.append(float(found.group(2)))
            deletes[kind].append(timed([*pyrt, "delete", "--force", cid], log)[0])
    timed([*pyrt, "delete", "--force", "anchor"], log)
    med = statistics.median
    print(f"create, medians of {rounds} (ms)         plain  bridge  bridge -p")
    print(f"  wall time of `pyrt create`         {med(kinds['plain']):6.1f}  {med(kinds['bridge']):6.1f}  "
          f"{med(kinds['bridge -p']):6.1f}")
    print(f"  of which network setup (netlink+nft)        {med(setup['bridge']):6.1f}  {med(setup['bridge -p']):6.1f}")
    print(f"  importing pyroute2 (every networked create): {med(imports):.1f}")
    print(f"  wall time of `pyrt delete --force` {med(deletes['plain']):6.1f}  {med(deletes['bridge']):6.1f}  "
          f"{med(deletes['bridge -p']):6.1f}")
    print(f"  first container of a bridge (makes bridge + nft table): setup {first_setup.group(1)} ms, "
          f"create {first:.1f} ms")
    return {"setup": med(setup["bridge -p"]), "import": med(imports),
            "added": med(kinds["bridge -p"]) - med(kinds["plain"])}


def cni_plugin(plugin: str, command: str, netns: str, conf: dict, tmp: str) -> tuple[float, dict]:
    """One CNI plugin call, as a runtime makes it: the config on stdin, the rest in CNI_* variables."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": "pyrtbench",
           "CNI_NETNS": netns, "CNI_IFNAME": "eth0", "CNI_PATH": os.path.dirname(plugin)}
    t0 = time.perf_counter()
    done = subprocess.run([plugin], input=json.dumps(conf), capture_output=True, text=True, env=env, cwd=tmp)
    ms = (time.perf_counter() - t0) * 1000
    if done.returncode:
        sys.exit(f"CNI {os.path.basename(plugin)} {command} failed: {done.stdout} {done.stderr}")
    return ms, json.loads(done.stdout) if done.stdout.strip() else {}


def cni_rounds(cni: str, rounds: int, tmp: str) -> None:
    """Inside a private network namespace (see main): `rounds` ADD/DEL of bridge+host-local and
    portmap on a fresh container namespace each; prints the samples as JSON."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    net = {"cniVersion": "1.0.0", "name": "pyrtbench"}
    bridge = {**net, "type": "bridge", "bridge": "pyrtcni0", "isGateway": True, "ipMasq": True,
              "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.213.251.0/24"}]],
                       "routes": [{"dst": "0.0.0.0/0"}], "dataDir": os.path.join(tmp, "ipam")}}
    samples: dict[str, list[float]] = {"bridge ADD": [], "portmap ADD": [], "portmap DEL": [], "bridge DEL": []}
    for i in range(rounds + 1):  # the first makes the bridge and the iptables chains: not counted
        holder = subprocess.Popen(["unshare", "--net", "sleep", "1000"])
        try:
            netns = f"/proc/{holder.pid}/ns/net"
            while os.readlink(netns) == os.readlink("/proc/self/ns/net"):
                time.sleep(0.001)
            ms = {}
            ms["bridge ADD"], result = cni_plugin(os.path.join(cni, "bridge"), "ADD", netns, bridge, tmp)
            portmap = {**net, "type": "portmap", "capabilities": {"portMappings": True}, "prevResult": result,
                       "runtimeConfig": {"portMappings": [{"hostPort": 20000 + i, "containerPort": 80,
                                                           "protocol": "tcp"}]}}
            ms["portmap ADD"] = cni_plugin(os.path.join(cni, "portmap"), "ADD", netns, portmap, tmp)[0]
            ms["portmap DEL"] = cni_plugin(os.path.join(cni, "portmap"), "DEL", netns, portmap, tmp)[0]
            ms["bridge DEL"] = cni_plugin(os.path.join(cni, "bridge"), "DEL", netns, bridge, tmp)[0]
        finally:
            holder.kill()
            holder.wait()
        if i:
            for k, v in ms.items():
                samples[k].append(v)
    print(json.dumps(samples))


def cni_beside(cni: str, pyrt_setup: dict, rounds: int, tmp: str) -> None:
    out = subprocess.run(["unshare", "--net", sys.executable, os.path.abspath(__file__), "--cni-rounds", cni,
                          str(rounds), tmp], capture_output=True, text=True, check=True).stdout
    m = {k: statistics.median(v) for k, v in json.loads(out).items()}
    add = m["bridge ADD"] + m["portmap ADD"]
    ours = pyrt_setup["setup"] + pyrt_setup["import"]
    print(f"\nnetwork setup of one container with one published port, medians of {rounds} (ms)")
    print(f"  CNI plugins (bridge + host-local, portmap): ADD {m['bridge ADD']:.1f} + {m['portmap ADD']:.1f} "
          f"= {add:.1f}; DEL {m['portmap DEL']:.1f} + {m['bridge DEL']:.1f}")
    print(f"  pyrt (create --debug): {pyrt_setup['setup']:.1f} + {pyrt_setup['import']:.1f} to import = {ours:.1f} "
          f"({ours / add:.2f} x the plugins); `-p` adds {pyrt_setup['added']:.1f} to a create")


def wait_http(host: str, port: int) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            conn = http.client.HTTPConnection(host, port, timeout=2)
            conn.request("GET", "/")
            assert conn.getresponse().read() == b"Hello World!\n"
            conn.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def load(client: str, url: str, seconds: float, conns: int, close: bool) -> float:
    out = subprocess.run([client, "-url", url, "-d", f"{seconds}s", "-c", str(conns), *(["-close"] if close else [])],
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out)
    if result["errors"]:
        sys.exit(f"{url}: {result['errors']} failed requests")
    return result["requests"] / result["seconds"]


def http_ratios(pyrt: list[str], tmp: str, rounds: int, seconds: float, conns: int) -> None:
    client = os.path.join(tmp, "httpload")
    subprocess.run(["go", "build", "-o", client, "."], cwd=os.path.join(REPO, "bench", "httpload"), check=True,
                   env={**os.environ, "GOCACHE": os.path.join(tmp, "gocache")})
    with open(os.path.join(HELLO, "config.json")) as f:
        cfg = json.load(f)
    cfg["root"]["path"] = os.path.join(HELLO, "rootfs")
    cfg["annotations"] = dict(NET)
    path = bundle(tmp, "hello", cfg)
    published, host_port = free_port(), free_port()
    log = os.path.join(tmp, "hello.log")
    timed([*pyrt, "run", "-d", "-b", path, "-p", f"{published}:8080", "hello"], log)
    host = None
    try:
        state = json.loads(subprocess.run([*pyrt, "state", "hello"], capture_output=True, text=True).stdout)
        address = state["annotations"]["org.pyrt.network.address"]
        host = subprocess.Popen([os.path.join(HELLO, "rootfs", "hello")], env={"HELLO_ADDR": f"127.0.0.1:{host_port}"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        targets = {"published": ("127.0.0.1", published), "direct": (address, 8080), "host": ("127.0.0.1", host_port)}
        for h, p in targets.values():
            wait_http(h, p)
        print(f"\nHTTP requests/s to hello-world, {conns} connections, {seconds} s runs, medians of {rounds}")
        print(f"  {'':28} {'published':>10} {'direct':>10} {'host':>10}   published/direct  published/host")
        for close in (False, True):
            rates: dict[str, list[float]] = {k: [] for k in targets}
            for i in range(rounds):
                for name in (list(targets) if i % 2 == 0 else list(reversed(targets))):
                    h, p = targets[name]
                    rates[name].append(load(client, f"http://{h}:{p}/", seconds, conns, close))
            m = {k: statistics.median(v) for k, v in rates.items()}
            label = "new connection per request" if close else "kept-alive connections"
            print(f"  {label:28} {m['published']:10.0f} {m['direct']:10.0f} {m['host']:10.0f}   "
                  f"{m['published'] / m['direct']:16.2f}  {m['published'] / m['host']:14.2f}")
    finally:
        if host:
            host.terminate()
            host.wait()
        timed([*pyrt, "delete", "--force", "hello"], log)


def main() -> None:
    if sys.argv[1:2] == ["--cni-rounds"]:
        return cni_rounds(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20, help="creates of each kind (HTTP: runs of each target)")
    ap.add_argument("--seconds", type=float, default=3, help="length of one HTTP run")
    ap.add_argument("--conns", type=int, default=8, help="concurrent HTTP connections")
    ap.add_argument("--pyrt", default=shutil.which("pyrt") or "/usr/local/bin/pyrt")
    ap.add_argument("--cni", default=CNI, help="the CNI plugins' directory (skipped if it has no bridge)")
    ap.add_argument("--no-http", action="store_true", help="only the setup costs")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pyrt-netbench-")
    pyrt = [args.pyrt, "--root", os.path.join(tmp, "root")]
    try:
        ours = setup_cost(pyrt, tmp, args.rounds)
        if os.access(os.path.join(args.cni, "bridge"), os.X_OK):
            cni_beside(args.cni, ours, args.rounds, tmp)
        if not args.no_http:
            http_ratios(pyrt, tmp, max(3, args.rounds // 4), args.seconds, args.conns)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
