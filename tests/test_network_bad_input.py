"""Bad network input: a one-line error naming the flag or field, exit status 1, and nothing left
behind (no state, veth, bridge, address or nft element: the leak check looks too); a container
that already holds what the second one wanted keeps working."""

from __future__ import annotations

import json
import random
import socket
import subprocess

import pytest
from netutil import PORTS, Net, free_port, fresh_forwarding, http_get, links, nft_mentions, records, web_server

pytestmark = pytest.mark.pyrt_only


@pytest.fixture(autouse=True)
def fresh_machine():
    """Forwarding off, as on a fresh machine (see test_network.py)."""
    with fresh_forwarding():
        yield


def create_fails(rt, bundle, *flags: str) -> str:
    """`create` with these flags must fail cleanly; returns its one-line error."""
    cid = rt.new_id()
    bundle.write()
    with open(bundle.path / "err", "w+") as err:  # a file: a wrongly created init would hold a pipe
        r = subprocess.run(rt.cmd("create", "--bundle", str(bundle.path), *flags, cid), stdin=subprocess.DEVNULL,
                           stdout=err, stderr=err, timeout=60)
        err.seek(0)
        out = err.read()
    assert r.returncode == 1, out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1, out
    assert rt("state", cid).returncode == 1
    assert links(cid) == {} and not nft_mentions(cid) and records(cid=cid) == []
    return out.replace('\\"', '"')  # the message as written, out of its log record's quoting


@pytest.mark.parametrize("flags, message", [
    (["-p", "8080"], '-p "8080": want [IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]'),
    (["-p", "a:80"], '-p "a:80": want'),
    (["-p", "1:2:3:4"], '-p "1:2:3:4": want'),
    (["-p", "80:80/sctp"], '-p "80:80/sctp": want'),
    (["-p", "0:80"], '-p "0:80": host port must be 1-65535'),
    (["-p", "65536:80"], '-p "65536:80": host port must be 1-65535'),
    (["-p", "8080:0"], '-p "8080:0": container port must be 1-65535'),
    (["-p", "300.1.1.1:80:80"], '"300.1.1.1" is not an IPv4 address'),
    (["-p", "18080:80", "-p", "18080:81"], "host port 18080/tcp is published twice"),
    (["--network", "overlay"], '--network "overlay": unknown network mode (use none or bridge)'),
    (["--network", "none", "-p", "80:80"], "-p: publishing ports needs --network bridge"),
])
def test_bad_flags(rt, bundle, flags, message):
    Net().into(bundle)
    assert message in create_fails(rt, bundle, *flags)


@pytest.mark.parametrize("annotations, message", [
    ({PORTS: "80"}, 'org.pyrt.ports "80": want'),
    ({"org.pyrt.network": "host"}, 'org.pyrt.network "host": unknown network mode'),
    ({"org.pyrt.network": "bridge", "org.pyrt.network.subnet": "10.213.0.0/31"}, "too small"),
    ({"org.pyrt.network": "bridge", "org.pyrt.network.subnet": "fd00::/64"}, "want an IPv4 network"),
    ({"org.pyrt.network": "bridge", "org.pyrt.network.bridge": "a-name-much-too-long"}, "want an interface name"),
    ({"org.pyrt.network": "bridge", "org.pyrt.network.bridge": "all"}, "want an interface name"),
    ({"org.pyrt.network": "bridge", "org.pyrt.network.bridge": "default"}, "want an interface name"),
])
def test_bad_annotations_name_the_field(rt, bundle, annotations, message):
    bundle.config["annotations"] = annotations
    out = create_fails(rt, bundle)
    assert "config.json: annotations:" in out and message in out


def test_bridge_needs_a_new_network_namespace(rt, bundle):
    Net().into(bundle)
    bundle.config["linux"]["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    assert "bridge networking needs a new network namespace" in create_fails(rt, bundle, "--network", "bridge")
    bundle.config["linux"]["namespaces"].append({"type": "network", "path": "/proc/self/ns/net"})
    out = create_fails(rt, bundle, "-p", "8080:80")
    assert "bridge networking needs a new network namespace: config.json joins /proc/self/ns/net" in out


def route_to(address: str) -> str:
    return json.loads(subprocess.run(["ip", "-j", "route", "get", address], capture_output=True, text=True,
                                     check=True).stdout)[0]["dev"]


@pytest.mark.parametrize("subnet", ["198.51.100.0/24", "240.0.0.0/24", "127.0.0.0/24", "8.8.8.0/24", "100.64.0.0/16",
                                    "172.32.0.0/16", "192.169.0.0/24", "10.0.0.0/7", "0.0.0.0/1"])
def test_subnet_outside_the_private_ranges_is_refused(rt, bundle, subnet):
    """A bridge on a public (or reserved) network takes the host's own traffic to it."""
    net = Net().into(bundle)
    net.config["annotations"]["org.pyrt.network.subnet"] = subnet
    before = route_to(subnet.split("/")[0][:-1] + "7")
    out = create_fails(rt, bundle, "--network", "bridge")
    assert (f'org.pyrt.network.subnet "{subnet}": not inside a private range '
            f"(10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)") in out
    assert route_to(subnet.split("/")[0][:-1] + "7") == before


@pytest.mark.parametrize("table", ["main", "213"])
def test_subnet_overlapping_a_host_route_is_refused(rt, bundle, table):
    """In any routing table (policy routing sends some traffic through other tables)."""
    net = Net()
    net.into(bundle)
    route = f"{net.prefix}.128/25"
    subprocess.run(["ip", "route", "add", "blackhole", route, "table", table], check=True)
    try:
        out = create_fails(rt, bundle, "--network", "bridge")
    finally:
        subprocess.run(["ip", "route", "del", "blackhole", route, "table", table], check=True)
    assert f"subnet {net.subnet} overlaps the host's route to {route}" in out


def test_subnet_overlapping_an_address_of_the_host_is_refused(rt, bundle):
    net = Net()
    net.into(bundle)
    address = f"{net.prefix}.{random.randrange(2, 255)}/32"  # the test's own, on lo
    subprocess.run(["ip", "addr", "add", address, "dev", "lo"], check=True)
    try:
        out = create_fails(rt, bundle, "--network", "bridge")
    finally:
        subprocess.run(["ip", "addr", "del", address, "dev", "lo"], check=True)
    assert f"subnet {net.subnet} overlaps the host's {address} on lo" in out


def test_host_link_of_that_name_is_refused_and_kept(rt, bundle):
    Net().into(bundle).config["annotations"]["org.pyrt.network.bridge"] = "lo"
    assert "bridge lo: the host already has a link of that name" in create_fails(rt, bundle, "--network", "bridge")
    assert socket.if_nametoindex("lo")


@pytest.mark.parametrize("kind", [socket.SOCK_STREAM, socket.SOCK_DGRAM])
def test_port_in_use_by_a_host_process(rt, bundle, kind):
    with socket.socket(socket.AF_INET, kind) as holder:
        holder.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            holder.listen()
        port = holder.getsockname()[1]
        proto = "tcp" if kind == socket.SOCK_STREAM else "udp"
        Net().into(bundle)
        out = create_fails(rt, bundle, "-p", f"{port}:80/{proto}")
        assert f"host port {port}/{proto} is already in use" in out


@pytest.mark.parametrize("host", ["192.0.2.123", "224.0.0.251", "255.255.255.255", "127.255.255.255"])
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_address_not_of_this_host(rt, bundle, host, proto):
    """Not one of the host's own unicast addresses (a bind takes broadcast and multicast ones, like
    lo's broadcast 127.255.255.255)."""
    Net().into(bundle)
    assert f"{host} is not an address of this host" in create_fails(rt, bundle, "-p", f"{host}:8080:80/{proto}")


def test_second_container_on_a_published_port_fails_first_keeps_it(rt, bundle):
    net = Net()
    port = free_port()
    first = rt.create(web_server(net.into(bundle), "first"), None, "-p", f"{port}:8080")
    rt.ok("start", first)
    assert http_get("127.0.0.1", port) == "first\n"
    out = create_fails(rt, bundle.copy("second"), "-p", f"{port}:9000", "-p", f"{free_port()}:9001")
    assert f"host port {port}/tcp is already published by another container" in out
    assert http_get("127.0.0.1", port) == "first\n"  # its DNAT survived the second's cleanup
    assert len([link for link in links(str(rt.root)).values() if link["master"]]) == 1
    rt.ok("delete", "--force", first)


def test_subnet_exhausted(rt, bundle):
    net = Net(prefixlen=30)  # the gateway and one container
    net.into(bundle).args("sleep", "100")
    first = rt.create(bundle, None, "--network", "bridge")
    assert rt.state(first)["annotations"]["org.pyrt.network.address"] == f"{net.prefix}.2"
    out = create_fails(rt, bundle, "--network", "bridge")
    assert f"bridge {net.bridge}: no free address left in {net.subnet}" in out
    rt.ok("delete", "--force", first)
    second = rt.create(bundle, None, "--network", "bridge")  # released: usable again
    assert rt.state(second)["annotations"]["org.pyrt.network.address"] == f"{net.prefix}.2"
    rt.ok("delete", "--force", second)


def test_the_inits_own_error_is_not_hidden_by_the_network(rt, bundle):
    Net().into(bundle).args("/no/such/program")
    out = create_fails(rt, bundle, "-p", f"{free_port()}:80")
    assert "no such file or directory" in out or "not found" in out, out
