"""linux.netDevices: host links moved into the container's network namespace, renamed as asked,
with their addresses and up (as runc); on delete, and when a create fails, moved back under
their own names, with their addresses, while the namespace still lives (once it is gone a
virtual link is gone with it, and a physical one is back in the host's namespace under the
container's name: pyrt renames nothing it cannot tell is that link).

Each move is journaled first (`netdev`: the init, whose namespace holds the link, by pid and
start time), so what a killed create moved is moved back by `delete --force`. Netlink through
bridge.py's plain socket and pyroute2's message classes, imported only for such a container.
"""

from __future__ import annotations

import os

from pyrt.errors import PyrtError

IFF_UP, IFF_LOOPBACK = 0x1, 0x8
RT_SCOPE_LINK = 253  # an address the kernel makes itself (IPv6 link-local): not carried over


def check(devices: tuple) -> None:
    """Host-only refusals (parent_plan, so `pyrt plan` says them too): each link exists here
    and is not a loopback."""
    for host, _ in devices:
        try:
            with open(f"/sys/class/net/{host}/flags", "rb") as f:
                flags = int(f.read(), 16)
        except (OSError, ValueError):
            raise PyrtError(f"config.json: linux.netDevices: {host}: no such network device on the host") from None
        if flags & IFF_LOOPBACK:
            raise PyrtError(f"config.json: linux.netDevices: {host}: a loopback device cannot be moved")


def move_in(dir_fd: int, pid: int, start: int, nsfd: int, devices: tuple) -> None:
    """Move each (host link, new name) into the network namespace `nsfd` of process `pid`
    (started at `start`: the init), journaled first."""
    from pyrt import bridge, journal

    bridge._load_messages()
    host = bridge._Netlink()
    inner = bridge._netlink_in(nsfd)
    try:
        for name, new in devices:
            index, flags = _lookup(host, name, "the host")
            addresses = _addresses(host, index)
            journal.record(dir_fd, "netdev", pid=pid, start=start, host=name, name=new, addresses=addresses,
                           up=bool(flags & IFF_UP))
            _move(host, index, nsfd, new, f"move network device {name} into the container as {new}")
            _configure(inner, new, addresses, True)
    finally:
        host.close()
        inner.close()


def undo(item: dict, dir_fd: int) -> None:
    """{"pid", "start", "host", "name", "addresses", "up"}: move the link back to the host, if
    the init (so its network namespace) still lives."""
    from pyrt.procfs import start_time

    try:
        nsfd = os.open(f"/proc/{item['pid']}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if start_time(item["pid"]) == item["start"]:  # else a recycled pid: not the container's namespace
            move_back(item, nsfd)
    finally:
        os.close(nsfd)


def move_back(item: dict, nsfd: int) -> None:
    """Move a journaled link back from the namespace `nsfd` to ours as "host", with its
    addresses (and up if it was); nothing if it is not there (any more)."""
    from pyrt import bridge

    bridge._load_messages()
    inner, host = bridge._netlink_in(nsfd), bridge._Netlink()
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        found = _find(inner, item["name"])
        if found is None:
            return
        _move(inner, found[0], own, item["host"], f"move network device {item['name']} back to the host as "
              f"{item['host']}")
        _configure(host, item["host"], item["addresses"], item["up"])
    finally:
        os.close(own)
        inner.close()
        host.close()


def _find(nl, name: str) -> tuple[int, int] | None:
    from pyrt import bridge

    try:
        found = nl.request(bridge.RTM_GETLINK, bridge._link(attrs=[("IFLA_IFNAME", name)]))
    except bridge.NetlinkError as e:
        if e.errno == 19:  # ENODEV
            return None
        raise PyrtError(f"look up network device {name}: {os.strerror(e.errno).lower()}") from None
    return found[0]["index"], found[0]["flags"]


def _lookup(nl, name: str, where: str) -> tuple[int, int]:
    found = _find(nl, name)
    if found is None:
        raise PyrtError(f"config.json: linux.netDevices: {name}: no such network device on {where}")
    return found


def _addresses(nl, index: int) -> list[list]:
    """The link's addresses as [family, prefixlen, address] (not the kernel's link-local ones)."""
    from pyrt import bridge

    query = bridge._MESSAGES[bridge.RTM_NEWADDR]()
    return [[m["family"], m["prefixlen"], m.get_attr("IFA_LOCAL") or m.get_attr("IFA_ADDRESS")]
            for m in nl.request(bridge.RTM_GETADDR, query, bridge.NLM_F_DUMP)
            if m["index"] == index and m["scope"] != RT_SCOPE_LINK]


def _move(nl, index: int, nsfd: int, name: str, what: str) -> None:
    from pyrt import bridge

    try:
        nl.request(bridge.RTM_SETLINK, bridge._link(index, attrs=[("IFLA_NET_NS_FD", nsfd), ("IFLA_IFNAME", name)]))
    except bridge.NetlinkError as e:
        raise PyrtError(f"{what}: {os.strerror(e.errno).lower()}") from None


def _configure(nl, name: str, addresses: list, up: bool) -> None:
    """In the link's new namespace: its addresses again (a move drops them), and up if asked."""
    from pyrt import bridge

    index, _ = _lookup(nl, name, "its new namespace")
    for family, prefixlen, address in addresses:
        msg = bridge._MESSAGES[bridge.RTM_NEWADDR]()
        msg.update(family=family, prefixlen=prefixlen, index=index)
        msg["attrs"] = [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
        try:
            nl.request(bridge.RTM_NEWADDR, msg, bridge.NLM_F_CREATE | bridge.NLM_F_EXCL)
        except bridge.NetlinkError as e:
            if e.errno != 17:  # EEXIST
                why = os.strerror(e.errno).lower()
                raise PyrtError(f"add address {address}/{prefixlen} to {name}: {why}") from None
    if up:
        try:
            nl.request(bridge.RTM_SETLINK, bridge._link(index, True))
        except bridge.NetlinkError as e:
            raise PyrtError(f"bring {name} up: {os.strerror(e.errno).lower()}") from None
