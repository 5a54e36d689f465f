"""Helpers of the network tests: a bridge and subnet per test, and looking at what pyrt left in
the host's network configuration (links through pyroute2, the nft table through `nft -j`).

All traffic stays on this machine: loopback, and addresses inside the namespaces a test made,
in its own subnet of the test range 10.213.0.0/16."""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from conftest import Bundle

BRIDGE, SUBNET = "org.pyrt.network.bridge", "org.pyrt.network.subnet"
ADDRESS, PORTS = "org.pyrt.network.address", "org.pyrt.ports"
RECORDS = Path("/run/pyrt-network")  # pyrt's host-wide record of its bridges and addresses
FORWARDING = Path("/proc/sys/net/ipv4/ip_forward")


def free_prefix() -> str:
    """A random 10.213.N that no host address or route uses now (another test, or another suite
    running beside this one, may hold one; pyrt rightly refuses a subnet overlapping the host's)."""
    used = subprocess.run(["ip", "-4", "-o", "route", "show", "table", "all"], capture_output=True,
                          text=True, check=True).stdout
    while True:
        prefix = f"10.213.{random.randrange(1, 255)}"
        if f"{prefix}." not in used:
            return prefix


class Net:
    """The test's own bridge and /24 (or smaller) subnet, written into a bundle's annotations."""

    def __init__(self, prefixlen: int = 24) -> None:
        self.bridge = "pt" + uuid.uuid4().hex[:8]
        self.prefix = free_prefix()
        self.subnet = f"{self.prefix}.0/{prefixlen}"
        self.gateway = f"{self.prefix}.1"

    def into(self, bundle: Bundle) -> Bundle:
        bundle.config.setdefault("annotations", {}).update({BRIDGE: self.bridge, SUBNET: self.subnet})
        return bundle

    def gone(self) -> list[str]:
        """What is left of this bridge on the host (nothing once its last container is deleted)."""
        left = [f"link {self.bridge}"] if os.path.exists(f"/sys/class/net/{self.bridge}") else []
        left += [f"record {self.bridge}"] if (RECORDS / f"{self.bridge}.json").exists() else []
        left += [f"nft: {self.bridge}"] if nft_mentions(f'"{self.bridge}"') else []
        return left


@contextmanager
def fresh_forwarding():
    """IPv4 forwarding off, as on a fresh machine (podman's or containerd's CNI, and pyrt, turn
    it on and leave it on, which would hide a bridge mode that forgets to); put back after."""
    found = FORWARDING.read_text()
    FORWARDING.write_text("0")
    try:
        yield
    finally:
        FORWARDING.write_text(found)


def records(root: Path | None = None, cid: str | None = None) -> list[str]:
    """Entries of pyrt's host-wide address book ("bridge address root id") of this root and/or id."""
    found = []
    for path in RECORDS.glob("*.json"):
        try:
            entries = json.loads(path.read_text())["addresses"]
        except FileNotFoundError:
            continue
        found += [f"{path.stem} {address} {e['root']} {e['id']}" for address, e in entries.items()
                  if root in (None, Path(e["root"])) and cid in (None, e["id"])]
    return found


def address(rt, cid: str) -> str:
    return rt.state(cid)["annotations"][ADDRESS]


def link(name: str) -> dict | None:
    """The host's link `name`: {alias, master, mtu, addresses, index}, None if there is none."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        for found in ipr.get_links(ifname=name):
            addrs = [a.get("IFA_ADDRESS") for a in ipr.get_addr(index=found["index"]) if a["family"] == socket.AF_INET]
            return {"alias": found.get("IFLA_IFALIAS"), "master": found.get("IFLA_MASTER"),
                    "mtu": found.get("IFLA_MTU"), "addresses": addrs, "index": found["index"]}
    return None


def links(alias_part: str) -> dict[str, dict]:
    """Links of the host whose alias contains `alias_part`: name -> {alias, master, mtu, addresses}."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        found = {}
        for link in ipr.get_links():
            alias = link.get("IFLA_IFALIAS") or ""
            if alias_part in alias:
                addrs = [a.get("IFA_ADDRESS") for a in ipr.get_addr(index=link["index"])
                         if a["family"] == socket.AF_INET]
                found[link.get("IFLA_IFNAME")] = {"alias": alias, "master": link.get("IFLA_MASTER"),
                                                  "mtu": link.get("IFLA_MTU"), "addresses": addrs}
        return found


def uplink_mtu() -> int:
    """The MTU of the host's interface with the default route (1500 without one)."""
    with open("/proc/net/route") as f:
        for line in f.readlines()[1:]:
            dev, dest = line.split()[:2]
            if dest == "00000000":
                return int(Path(f"/sys/class/net/{dev}/mtu").read_text())
    return 1500


def nft_table() -> dict[str, list] | None:
    """pyrt's nft table: set/map name -> elements, or None if there is no table."""
    r = subprocess.run(["nft", "-j", "list", "table", "ip", "pyrt"], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    out = {}
    for item in json.loads(r.stdout)["nftables"]:
        obj = item.get("set") or item.get("map")
        if obj:
            out[obj["name"]] = obj.get("elem", [])
    return out


def nft_mentions(text: str) -> bool:
    r = subprocess.run(["nft", "-j", "list", "table", "ip", "pyrt"], capture_output=True, text=True)
    return r.returncode == 0 and text in r.stdout


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A free port below the ephemeral range (which the host's outgoing connections use)."""
    while True:
        port = random.randrange(20000, 32000)
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("0.0.0.0", port))
                return port
            except OSError:
                continue


def http_get(host: str, port: int, timeout: float = 15) -> str:
    """GET / (retrying while the server starts)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection(host, port, timeout=3)
            try:
                conn.request("GET", "/")
                return conn.getresponse().read().decode()
            finally:
                conn.close()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def get_in(netns: str, host: str, port: int, timeout: float) -> str:
    """GET http://host:port/ from inside the network namespace `netns` (a path): the body, or
    the error ("timed out", ...). (Debian's static busybox wget crashes outside a rootfs.)"""
    code = ("import http.client, sys\n"
            "c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=float(sys.argv[3]))\n"
            "try:\n"
            "    c.request('GET', '/')\n"
            "    print(c.getresponse().read().decode(), end='')\n"
            "except OSError as e:\n"
            "    print(e, end='')\n")
    r = subprocess.run(["nsenter", f"--net={netns}", "/usr/bin/python3", "-I", "-c", code, host, str(port),
                        str(timeout)], capture_output=True, text=True, timeout=timeout + 30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def web_server(bundle: Bundle, text: str) -> Bundle:
    """busybox httpd on :8080 serving `text`."""
    return bundle.args("sh", "-c", f"echo {text} > /tmp/index.html && exec httpd -f -p 8080 -h /tmp")


def python_root(tmp_path: Path) -> Path:
    """A root of mount points and symlinks: the host's /usr comes in read-only (Debian's merged
    /usr: /bin, /lib, /lib64 point into it), for a container that runs the system python."""
    root = tmp_path / "pyroot"
    for d in ("usr", "proc", "dev", "sys", "tmp"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for link in ("bin", "lib", "lib64", "sbin"):
        if not (root / link).is_symlink():
            os.symlink(f"usr/{link}", root / link)
    return root


def python_bundle(bundle: Bundle, tmp_path: Path, code: str) -> Bundle:
    bundle.config["root"] = {"path": str(python_root(tmp_path)), "readonly": True}
    bundle.config["mounts"].append({"destination": "/usr", "type": "bind", "source": "/usr",
                                    "options": ["rbind", "ro"]})
    bundle.process["env"] = ["PATH=/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE=1"]
    return bundle.args("/usr/bin/python3", "-I", "-c", code)
