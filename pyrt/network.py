"""Bridge mode from start to end: what `create` sets up and `delete` takes down.

    create  host ports free?  lock: an address (ipam.py), the bridge on first use (bridge.py),
            the ports' DNAT (firewall.py), forwarding on  unlock: the veth pair, eth0 in the
            init's namespace
    delete  lock: the ports, the veth (if the namespace did not take it along), the bridge and
            its rules once its last container is gone, and last the address (so a crash half
            way leaves the record `delete --force` needs to finish the job)

Bridges, their records and the nft table belong to the host, shared by every pyrt --root, so
one host-wide lock covers all of it. `create --debug` logs what the setup cost.
"""

from __future__ import annotations

import fcntl
import os
import time

from pyrt import bridge, ipam, log
from pyrt.bridge import Links
from pyrt.errors import PyrtError
from pyrt.netspec import ADDRESS, Port, Request

FORWARDING = "/proc/sys/net/ipv4/ip_forward"


def _lock() -> int:
    os.makedirs(ipam.DIR, 0o700, exist_ok=True)
    fd = os.open(ipam.LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def veth_name(address: str) -> str:
    """The host end's name, from the address: unique on the host (pyrt subnets never overlap)."""
    return "pv" + "".join(f"{int(b):02x}" for b in address.split("."))


def setup(root: str, container_id: str, netns: int, req: Request) -> dict[str, str]:
    """Connect the container's network namespace (an fd, closed here) to the bridge and
    publish its ports. Returns the annotations to record (the address). On failure, `release`
    undoes it."""
    try:
        check_free(req.ports)
        t0 = time.perf_counter()
        links = Links()  # imports pyroute2
        t1 = time.perf_counter()
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            for p in req.ports:
                if p.host_ip and not links.is_local(p.host_ip):
                    raise PyrtError(f"publish {p}: {p.host_ip} is not an address of this host")
            address, prefixlen = _connect(os.path.abspath(root), container_id, netns, req, links)
        except NetlinkError as e:
            raise PyrtError(f"bridge {req.bridge}: netlink: {os.strerror(e.code).lower()}") from None
        finally:
            links.close()
    finally:
        os.close(netns)
    log.debug(f"network: eth0 {address}/{prefixlen} via {req.bridge}, ports [{', '.join(map(str, req.ports))}]: "
              f"{(time.perf_counter() - t1) * 1000:.1f} ms (+ {(t1 - t0) * 1000:.1f} ms to import pyroute2)")
    return {ADDRESS: address}


def _connect(root: str, container_id: str, netns: int, req: Request, links: Links) -> tuple[str, int]:
    """Under the lock: address, bridge, ports; then (no lock needed) the veth pair and eth0.
    Each side effect is written in the record before it is made."""
    fd = _lock()
    try:
        pool = ipam.Pool.open(req.bridge, req.subnet)
        address = pool.allocate(root, container_id, [str(p) for p in req.ports])
        gateway, prefixlen = pool.gateway()
        master = _ready_bridge(pool, links)
        if master is None:
            others = {name: p.subnet for name in ipam.bridges() if name != req.bridge and (p := ipam.Pool.load(name))}
            links.check_subnet_free(req.subnet, others)
            pool.data["bridge"] = {"index": ipam.new_index(), "ready": False}
        pool.save()  # first, so that `delete --force` finds whatever follows
        if master is None:
            master = links.create_bridge(req.bridge, pool.link["index"], gateway, prefixlen)
        if req.ports or not pool.link["ready"]:
            from pyrt import firewall

            firewall.publish(req.bridge, address, req.ports, container_id, not pool.link["ready"], fd)
        if not pool.link["ready"]:
            pool.link["ready"] = True
            pool.save()
        _forwarding_on()
    finally:
        os.close(fd)
    veth = pool.addresses[address]["veth"]
    links.attach(netns, veth_name(address), veth, master, address, gateway, prefixlen, f"pyrt {root} {container_id}")
    return address, prefixlen


def _ready_bridge(pool: ipam.Pool, links: Links) -> tuple[int, int] | None:
    """(index, MTU) of the pool's bridge if pyrt made it and finished making it; None if it is
    to be made (a half-made one, left by a killed create, is deleted first). A link of that name
    that pyrt did not make is refused."""
    found = links.lookup(pool.bridge)
    if found is None:
        return None
    if pool.link is None or found[0] != pool.link["index"]:
        raise PyrtError(f"bridge {pool.bridge}: the host already has a link of that name")
    if pool.link["ready"]:
        return found
    links.remove(pool.bridge, found[0])
    return None


def _forwarding_on() -> None:
    """Containers' traffic is routed by the host (hairpin to a published port, replies to the
    outside, other hosts reaching published ports): as Docker and netavark do, bridge mode turns
    IPv4 forwarding on (firewall.py keeps other hosts from reaching containers' unpublished
    ports). It stays on: another engine may rely on it by now."""
    with open(FORWARDING, "r+b") as f:
        if f.read().strip() != b"1":
            f.seek(0)
            f.write(b"1")


def check_free(ports: list[Port]) -> None:
    """A host port some process holds is refused now, not found out by the first connection."""
    import errno
    import socket

    for p in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if p.proto == "tcp" else socket.SOCK_DGRAM)
        try:
            if p.proto == "tcp":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "in use"
            s.bind((p.host_ip or "0.0.0.0", p.host_port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise PyrtError(f"publish {p}: host port {p.host_port}/{p.proto} is already in use") from None
            if e.errno == errno.EADDRNOTAVAIL:
                raise PyrtError(f"publish {p}: {p.host_ip} is not an address of this host") from None
            raise PyrtError(f"publish {p}: bind: {os.strerror(e.errno).lower()}") from None
        finally:
            s.close()


def _gone(veth: str, ifindex: int, timeout: float = 0.1) -> None:
    """The kernel deletes a veth with its namespace, asynchronously (10-25 ms here once the
    last process has exited): waiting for that beats importing pyroute2 (~120 ms) to do it."""
    deadline = time.monotonic() + timeout
    while bridge.index(veth) == ifindex and time.monotonic() < deadline:
        time.sleep(0.002)


def release(root: str, container_id: str) -> None:
    """Undo `setup` for a container, whatever part of it happened; idempotent."""
    root = os.path.abspath(root)
    held = []
    for name in ipam.bridges():  # not under the lock: others need not wait for the kernel's cleanup
        pool = ipam.Pool.load(name)
        address = pool.find(root, container_id) if pool else None
        if address:
            held.append(name)
            _gone(veth_name(address), pool.addresses[address]["veth"])
    if not held:
        return
    links = None
    fd = _lock()
    try:
        for name in held:
            pool = ipam.Pool.load(name)
            address = pool.find(root, container_id) if pool else None
            if address is None:
                continue
            entry = pool.addresses.pop(address)
            last = not pool.addresses
            veth = veth_name(address)
            if bridge.index(veth) == entry["veth"]:  # its namespace lives on (another process holds it)
                links = links or Links()
                links.remove(veth, entry["veth"])
            if entry["ports"] or last:
                from pyrt import firewall

                firewall.release(address, name if last else None, fd)
            if last and pool.link and bridge.index(name) == pool.link["index"]:
                links = links or Links()
                links.remove(name, pool.link["index"])
            pool.save()
    finally:
        os.close(fd)
        if links:
            links.close()


def undo(item: dict, dir_fd: int) -> None:
    """Undo a journal record of create's network step ({"root", "id"}): `release` it."""
    release(item["root"], item["id"])
