"""Bridge mode's links, over netlink: the host bridge, a veth pair per container, and the
container's eth0 (address, default route), configured from the host through /proc/<pid>/ns/net.

pyroute2 encodes and decodes the messages (the attribute layouts of links, addresses and
routes, nested ones like a veth's peer included); the socket they travel on is a plain one
(`_Netlink`). Only pyroute2's message modules are imported, not its package (`_load_messages`):
importing `pyroute2` runs an `__init__` that loads every subsystem it has (asyncio-based
sockets, NDB with sqlite3, conntrack, ethtool, ...), ~110 ms on the development machine,
where the messages cost ~15 ms (mostly the standard modules they need: logging, typing,
socket). Only containers that ask for pyrt networking import this module.

pyrt makes its links with the ifindex its record names (ipam.py): a link is pyrt's when name
and index match the record, and only such links are ever deleted. The alias they also get
("pyrt" on a bridge, "pyrt ROOT ID" on a container's host-side veth) is for people reading
`ip link`.
"""

from __future__ import annotations

import errno
import os
import sys

from pyrt.errors import PyrtError

CLONE_NEWNET = 0x40000000
AF_INET = 2
IFF_UP = 1
MAIN_TABLE, LOCAL_TABLE = 254, 255
RTN_UNICAST, RTN_LOCAL = 1, 2
RTPROT_BOOT = 3
# netlink (linux/netlink.h, linux/rtnetlink.h)
NETLINK_ROUTE = 0
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_GETADDR, RTM_NEWROUTE, RTM_GETROUTE = 20, 22, 24, 26


def index(name: str) -> int | None:
    """Without netlink (no pyroute2 import): the index of our namespace's link `name`, if any."""
    try:
        with open(f"/sys/class/net/{name}/ifindex", "rb") as f:
            return int(f.read())
    except OSError:  # no such link; EINVAL: the kernel is deleting it
        return None


class NetlinkError(OSError):
    """A request the kernel refused; `errno` says why."""


_MESSAGES: dict[int, type] = {}  # a reply's type -> its pyroute2 message class, once loaded


def _load_messages() -> None:
    """pyroute2's message classes for links, addresses and routes, without running the
    package's `__init__` (see the module's docstring). For the time of these imports the
    package is registered as what the import system makes before it runs an `__init__`: a
    module with the package's path, so its submodules load as usual; and `pyroute2.config`
    as the three settings the message modules read (the real one imports multiprocessing and
    platform for its socket classes: ~40% of the rest). Then both are unregistered again: a
    later `import pyroute2` gets the whole package. Should a pyroute2 read more of its config,
    the import is done again with the real one."""
    if _MESSAGES:
        return
    borrowed = "pyroute2" not in sys.modules
    try:
        if borrowed:
            try:
                _borrow_package(light_config=True)
                _import_messages()
            except (ImportError, AttributeError):
                _forget_package()
                _borrow_package(light_config=False)
                _import_messages()
        else:
            _import_messages()
    except ImportError as e:
        raise PyrtError(f"bridge networking: this pyroute2 lacks its rtnetlink messages ({e})") from None
    finally:
        if borrowed:
            sys.modules.pop("pyroute2", None)
            if getattr(sys.modules.get("pyroute2.config"), "_pyrt_light", False):
                del sys.modules["pyroute2.config"]


def _borrow_package(light_config: bool) -> None:
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec("pyroute2")
    if spec is None or not spec.submodule_search_locations:
        raise PyrtError("bridge networking needs pyroute2 (pip install pyroute2)")
    package = type(sys)("pyroute2")
    package.__spec__, package.__path__ = spec, spec.submodule_search_locations
    sys.modules["pyroute2"] = package
    if light_config:
        config = type(sys)("pyroute2.config")
        config.AF_BRIDGE, config.data_plugins_pkgs, config.data_plugins_path = 7, [], []
        config._pyrt_light = True
        sys.modules["pyroute2.config"] = config


def _forget_package() -> None:
    """Unload what a failed borrowed import left, so that it can be done again."""
    for name in [m for m in sys.modules if m == "pyroute2" or m.startswith("pyroute2.")]:
        del sys.modules[name]


def _import_messages() -> None:
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    _MESSAGES.update({RTM_NEWLINK: ifinfmsg, RTM_NEWADDR: ifaddrmsg, RTM_NEWROUTE: rtmsg})


class _Netlink:
    """A NETLINK_ROUTE socket in the network namespace of the thread that made it: a request
    goes out, its replies come back, ended by an acknowledgement (or an error) or, for a
    dump, by NLMSG_DONE."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, kind: int, msg, flags: int = 0) -> list:
        """Send `msg` (a pyroute2 message, fields and attributes set) as a `kind` request;
        return the decoded replies. An error reply raises NetlinkError."""
        import struct

        self.seq += 1
        msg["header"].update(type=kind, flags=NLM_F_REQUEST | NLM_F_ACK | flags, sequence_number=self.seq)
        msg.encode()
        self.sock.send(msg.data)
        replies = []
        while True:
            data = self.sock.recv(1 << 16)
            offset = 0
            while offset + 16 <= len(data):
                length, mtype, _, seq = struct.unpack_from("=IHHI", data, offset)  # struct nlmsghdr
                if length < 16:
                    break
                if seq == self.seq:
                    if mtype == NLMSG_ERROR:  # an acknowledgement if the error is 0
                        code = -struct.unpack_from("=i", data, offset + 16)[0]
                        if code:
                            raise NetlinkError(code, os.strerror(code))
                        return replies
                    if mtype == NLMSG_DONE:
                        return replies
                    if mtype in _MESSAGES:
                        reply = _MESSAGES[mtype](data[offset:offset + length])
                        reply.decode()
                        replies.append(reply)
                offset += (length + 3) & ~3


def _link(ifindex: int = 0, up: bool = False, attrs: list | None = None):
    msg = _MESSAGES[RTM_NEWLINK]()
    msg["index"] = ifindex
    if up:
        msg["flags"] = msg["change"] = IFF_UP
    msg["attrs"] = attrs or []
    return msg


def _address(ifindex: int, address: str, prefixlen: int):
    msg = _MESSAGES[RTM_NEWADDR]()
    msg.update(family=AF_INET, prefixlen=prefixlen, index=ifindex)
    msg["attrs"] = [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
    return msg


def _route(attrs: list | None = None, **fields):
    msg = _MESSAGES[RTM_NEWROUTE]()
    msg.update(family=AF_INET, **fields)
    msg["attrs"] = attrs or []
    return msg


class Links:
    """Link, address and route work in the host's network namespace."""

    def __init__(self) -> None:
        _load_messages()
        self.nl = _Netlink()

    def close(self) -> None:
        self.nl.close()

    def lookup(self, name: str) -> tuple[int, int] | None:
        """(index, MTU) of the link `name`, None if there is none."""
        try:
            found = self.nl.request(RTM_GETLINK, _link(attrs=[("IFLA_IFNAME", name)]))
        except NetlinkError as e:
            if e.errno == errno.ENODEV:
                return None
            raise
        return found[0]["index"], found[0].get_attr("IFLA_MTU")

    def is_local(self, address: str) -> bool:
        """Is `address` one of this host's own unicast addresses? (A bind also accepts
        broadcast and multicast addresses, which no published port can be reached on.)"""
        try:
            route = self.nl.request(RTM_GETROUTE, _route(dst_len=32, attrs=[("RTA_DST", address)]))
        except NetlinkError:
            return False
        return route[0]["type"] == RTN_LOCAL

    def create_bridge(self, name: str, ifindex: int, gateway: str, prefixlen: int) -> tuple[int, int]:
        """Make the bridge, born with `ifindex` (pyrt's mark), with the subnet's gateway address
        and the MTU of the host's uplink; route_localnet lets connections to 127.0.0.1 be DNATed
        to containers (firewall.py guards what else it would let in)."""
        kind = ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "bridge")]})
        self.nl.request(RTM_NEWLINK, _link(ifindex, True, [("IFLA_IFNAME", name), kind]), NLM_F_CREATE | NLM_F_EXCL)
        try:
            mtu = self._uplink_mtu()
            # an MTU set (not given at creation) sticks: the bridge keeps it when its last port goes
            self.nl.request(RTM_SETLINK, _link(ifindex, attrs=[("IFLA_IFALIAS", "pyrt"), ("IFLA_MTU", mtu)]))
            self.nl.request(RTM_NEWADDR, _address(ifindex, gateway, prefixlen), NLM_F_CREATE | NLM_F_EXCL)
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
        query = _MESSAGES[RTM_NEWADDR]()
        query["family"] = AF_INET
        for msg in self.nl.request(RTM_GETADDR, query, NLM_F_DUMP):
            other = ipaddress.IPv4Network(f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}", strict=False)
            if other.overlaps(net):
                raise PyrtError(f"subnet {net} overlaps the host's {other} on {msg.get_attr('IFA_LABEL')} {hint}")
        for route in self._routes():  # every table
            if route.get_attr("RTA_TABLE") != LOCAL_TABLE and route["dst_len"] > 0:
                other = ipaddress.IPv4Network(f"{route.get_attr('RTA_DST')}/{route['dst_len']}")
                if other.overlaps(net):
                    raise PyrtError(f"subnet {net} overlaps the host's route to {other} {hint}")
        for bridge, other in pyrt_subnets.items():
            if ipaddress.IPv4Network(other).overlaps(net):
                raise PyrtError(f"subnet {net} overlaps {other} of pyrt's bridge {bridge} {hint}")

    def _routes(self) -> list:
        """The IPv4 routes of every routing table (a dump without a table filter has them all)."""
        return self.nl.request(RTM_GETROUTE, _route(), NLM_F_DUMP)

    def _uplink_mtu(self) -> int:
        for route in self._routes():
            if route.get_attr("RTA_TABLE") == MAIN_TABLE and route["dst_len"] == 0 and route.get_attr("RTA_OIF"):
                return self.nl.request(RTM_GETLINK, _link(route.get_attr("RTA_OIF")))[0].get_attr("IFLA_MTU")
        return 1500

    def attach(self, nsfd: int, veth: str, ifindex: int, bridge: tuple[int, int], address: str, gateway: str,
               prefixlen: int, alias: str) -> None:
        """A veth pair: `veth` (born with `ifindex`) on the bridge (index, MTU), its peer born in
        the namespace `nsfd` as eth0 with the bridge's MTU, up, with `address` and a default
        route via the bridge."""
        master, mtu = bridge
        peer = {"attrs": [("IFLA_IFNAME", "eth0"), ("IFLA_NET_NS_FD", nsfd), ("IFLA_MTU", mtu)]}
        kind = ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "veth"),
                                            ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", peer)]})]})
        attrs = [("IFLA_IFNAME", veth), ("IFLA_MTU", mtu), ("IFLA_MASTER", master), kind]
        self.nl.request(RTM_NEWLINK, _link(ifindex, True, attrs), NLM_F_CREATE | NLM_F_EXCL)
        self.nl.request(RTM_SETLINK, _link(ifindex, attrs=[("IFLA_IFALIAS", alias)]))
        inner = _netlink_in(nsfd)
        try:
            eth0 = inner.request(RTM_GETLINK, _link(attrs=[("IFLA_IFNAME", "eth0")]))[0]["index"]
            inner.request(RTM_NEWADDR, _address(eth0, address, prefixlen), NLM_F_CREATE | NLM_F_EXCL)
            inner.request(RTM_SETLINK, _link(eth0, True))
            route = _route(table=MAIN_TABLE, proto=RTPROT_BOOT, type=RTN_UNICAST, attrs=[("RTA_GATEWAY", gateway)])
            inner.request(RTM_NEWROUTE, route, NLM_F_CREATE | NLM_F_EXCL)
        finally:
            inner.close()

    def remove(self, name: str, ifindex: int) -> None:
        """Delete the link `name` if it is pyrt's (it has the index pyrt made it with); a veth
        takes its peer along; gone already is fine."""
        if index(name) != ifindex:
            return
        try:
            self.nl.request(RTM_DELLINK, _link(ifindex))
        except NetlinkError as e:
            if e.errno != errno.ENODEV:
                raise PyrtError(f"delete link {name}: {os.strerror(e.errno).lower()}") from None


def _netlink_in(nsfd: int) -> _Netlink:
    """A netlink socket inside another network namespace: a socket belongs to the namespace of
    the thread that made it, so enter, make it, and come back (no helper process)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(nsfd, CLONE_NEWNET) != 0:
            raise PyrtError(f"setns into the container's network namespace: {os.strerror(ctypes.get_errno()).lower()}")
        try:
            return _Netlink()
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:
                raise PyrtError("setns back to the host's network namespace failed")
    finally:
        os.close(own)
