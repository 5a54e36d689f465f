"""Addresses on a pyrt bridge: which container holds which, in `<root>/.network/<bridge>.json`.

The file is replaced atomically (write, then rename), so a pyrt killed at any moment leaves the
old or the new version, never half of one; callers hold the network lock (network.py) from
reading to writing, so parallel creates never hand out one address twice. A container's entry
also lists the ports it published: `delete --force` after a crash finds everything to undo here,
even when the container never got a state.json. The gateway is the subnet's first address.
"""

from __future__ import annotations

import os

from pyrt import jsonio
from pyrt.errors import PyrtError

DIR = ".network"  # under the root; list_ids() skips dot names


def directory(root: str) -> str:
    return os.path.join(root, DIR)


def bridges(root: str) -> list[str]:
    """Bridges with addresses handed out under this root."""
    try:
        return sorted(n[:-5] for n in os.listdir(directory(root)) if n.endswith(".json"))
    except FileNotFoundError:
        return []


class Pool:
    """One bridge's subnet and its allocations (address -> {"id", "ports"})."""

    def __init__(self, root: str, bridge: str, data: dict) -> None:
        self.root, self.bridge, self.data = root, bridge, data

    @property
    def path(self) -> str:
        return os.path.join(directory(self.root), self.bridge + ".json")

    @property
    def subnet(self) -> str:
        return self.data["subnet"]

    @property
    def addresses(self) -> dict[str, dict]:
        return self.data["addresses"]

    @classmethod
    def load(cls, root: str, bridge: str) -> Pool | None:
        try:
            with open(os.path.join(directory(root), bridge + ".json"), "rb") as f:
                return cls(root, bridge, jsonio.loads(f.read()))
        except FileNotFoundError:
            return None
        except ValueError as e:
            raise PyrtError(f"{directory(root)}/{bridge}.json: {e}") from None

    @classmethod
    def open(cls, root: str, bridge: str, subnet: str) -> Pool:
        """The bridge's pool, made on first use; it must serve `subnet`."""
        pool = cls.load(root, bridge)
        if pool is None:
            return cls(root, bridge, {"subnet": subnet, "last": "", "addresses": {}})
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

    def allocate(self, container_id: str, ports: list[str]) -> str:
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
                taken[address] = {"id": container_id, "ports": ports}
                self.data["last"] = address
                return address
        raise PyrtError(f"bridge {self.bridge}: no free address left in {self.subnet}")

    def find(self, container_id: str) -> str | None:
        for address, entry in self.addresses.items():
            if entry["id"] == container_id:
                return address
        return None

    def save(self) -> None:
        """Write the pool atomically, or remove its file (and the directory) once it is empty."""
        if not self.addresses:
            for remove, path in ((os.unlink, self.path), (os.rmdir, directory(self.root))):
                try:
                    remove(path)
                except OSError:  # gone already; the directory still holds another bridge's pool
                    pass
            return
        os.makedirs(directory(self.root), 0o700, exist_ok=True)
        jsonio.write_atomic(self.path, jsonio.dumps(self.data).encode())
