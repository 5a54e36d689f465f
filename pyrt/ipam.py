"""The host's pyrt networks: for each bridge its subnet, the link pyrt made for it, and which
container (of which --root) holds which address, in `/run/pyrt-network/<bridge>.json`.

Host-wide, not per --root: a bridge, its subnet and the nft table belong to the host, so the
containers of every root (podman's, a script's) share one record per bridge: one address book
(an address is never handed out twice), and the last container out, whatever its root, takes
the bridge along.

Intent before side effect: the record names a link before pyrt makes it, with the ifindex it
will have. The kernel takes the index in the RTM_NEWLINK that makes the link (an alias, the
mark pyrt used to set a step later, it ignores there), so a link is pyrt's exactly when its name
and index are the record's, whatever instant a crash came: `delete --force` removes what pyrt
made, never a host link of the same name. A bridge is "ready" once its address, MTU and nft
rules are in place; one left unready by a crash is made anew by the next create.

The file is replaced atomically (write, then rename), so a pyrt killed at any moment leaves the
old or the new version, never half of one; callers hold LOCK (network.py) from reading to
writing. The gateway is the subnet's first address.
"""

from __future__ import annotations

import os

from pyrt import jsonio
from pyrt.errors import PyrtError

DIR = "/run/pyrt-network"
LOCK = DIR + "/lock"
_INDEXES = (1 << 24, 1 << 31)  # far above the kernel's own (it counts up from 1 per namespace)


def bridges() -> list[str]:
    """Bridges with a record (addresses handed out, by any --root)."""
    try:
        return sorted(n[:-5] for n in os.listdir(DIR) if n.endswith(".json"))
    except FileNotFoundError:
        return []


def new_index() -> int:
    """An ifindex for a link pyrt is about to make: random, so no other link has it."""
    low, high = _INDEXES
    return low + int.from_bytes(os.urandom(4), "little") % (high - low)


class Pool:
    """One bridge's record: {"subnet", "bridge": {"index", "ready"} (once pyrt makes the link),
    "last", "addresses": {address: {"root", "id", "ports", "veth" (the host end's index)}}}."""

    def __init__(self, bridge: str, data: dict) -> None:
        self.bridge, self.data = bridge, data

    @property
    def path(self) -> str:
        return os.path.join(DIR, self.bridge + ".json")

    @property
    def subnet(self) -> str:
        return self.data["subnet"]

    @property
    def addresses(self) -> dict[str, dict]:
        return self.data["addresses"]

    @property
    def link(self) -> dict | None:
        """{"index", "ready"} of the bridge link pyrt makes or made, None before."""
        return self.data.get("bridge")

    @classmethod
    def load(cls, bridge: str) -> Pool | None:
        try:
            with open(os.path.join(DIR, bridge + ".json"), "rb") as f:
                return cls(bridge, jsonio.loads(f.read()))
        except FileNotFoundError:
            return None
        except ValueError as e:
            raise PyrtError(f"{DIR}/{bridge}.json: {e}") from None

    @classmethod
    def open(cls, bridge: str, subnet: str) -> Pool:
        """The bridge's record, made on first use; it must serve `subnet`."""
        pool = cls.load(bridge)
        if pool is None:
            return cls(bridge, {"subnet": subnet, "last": "", "addresses": {}})
        if pool.subnet != subnet and pool.addresses:
            raise PyrtError(f'config.json: annotations: org.pyrt.network.subnet "{subnet}": bridge {bridge} '
                            f"serves {pool.subnet}")
        pool.data["subnet"] = subnet
        return pool

    def gateway(self) -> tuple[str, int]:
        """(the bridge's address, prefix length)."""
        import ipaddress

        net = ipaddress.IPv4Network(self.subnet)
        return str(net.network_address + 1), net.prefixlen

    def allocate(self, root: str, container_id: str, ports: list[str]) -> str:
        """The next free address after the last one handed out (so a released address is not
        reused at once: stale ARP and conntrack entries age out first)."""
        import ipaddress

        net = ipaddress.IPv4Network(self.subnet)
        first, count = int(net.network_address) + 2, net.num_addresses - 3  # not .0, gateway, broadcast
        last = self.data["last"]
        start = (int(ipaddress.IPv4Address(last)) - first + 1) % count if last else 0
        taken = self.addresses
        for i in range(count):
            address = str(ipaddress.IPv4Address(first + (start + i) % count))
            if address not in taken:
                taken[address] = {"root": root, "id": container_id, "ports": ports, "veth": new_index()}
                self.data["last"] = address
                return address
        raise PyrtError(f"bridge {self.bridge}: no free address left in {self.subnet}")

    def find(self, root: str, container_id: str) -> str | None:
        for address, entry in self.addresses.items():
            if entry["id"] == container_id and entry["root"] == root:
                return address
        return None

    def save(self) -> None:
        """Write the record atomically, or remove it once no address is handed out."""
        if not self.addresses:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            return
        jsonio.write_atomic(self.path, jsonio.dumps(self.data).encode())
