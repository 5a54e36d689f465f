"""What a container asks of pyrt's own networking, from `--network`/`-p` or from annotations.

The request travels in the container's annotations, so `start`, `state` and `delete` (other
processes) find it in the state record, and a bundle can carry it in its config.json:

    org.pyrt.network          "bridge", or "none": only what config.json says (as with runc)
    org.pyrt.ports            "[IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]", comma-separated
    org.pyrt.network.bridge   the host bridge (default pyrt0)
    org.pyrt.network.subnet   its IPv4 subnet (default 10.77.0.0/16), inside a private range

`create` adds `org.pyrt.network.address`, the address it gave the container. Ports alone imply
bridge mode, like `docker run -p`. Nothing here imports netlink code.
"""

from __future__ import annotations

from pyrt.errors import PyrtError

NETWORK = "org.pyrt.network"
PORTS = "org.pyrt.ports"
BRIDGE = "org.pyrt.network.bridge"
SUBNET = "org.pyrt.network.subnet"
ADDRESS = "org.pyrt.network.address"
MODES = ("none", "bridge")
DEFAULT_BRIDGE = "pyrt0"
DEFAULT_SUBNET = "10.77.0.0/16"  # 10.88/16 is podman's
PRIVATE = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")  # RFC 1918: never routed on the internet
PORT_SYNTAX = "[IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]"
_IFNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


class Port:
    """One published port: traffic to host_ip:host_port (any local address if host_ip is "")
    goes to the container's container_port."""

    __slots__ = ("host_ip", "host_port", "container_port", "proto")

    def __init__(self, host_ip: str, host_port: int, container_port: int, proto: str) -> None:
        self.host_ip, self.host_port, self.container_port, self.proto = host_ip, host_port, container_port, proto

    def __str__(self) -> str:
        ip = f"{self.host_ip}:" if self.host_ip else ""
        return f"{ip}{self.host_port}:{self.container_port}/{self.proto}"


class Request:
    """Bridge mode for one container: which bridge and subnet, which ports."""

    def __init__(self, bridge: str, subnet: str, ports: list[Port]) -> None:
        self.bridge, self.subnet, self.ports = bridge, subnet, ports


def parse_port(text: str, where: str) -> Port:
    """`[IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]`; errors name `where` (a flag or an annotation)."""
    body, slash, proto = text.partition("/")
    parts = body.split(":")
    if (slash and proto not in ("tcp", "udp")) or len(parts) not in (2, 3):
        raise PyrtError(f'{where} "{text}": want {PORT_SYNTAX}')
    host_ip = parts[0] if len(parts) == 3 else ""
    if host_ip:
        _check_ipv4(host_ip, f'{where} "{text}": host address')
        host_ip = "" if host_ip == "0.0.0.0" else host_ip
    numbers = []
    for name, value in zip(("host port", "container port"), parts[-2:], strict=True):
        if not value.isdigit() or not value.isascii():
            raise PyrtError(f'{where} "{text}": want {PORT_SYNTAX}')
        if not 0 < int(value) <= 65535:
            raise PyrtError(f'{where} "{text}": {name} must be 1-65535')
        numbers.append(int(value))
    return Port(host_ip, numbers[0], numbers[1], proto or "tcp")


def parse_ports(texts: list[str], where: str) -> list[Port]:
    ports, seen = [], set()
    for text in texts:
        port = parse_port(text.strip(), where)
        if (port.host_port, port.proto) in seen:
            raise PyrtError(f'{where} "{text}": host port {port.host_port}/{port.proto} is published twice')
        seen.add((port.host_port, port.proto))
        ports.append(port)
    return ports


def apply_flags(annotations: dict[str, str], network: str | None, publish: list[str]) -> None:
    """Record `--network` and `-p` in the annotations (they override the bundle's)."""
    if network is not None and network not in MODES:
        raise PyrtError(f'--network "{network}": unknown network mode (use none or bridge)')
    ports = parse_ports(publish, "-p")
    if ports and network == "none":
        raise PyrtError("-p: publishing ports needs --network bridge")
    if network is not None:
        annotations[NETWORK] = network
    if ports:
        annotations[NETWORK] = "bridge"
        annotations[PORTS] = ",".join(str(p) for p in ports)
    elif network == "none":
        annotations.pop(PORTS, None)


def wanted(annotations: dict[str, str]) -> bool:
    """Does this container use pyrt networking? (Cheap: no validation.)"""
    return annotations.get(NETWORK) == "bridge" or (PORTS in annotations and annotations.get(NETWORK) != "none")


def request(annotations: dict[str, str], namespaces: dict[str, str | None]) -> Request | None:
    """The validated request of a config (None: pyrt adds nothing to what config.json says);
    checked at the gate (config.py), with the command line's flags already in the annotations."""
    from pyrt.reader import Reader

    r = Reader(annotations, "config.json", "annotations")
    mode = r.get(NETWORK, str, "bridge" if PORTS in annotations else "none")
    if mode not in MODES:
        r.fail(f'{NETWORK} "{mode}": unknown network mode (use none or bridge)')
    if mode == "none":
        if PORTS in annotations:
            r.fail(f"{PORTS}: publishing ports needs {NETWORK} bridge")
        return None
    ports = parse_ports([p for p in r.get(PORTS, str, "").split(",") if p.strip()], f"{r.name()}: {PORTS}")
    bridge = r.get(BRIDGE, str, DEFAULT_BRIDGE)
    if not 0 < len(bridge) < 16 or not set(bridge) <= _IFNAME_CHARS or bridge in (".", "..", "all", "default"):
        r.fail(f'{BRIDGE} "{bridge}": want an interface name (1-15 of A-Za-z0-9_.-)')
    subnet = _subnet(r.get(SUBNET, str, DEFAULT_SUBNET), f"{r.name()}: {SUBNET}")
    if "network" not in namespaces:
        raise PyrtError("bridge networking needs a new network namespace: config.json linux.namespaces has none")
    if namespaces["network"]:
        raise PyrtError(f"bridge networking needs a new network namespace: config.json joins {namespaces['network']}")
    return Request(bridge, subnet, ports)


def _check_ipv4(text: str, what: str) -> None:
    import ipaddress

    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        raise PyrtError(f'{what} "{text}" is not an IPv4 address') from None


def _subnet(text: str, where: str) -> str:
    """An IPv4 network with room for the gateway and at least one container, inside a private
    range: a bridge on a public (or reserved) network would route the host's own traffic for it
    to the containers. (That it overlaps nothing on the host is checked when the bridge is made.)"""
    import ipaddress

    try:
        net = ipaddress.IPv4Network(text)
    except ValueError:
        raise PyrtError(f'{where} "{text}": want an IPv4 network like {DEFAULT_SUBNET}') from None
    if net.prefixlen > 30:
        raise PyrtError(f'{where} "{text}": too small (at most /30: a gateway and a container)')
    if not any(net.subnet_of(ipaddress.IPv4Network(p)) for p in PRIVATE):
        raise PyrtError(f'{where} "{text}": not inside a private range ({", ".join(PRIVATE)})')
    return str(net)
