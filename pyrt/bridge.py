"""Bridge mode's links, over netlink with pyroute2: the host bridge, a veth pair per container,
and the container's eth0 (address, default route), configured from the host through
/proc/<pid>/ns/net. pyroute2 costs ~100+ ms to import here, so only this module imports it,
and only containers that ask for pyrt networking import this module.

Links pyrt makes carry an alias (`ip link` shows it): "pyrt ROOT" on a bridge, the owner that
may use it, and "pyrt ROOT ID" on a container's host-side veth.
"""

from __future__ import annotations

import errno
import os

from pyrt.errors import PyrtError

CLONE_NEWNET = 0x40000000
AF_INET = 2  # (the socket module is not needed otherwise)
MAIN_TABLE = 254


def exists(name: str) -> bool:
    """Without netlink (no pyroute2 import): is there a link of that name in our namespace?"""
    return os.path.exists(f"/sys/class/net/{name}")


class Links:
    """A netlink socket in the host's network namespace."""

    def __init__(self) -> None:
        from pyroute2 import IPRoute

        self.ipr = IPRoute()

    def close(self) -> None:
        self.ipr.close()

    def bridge(self, name: str, owner: str) -> tuple[int, int] | None:
        """(index, MTU) of our bridge `name`, None if there is none; another link of that name
        (the host's, or a bridge of pyrt with another --root) is refused."""
        found = self.ipr.get_links(ifname=name)
        if not found:
            return None
        alias = found[0].get("IFLA_IFALIAS") or ""
        if alias != owner:
            whose = f" (pyrt's, for --root {alias[5:]})" if alias.startswith("pyrt ") else ""
            raise PyrtError(f"bridge {name}: the host already has a link of that name{whose}")
        return found[0]["index"], found[0].get("IFLA_MTU")

    def create_bridge(self, name: str, gateway: str, prefixlen: int, owner: str) -> tuple[int, int]:
        """Make the bridge with the subnet's gateway address and the MTU of the host's uplink;
        route_localnet lets connections to 127.0.0.1 be DNATed to containers (firewall.py)."""
        self._check_subnet_free(f"{gateway}/{prefixlen}")
        self.ipr.link("add", ifname=name, kind="bridge", state="up")
        try:
            index, mtu = self.ipr.link_lookup(ifname=name)[0], self._uplink_mtu()
            # an MTU set (not given at creation) sticks: the bridge keeps it when its last port goes
            self.ipr.link("set", index=index, ifalias=owner, mtu=mtu)
            self.ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
            with open(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "w") as f:
                f.write("1")
        except BaseException:
            self._delete(name)
            raise
        return index, mtu

    def _check_subnet_free(self, subnet: str) -> None:
        """A subnet the host already routes elsewhere would cut it (or the containers) off."""
        import ipaddress

        net = ipaddress.IPv4Network(subnet, strict=False)
        for msg in self.ipr.get_addr(family=AF_INET):
            other = ipaddress.IPv4Network(f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}", strict=False)
            if other.overlaps(net):
                raise PyrtError(f"subnet {net} overlaps the host's {other} on {msg.get('IFA_LABEL')} "
                                f"(choose another with the annotation org.pyrt.network.subnet)")
        for route in self.ipr.get_routes(family=AF_INET):
            if route.get("RTA_TABLE") == MAIN_TABLE and route["dst_len"] > 0:
                other = ipaddress.IPv4Network(f"{route.get('RTA_DST')}/{route['dst_len']}")
                if other.overlaps(net):
                    raise PyrtError(f"subnet {net} overlaps the host's route to {other} "
                                    f"(choose another with the annotation org.pyrt.network.subnet)")

    def _uplink_mtu(self) -> int:
        for route in self.ipr.get_routes(family=AF_INET):
            if route.get("RTA_TABLE") == MAIN_TABLE and route["dst_len"] == 0 and route.get("RTA_OIF"):
                return self.ipr.get_links(route.get("RTA_OIF"))[0].get("IFLA_MTU")
        return 1500

    def attach(self, nsfd: int, veth: str, bridge: tuple[int, int], address: str, gateway: str, prefixlen: int,
               alias: str) -> None:
        """A veth pair: `veth` on the bridge (index, MTU), its peer born in the namespace `nsfd`
        as eth0 with the bridge's MTU, up, with `address` and a default route via the bridge."""
        master, mtu = bridge
        self.ipr.link("add", ifname=veth, kind="veth", mtu=mtu, master=master, state="up",
                      peer={"ifname": "eth0", "net_ns_fd": nsfd, "mtu": mtu})
        self.ipr.link("set", ifname=veth, ifalias=alias)
        inner = _iproute_in(nsfd)
        try:
            eth0 = inner.link_lookup(ifname="eth0")[0]
            inner.addr("add", index=eth0, address=address, prefixlen=prefixlen)
            inner.link("set", index=eth0, state="up")
            inner.route("add", dst="0.0.0.0/0", gateway=gateway)
        finally:
            inner.close()

    def remove_owned(self, name: str, alias: str, fresh: bool = False) -> None:
        """Delete a link pyrt made: the alias says so (a host link of that name stays), or with
        `fresh`, none yet (a veth gets its alias just after it is made)."""
        found = self.ipr.get_links(ifname=name)
        if found and (found[0].get("IFLA_IFALIAS") or "") in ((alias, "") if fresh else (alias,)):
            self._delete(name)

    def _delete(self, name: str) -> None:
        """Delete a link (a veth takes its peer along); gone already is fine."""
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            self.ipr.link("del", ifname=name)
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
