"""Published ports as kernel NAT: the nftables table `ip pyrt`, shared by every pyrt bridge.

    prerouting, output   to a local address (fib daddr type local): DNAT by the maps
                         ports   (proto . port : container address . port), on every address
                         ipports (address . proto . port : ...), published on one address
    postrouting          masquerade: from 127.0.0.0/8 into a bridge (route_localnet lets
                         127.0.0.1 be DNATed), hairpin (a container to a published port of
                         its own bridge), and containers' traffic leaving the host
    taken                every published proto . port: `create element` fails if it is taken,
                         so the kernel decides which of two racing containers gets a port
    guard                before anything else: nothing from a bridge to a loopback address
                         (route_localnet would let a container reach the host's 127.0.0.1
                         services, as CVE-2020-8558 did with kube-proxy; a loopback source
                         the kernel drops itself, as one of the host's own addresses)
    forward              into a bridge only replies, published ports (DNAT) and its own
                         containers' traffic: with forwarding on (network.py), other hosts
                         would otherwise reach containers' unpublished ports through the host

Every rule matches only traffic from or to a pyrt bridge (the set `bridges`), or to a published
port: the host's other traffic passes untouched.

Kernel NAT, not a user-space proxy: the packets of a published port never leave the kernel
(no proxy process per port, no copy through user space), and 127.0.0.1 works through the OUTPUT
hook. nft through its command line, not pyroute2: pyroute2 speaks nf_tables netlink message by
message, and these rules (fib, concatenated map keys, DNAT to a map lookup) would have to be
hand-assembled as register-level bytecode, which is what `nft` compiles for us. One `nft -f -`
is one kernel transaction: a container's ports arrive all or none, with the table (re)made.
"""

from __future__ import annotations

import os

from pyrt import jsonio
from pyrt.errors import PyrtError
from pyrt.netspec import Port

TABLE = "ip pyrt"
RULESET = f"""\
add table {TABLE}
add set {TABLE} bridges {{ type ifname; }}
add set {TABLE} taken {{ type inet_proto . inet_service; }}
add map {TABLE} ports {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}
add map {TABLE} ipports {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}
add chain {TABLE} publish
add chain {TABLE} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
add chain {TABLE} output {{ type nat hook output priority -100; policy accept; }}
add chain {TABLE} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
add chain {TABLE} guard {{ type filter hook prerouting priority raw; policy accept; }}
add chain {TABLE} forward {{ type filter hook forward priority filter; policy accept; }}
flush chain {TABLE} publish
flush chain {TABLE} prerouting
flush chain {TABLE} output
flush chain {TABLE} postrouting
flush chain {TABLE} guard
flush chain {TABLE} forward
add rule {TABLE} prerouting fib daddr type local jump publish
add rule {TABLE} output fib daddr type local jump publish
add rule {TABLE} publish dnat ip to ip daddr . meta l4proto . th dport map @ipports
add rule {TABLE} publish dnat ip to meta l4proto . th dport map @ports
add rule {TABLE} postrouting oifname @bridges ip saddr 127.0.0.0/8 masquerade
add rule {TABLE} postrouting oifname @bridges iifname @bridges ct status dnat masquerade
add rule {TABLE} postrouting iifname @bridges oifname != @bridges masquerade
add rule {TABLE} guard iifname @bridges ip daddr 127.0.0.0/8 drop
add rule {TABLE} forward oifname @bridges ct state established,related accept
add rule {TABLE} forward oifname @bridges ct status dnat accept
add rule {TABLE} forward oifname @bridges iifname @bridges accept
add rule {TABLE} forward oifname @bridges drop
"""


def publish(bridge: str, address: str, ports: list[Port], owner: str, new_bridge: bool, lock: int) -> None:
    """DNAT each port to `address`. The ruleset goes along for a new bridge, or when the table
    is missing: parsing it costs `nft` ~15 ms, the ports alone ~4 ms. `lock` is the network
    lock's fd (see _nft)."""
    comment = f'comment "{owner[:120]}"'
    elements = []
    for p in ports:
        elements.append(f"create element {TABLE} taken {{ {p.proto} . {p.host_port} {comment} }}\n")
        key, target = f"{p.proto} . {p.host_port} {comment}", f"{address} . {p.container_port}"
        if p.host_ip:
            elements.append(f"add element {TABLE} ipports {{ {p.host_ip} . {key} : {target} }}\n")
        else:
            elements.append(f"add element {TABLE} ports {{ {key} : {target} }}\n")
    if not new_bridge:
        ok, out = _nft(["-f", "-"], "".join(elements), lock=lock)
        if ok:
            return
        if "No such file or directory" not in out:
            _fail(out, ports)
    ok, out = _nft(["-f", "-"], "".join([RULESET, f'add element {TABLE} bridges {{ "{bridge}" }}\n', *elements]),
                   lock=lock)
    if not ok:
        _fail(out, ports)


def _fail(out: str, ports: list[Port]) -> None:
    for p in ports:
        if f"taken {{ {p.proto} . {p.host_port} " in out and "File exists" in out:
            raise PyrtError(f"publish {p}: host port {p.host_port}/{p.proto} is already published by another container")
    raise PyrtError(f"nft: {_first_error(out)}")


def release(address: str, bridge: str | None, lock: int) -> None:
    """Remove the ports that lead to `address`; with `bridge` (its last container is gone),
    forget the bridge too, and the whole table when no bridge is left."""
    ok, out = _nft(["-j", "list", "table", *TABLE.split()], errors=False)
    if not ok:
        return  # no table: nothing of ours
    found: dict[str, list] = {}
    for item in jsonio.loads(out)["nftables"]:
        obj = item.get("set") or item.get("map")
        if obj:
            found[obj["name"]] = obj.get("elem", [])
    commands = []
    for name in ("ports", "ipports"):
        for key, value in found.get(name, []):
            key = key["elem"]["val"] if "elem" in key else key  # an element with a comment
            if value["concat"][0] == address:
                commands.append(f"delete element {TABLE} {name} {{ {' . '.join(map(str, key['concat']))} }}")
                commands.append(f"delete element {TABLE} taken {{ {' . '.join(map(str, key['concat'][-2:]))} }}")
    if bridge is not None:
        others = [b for b in found.get("bridges", []) if b != bridge]
        if not others:
            commands = [f"delete table {TABLE}"]
        elif bridge in found.get("bridges", []):
            commands.append(f'delete element {TABLE} bridges {{ "{bridge}" }}')
    if commands and not _nft(["-f", "-"], "\n".join(commands) + "\n", lock=lock)[0]:
        for command in commands:  # part of it was gone (a hand-edited table?): remove the rest
            _nft(["-f", "-"], command + "\n", lock=lock)


def _first_error(out: str) -> str:
    return next((line for line in out.splitlines() if line.startswith("Error")), out.strip() or "failed")


def _nft(args: list[str], stdin: str = "", errors: bool = True, lock: int = -1) -> tuple[bool, str]:
    """Run nft (posix_spawn and two pipes: `subprocess` alone costs ~10 ms to import here);
    (exit status 0, stdout and stderr together). With errors=False stderr is dropped, for
    output that must parse (a warning must not end up inside JSON). nft gets the network lock
    (`lock`, an flock'ed fd) as its fd 3: should pyrt be killed meanwhile, the lock is held
    until nft's transaction is done, so a `delete --force` cannot look before it lands."""
    nft = next((p for p in ("/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft") if os.access(p, os.X_OK)), None)
    if nft is None:
        raise PyrtError("bridge networking needs the nft command (Debian: apt install nftables)")
    in_r, in_w = os.pipe2(os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err = out_w if errors else os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    try:
        actions = [(os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err, 2)]
        if lock >= 0:
            actions.append((os.POSIX_SPAWN_DUP2, lock, 3))
        pid = os.posix_spawn(nft, [nft, *args], {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, file_actions=actions)
    finally:
        os.close(in_r)
        os.close(out_w)
        if err != out_w:
            os.close(err)
    try:
        os.write(in_w, stdin.encode())  # small: a container's ports fit in the pipe
    finally:
        os.close(in_w)
    chunks = []
    try:
        while chunk := os.read(out_r, 65536):
            chunks.append(chunk)
    finally:
        os.close(out_r)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0, b"".join(chunks).decode(errors="replace")
