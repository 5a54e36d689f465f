"""Bridge mode's links, over netlink with pyroute2: the host bridge, a veth pair per container,
and the container's eth0 (address, default route), configured from the host through
/proc/<pid>/ns/net. pyroute2 costs ~100+ ms to import here, so only this module imports it,
and only containers that ask for pyrt networking import this module.

pyrt makes its links with the ifindex its record names (ipam.py): a link is pyrt's when name
and index match the record, and only such links are ever deleted. The alias they also get
("pyrt" on a bridge, "pyrt ROOT ID" on a container's host-side veth) is for people reading
`ip link`.
"""

from __future__ import annotations

import errno
import os

from pyrt.errors import PyrtError

CLONE_NEWNET = 0x40000000
AF_INET = 2  # (the socket module is not needed otherwise)
MAIN_TABLE, LOCAL_TABLE = 254, 255
RTN_LOCAL = 2


def index(name: str) -> int | None:
    """Without netlink (no pyroute2 import): the index of our namespace's link `name`, if any."""
    try:
        with open(f"/sys/class/net/{name}/ifindex", "rb") as f:
            return int(f.read())
    except OSError:  # no such link; EINVAL: the kernel is deleting it
        return None


class Links:
    """A netlink socket in the host's network namespace."""

    def __init__(self) -> None:
        from pyroute2 import IPRoute

        self.ipr = IPRoute()

    def close(self) -> None:
        self.ipr.close()

    def lookup(self, name: str) -> tuple[int, int] | None:
        """(index, MTU) of the link `name`, None if there is none."""
        found = self.ipr.get_links(ifname=name)
        return (found[0]["index"], found[0].get("IFLA_MTU")) if found else None

    def is_local(self, address: str) -> bool:
        """Is `address` one of this host's own unicast addresses? (A bind also accepts
        broadcast and multicast addresses, which no published port can be reached on.)"""
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            return self.ipr.route("get", dst=address)[0]["type"] == RTN_LOCAL
        except NetlinkError:
            return False

    def create_bridge(self, name: str, ifindex: int, gateway: str, prefixlen: int) -> tuple[int, int]:
        """Make the bridge, born with `ifindex` (pyrt's mark), with the subnet's gateway address
        and the MTU of the host's uplink; route_localnet lets connections to 127.0.0.1 be DNATed
        to containers (firewall.py guards what else it would let in)."""
        self.ipr.link("add", ifname=name, index=ifindex, kind="bridge", state="up")
        try:
            mtu = self._uplink_mtu()
            # an MTU set (not given at creation) sticks: the bridge keeps it when its last port goes
            self.ipr.link("set", index=ifindex, ifalias="pyrt", mtu=mtu)
            self.ipr.addr("add", index=ifindex, address=gateway, prefixlen=prefixlen)
            with open(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "w") as f:
                f.write("1")
        except BaseException:
            self.remove(name, ifindex)
            raise
        return ifindex, mtu

    def check_subnet_free(self, subnet: str, pyrt_subnets: dict[str, str]) -> None:
        """Refuse a subnet that overlaps an address or a route of the host (in any routing table)
        or another pyrt bridge's subnet (`pyrt_subnets`: bridge -> subnet, from the records):
        the bridge would take that traffic, or the containers would be cut off from it."""
        import ipaddress

        net = ipaddress.IPv4Network(subnet)
        hint = "(choose another with the annotation org.pyrt.network.subnet)"
        for msg in self.ipr.get_addr(family=AF_INET):
            other = ipaddress.IPv4Network(f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}", strict=False)
            if other.overlaps(net):
                raise PyrtError(f"subnet {net} overlaps the host's {other} on {msg.get('IFA_LABEL')} {hint}")
        for route in self.ipr.get_routes(family=AF_INET):  # every table
            if route.get("RTA_TABLE") != LOCAL_TABLE and route["dst_len"] > 0:
                other = ipaddress.IPv4Network(f"{route.get('RTA_DST')}/{route['dst_len']}")
                if other.overlaps(net):
                    raise PyrtError(f"subnet {net} overlaps the host's route to {other} {hint}")
        for bridge, other in pyrt_subnets.items():
            if ipaddress.IPv4Network(other).overlaps(net):
                raise PyrtError(f"subnet {net} overlaps {other} of pyrt's bridge {bridge} {hint}")

    def _uplink_mtu(self) -> int:
        for route in self.ipr.get_routes(family=AF_INET):
            if route.get("RTA_TABLE") == MAIN_TABLE and route["dst_len"] == 0 and route.get("RTA_OIF"):
                return self.ipr.get_links(route.get("RTA_OIF"))[0].get("IFLA_MTU")
        return 1500

    def attach(self, nsfd: int, veth: str, ifindex: int, bridge: tuple[int, int], address: str, gateway: str,
               prefixlen: int, alias: str) -> None:
        """A veth pair: `veth` (born with `ifindex`) on the bridge (index, MTU), its peer born in
        the namespace `nsfd` as eth0 with the bridge's MTU, up, with `address` and a default
        route via the bridge."""
        master, mtu = bridge
        self.ipr.link("add", ifname=veth, index=ifindex, kind="veth", mtu=mtu, master=master, state="up",
                      peer={"ifname": "eth0", "net_ns_fd": nsfd, "mtu": mtu})
        self.ipr.link("set", index=ifindex, ifalias=alias)
        inner = _iproute_in(nsfd)
        try:
            eth0 = inner.link_lookup(ifname="eth0")[0]
            inner.addr("add", index=eth0, address=address, prefixlen=prefixlen)
            inner.link("set", index=eth0, state="up")
            inner.route("add", dst="0.0.0.0/0", gateway=gateway)
        finally:
            inner.close()

    def remove(self, name: str, ifindex: int) -> None:
        """Delete the link `name` if it is pyrt's (it has the index pyrt made it with); a veth
        takes its peer along; gone already is fine."""
        from pyroute2.netlink.exceptions import NetlinkError

        if index(name) != ifindex:
            return
        try:
            self.ipr.link("del", index=ifindex)
        except NetlinkError as e:
            if e.code != errno.ENODEV:
                raise PyrtError(f"delete link {name}: {os.strerror(e.code).lower()}") from None


def _iproute_in(nsfd: int):
    """A netlink socket inside another network namespace: a socket belongs to the namespace of
    the thread that made it, so enter, make it, and come back (no helper process)."""
    import ctypes

    from pyroute2 import IPRoute

    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(nsfd, CLONE_NEWNET) != 0:
            raise PyrtError(f"setns into the container's network namespace: {os.strerror(ctypes.get_errno()).lower()}")
        try:
            return IPRoute()
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:
                raise PyrtError("setns back to the host's network namespace failed")
    finally:
        os.close(own)
