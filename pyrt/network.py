"""Bridge mode from start to end: what `create` sets up and `delete` takes down.

    create  host ports free?  lock: an address (ipam.py), the bridge on first use (bridge.py),
            the ports' DNAT (firewall.py)  unlock: the veth pair, eth0 in the init's namespace
    delete  lock: the ports, the veth (if the namespace did not take it along), the bridge and
            its rules once its last container is gone, and last the address (so a crash half
            way leaves the record `delete --force` needs to finish the job)

Bridges and the nft table belong to the host, shared by every pyrt --root, so one host-wide
lock covers all of it. `create --debug` logs what the setup cost.
"""

from __future__ import annotations

import fcntl
import os
import time

from pyrt import bridge, ipam, log
from pyrt.bridge import Links
from pyrt.errors import PyrtError
from pyrt.netspec import ADDRESS, Port, Request

LOCK = "/run/lock/pyrt-network.lock"


def _lock() -> int:
    os.makedirs(os.path.dirname(LOCK), exist_ok=True)
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _owner(root: str) -> str:
    return f"pyrt {os.path.abspath(root)}"


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
        try:
            address, prefixlen = _connect(root, container_id, netns, req, links)
        finally:
            links.close()
    finally:
        os.close(netns)
    log.debug(f"network: eth0 {address}/{prefixlen} via {req.bridge}, ports [{', '.join(map(str, req.ports))}]: "
              f"{(time.perf_counter() - t1) * 1000:.1f} ms (+ {(t1 - t0) * 1000:.1f} ms to import pyroute2)")
    return {ADDRESS: address}


def _connect(root: str, container_id: str, netns: int, req: Request, links: Links) -> tuple[str, int]:
    """Under the lock: address, bridge, ports; then (no lock needed) the veth pair and eth0."""
    owner = _owner(root)
    fd = _lock()
    try:
        pool = ipam.Pool.open(root, req.bridge, req.subnet)
        address = pool.allocate(container_id, [str(p) for p in req.ports])
        pool.save()  # first, so that `delete --force` finds whatever follows
        gateway, prefixlen = pool.gateway()
        master = links.bridge(req.bridge, owner)
        new = master is None
        if new:
            master = links.create_bridge(req.bridge, gateway, prefixlen, owner)
        if req.ports or new:
            from pyrt import firewall

            firewall.publish(req.bridge, address, req.ports, container_id, new)
    finally:
        os.close(fd)
    links.attach(netns, veth_name(address), master, address, gateway, prefixlen, f"{owner} {container_id}")
    return address, prefixlen


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


def _gone(veth: str, timeout: float = 0.1) -> None:
    """The kernel deletes a veth with its namespace, asynchronously (10-25 ms here once the
    last process has exited): waiting for that beats importing pyroute2 (~120 ms) to do it."""
    deadline = time.monotonic() + timeout
    while bridge.exists(veth) and time.monotonic() < deadline:
        time.sleep(0.002)


def release(root: str, container_id: str) -> None:
    """Undo `setup` for a container, whatever part of it happened; idempotent."""
    names = ipam.bridges(root)
    if not names:
        return
    for name in names:  # not under the lock: others need not wait for the kernel's cleanup
        pool = ipam.Pool.load(root, name)
        address = pool.find(container_id) if pool else None
        if address:
            _gone(veth_name(address))
    owner = _owner(root)
    links = None
    fd = _lock()
    try:
        for name in names:
            pool = ipam.Pool.load(root, name)
            address = pool.find(container_id) if pool else None
            if address is None:
                continue
            ports = pool.addresses.pop(address)["ports"]
            last = not pool.addresses
            veth = veth_name(address)
            if bridge.exists(veth):  # its namespace lives on (another process holds it)
                links = links or Links()
                links.remove_owned(veth, f"{owner} {container_id}", fresh=True)
            if ports or last:
                from pyrt import firewall

                firewall.release(address, name if last else None)
            if last and bridge.exists(name):
                links = links or Links()
                links.remove_owned(name, owner)
            pool.save()
    finally:
        os.close(fd)
        if links:
            links.close()
