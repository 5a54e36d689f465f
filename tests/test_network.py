"""Networking through the command line. The OCI-pure part (a new network namespace has `lo` up
and nothing else; a namespace given by path is joined untouched) is shared with runc; bridge
mode and published ports are pyrt's own.

Traffic stays on this machine: loopback and addresses inside the namespaces the test made,
each test on its own bridge and subnet (netutil.Net)."""

from __future__ import annotations

import contextlib
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import HELLO_BUNDLE, Runtime, reap, wait_for
from netutil import (
    ADDRESS,
    FORWARDING,
    PORTS,
    Net,
    address,
    free_port,
    free_prefix,
    fresh_forwarding,
    get_in,
    http_get,
    link,
    links,
    nft_mentions,
    nft_table,
    python_bundle,
    records,
    uplink_mtu,
    web_server,
)


@pytest.fixture(autouse=True)
def fresh_machine():
    """Every test starts with forwarding off, as on a fresh machine: whatever ran before (podman's
    CNI, an earlier test) must not make bridge mode pass by accident."""
    with fresh_forwarding():
        yield

# ----------------------------------------------------------------------------- OCI-pure


def test_new_network_namespace_has_only_lo_up(rt, bundle):
    bundle.args("sh", "-c", "echo $(ls /sys/class/net); cat /sys/class/net/lo/flags; "
                "httpd -p 127.0.0.1:8000 -h /etc && wget -q -O - http://127.0.0.1:8000/group").write()
    r = rt("run", "--bundle", str(bundle.path), rt.new_id())
    assert r.returncode == 0, (r.stdout, r.stderr)
    names, flags, group = r.stdout.split("\n", 2)
    assert names == "lo"
    assert int(flags, 16) & 1  # IFF_UP
    assert group.startswith("root:x:0:")  # a TCP round trip over 127.0.0.1 inside


def test_join_network_namespace_by_path_untouched(rt, bundle, tmp_path):
    # a namespace pyrt did not make, with lo still down: joining must leave it so
    holder = subprocess.Popen(["unshare", "--net", "sleep", "100"])
    try:
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{holder.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        path = f"/proc/{holder.pid}/ns/net"
        bundle.config["linux"]["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
        bundle.config["linux"]["namespaces"].append({"type": "network", "path": path})
        bundle.args("sh", "-c", "readlink /proc/self/ns/net; echo $(ls /sys/class/net); cat /sys/class/net/lo/flags")
        bundle.write()
        r = rt("run", "--bundle", str(bundle.path), rt.new_id())
        assert r.returncode == 0, r.stderr
        ns, names, flags = r.stdout.split()
        assert ns == os.readlink(path)
        assert names == "lo"
        assert not int(flags, 16) & 1  # still down
    finally:
        holder.kill()
        holder.wait()


def test_no_network_namespace_is_the_hosts_network(rt, bundle):
    bundle.config["linux"]["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    bundle.args("readlink", "/proc/self/ns/net").write()
    r = rt("run", "--bundle", str(bundle.path), rt.new_id())
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == os.readlink("/proc/self/ns/net")


# ----------------------------------------------------------------------------- bridge mode


@pytest.mark.pyrt_only
def test_bridge_gives_eth0_address_and_default_route(rt, bundle):
    net = Net()
    net.into(bundle).args("sh", "-c", "ip -4 -o addr show dev eth0; ip route | grep default; "
                          "cat /sys/class/net/eth0/mtu; echo $(ls /sys/class/net)")
    cid = rt.create(bundle, None, "--network", "bridge")
    st = rt.state(cid)
    ip = st["annotations"][ADDRESS]
    assert st["annotations"]["org.pyrt.network"] == "bridge"
    assert ip == f"{net.prefix}.2"  # the first address after the gateway
    bridge = link(net.bridge)
    veths = [link for link in links(cid).values() if link["master"]]
    assert len(veths) == 1 and veths[0]["mtu"] == bridge["mtu"]  # the host end, on the bridge
    rt.ok("start", cid)
    rt.wait_status(cid, "stopped")
    addr, route, mtu, names = (bundle.path / "stdout").read_text().splitlines()
    assert f"inet {ip}/24 " in addr
    assert route.split() == ["default", "via", net.gateway, "dev", "eth0"]
    assert bridge["addresses"] == [net.gateway]
    assert int(mtu) == bridge["mtu"] == uplink_mtu()
    assert names == "eth0 lo"
    deadline = time.monotonic() + 10
    while links(cid):  # the kernel takes the veth pair along with the namespace (asynchronously)
        assert time.monotonic() < deadline, links(cid)
        time.sleep(0.01)
    rt.ok("delete", cid)
    assert links(str(rt.root)) == {}  # veth, bridge and its address: gone with the last container
    assert net.gone() == []


@pytest.mark.pyrt_only
def test_published_port_from_host_loopback_bridge_address_and_gateway(rt, bundle):
    net = Net()
    cid = rt.new_id()
    port = free_port()
    web_server(net.into(bundle), f"hello-{cid}")
    rt.create(bundle, cid, "-p", f"{port}:8080")
    st = rt.state(cid)  # another process than create: the choice is in the annotations
    assert st["annotations"][PORTS] == f"{port}:8080/tcp"
    rt.ok("start", cid)
    ip = st["annotations"][ADDRESS]
    assert http_get("127.0.0.1", port) == f"hello-{cid}\n"  # OUTPUT DNAT + route_localnet
    assert http_get(ip, 8080) == f"hello-{cid}\n"  # straight to the container
    assert http_get(net.gateway, port) == f"hello-{cid}\n"  # a local address of the host
    rt.ok("delete", "--force", cid)
    with pytest.raises(OSError):
        http_get("127.0.0.1", port, timeout=0)
    assert not nft_mentions(cid)


@pytest.mark.pyrt_only
def test_annotations_in_config_json_work_alone(rt, bundle):
    net = Net()
    port = free_port()
    web_server(net.into(bundle), "from-annotations")
    bundle.config["annotations"][PORTS] = f"127.0.0.1:{port}:8080"
    cid = rt.create(bundle)
    rt.ok("start", cid)
    assert http_get("127.0.0.1", port) == "from-annotations\n"
    # published on 127.0.0.1 only: the host's bridge address does not lead there
    with pytest.raises(OSError):
        http_get(net.gateway, port, timeout=0)
    rt.ok("delete", "--force", cid)


@pytest.mark.pyrt_only
def test_container_to_container_and_hairpin(rt, bundle):
    net = Net()
    port = free_port()
    server = rt.create(web_server(net.into(bundle), "served"), None, "-p", f"{port}:8080")
    rt.ok("start", server)
    ip = address(rt, server)
    http_get(ip, 8080)  # up
    client = bundle.copy("client")
    client.args("sh", "-c", f"wget -O - http://{ip}:8080/ && wget -O - http://{net.gateway}:{port}/").write()
    r = rt("run", "--network", "bridge", "--bundle", str(client.path), rt.new_id())
    assert r.returncode == 0, r.stderr
    assert r.stdout == "served\nserved\n"  # directly, and through the published port
    rt.ok("delete", "--force", server)


@pytest.mark.pyrt_only
def test_udp_port_publishing(rt, bundle, tmp_path):
    net = Net()
    port = free_port(socket.SOCK_DGRAM)
    python_bundle(net.into(bundle), tmp_path, (
        "import socket\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.bind(('0.0.0.0', 5353))\n"
        "while True:\n"
        "    data, peer = s.recvfrom(512)\n"
        "    s.sendto(b'echo:' + data, peer)\n"))
    cid = rt.create(bundle, None, "-p", f"{port}:5353/udp")
    rt.ok("start", cid)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        deadline = time.monotonic() + 15
        while True:
            s.sendto(b"ping", ("127.0.0.1", port))
            try:
                reply = s.recv(512)
                break
            except TimeoutError:
                assert time.monotonic() < deadline, "no UDP reply through the published port"
    assert reply == b"echo:ping"
    table = nft_table()
    assert any(e[0]["elem"]["val"]["concat"] == ["udp", port] for e in table["ports"])
    rt.ok("delete", "--force", cid)


@pytest.mark.pyrt_only
def test_delete_removes_the_veth_of_a_namespace_that_lives_on(rt, bundle):
    Net().into(bundle).args("sleep", "100")
    cid = rt.create(bundle, None, "--network", "bridge")
    held = os.open(f"/proc/{rt.state(cid)['pid']}/ns/net", os.O_RDONLY)  # as `ip netns attach` would
    try:
        rt.ok("delete", "--force", cid)
        assert links(cid) == {}
        assert links(str(rt.root)) == {}
    finally:
        os.close(held)


@pytest.fixture
def rt2(rt, tmp_path):
    """A second --root beside `rt`'s (say podman's beside a script's), cleaned up with the test."""
    other = Runtime(tmp_path / "state2")
    yield other
    other.cleanup()
    rt.ids |= other.ids  # the leak check looks for their processes and nft elements too
    assert not other.root.exists() or not any(other.root.iterdir()), "state left under the second root"


@pytest.mark.pyrt_only
def test_twenty_parallel_creates_of_two_roots_get_distinct_addresses(rt, rt2, bundle):
    net = Net()
    net.into(bundle).args("sleep", "100").write()
    ids = [(runtime, runtime.new_id()) for runtime in (rt, rt2) * 10]
    procs = []
    for runtime, cid in ids:
        with open(bundle.path / f"create-{cid}.log", "w") as out:  # files, not pipes: the inits inherit them
            procs.append(subprocess.Popen(runtime.cmd("create", "--bundle", str(bundle.path), "--network", "bridge",
                                                      cid), stdin=subprocess.DEVNULL, stdout=out, stderr=out))
    for (_, cid), proc in zip(ids, procs, strict=True):
        assert proc.wait(timeout=120) == 0, (bundle.path / f"create-{cid}.log").read_text()
    addresses = [address(runtime, cid) for runtime, cid in ids]
    assert len(set(addresses)) == 20  # one address book for the host, whatever the root
    assert all(a.startswith(net.prefix + ".") and a != net.gateway for a in addresses)
    bridge = link(net.bridge)["index"]
    assert len([n for n, veth in links(str(rt.root.parent)).items() if veth["master"] == bridge]) == 20
    deletes = [subprocess.Popen(runtime.cmd("delete", "--force", cid)) for runtime, cid in ids]
    assert all(p.wait(timeout=120) == 0 for p in deletes)
    assert links(str(rt.root.parent)) == {}
    assert net.gone() == []


@pytest.mark.pyrt_only
def test_two_roots_share_a_bridge_and_the_last_one_out_removes_it(rt, rt2, bundle):
    """podman's --root and a script's on one bridge: both work, even with the same container id,
    reach each other, and the bridge and its rules stay until the last container of either goes."""
    net = Net()
    port = free_port()
    cid = rt.new_id()
    rt.create(web_server(net.into(bundle), "first"), cid, "-p", f"{port}:8080")
    rt.ok("start", cid)
    client = bundle.copy("client").args("sleep", "100")
    client.config["linux"]["cgroupsPath"] = f"/pyrt-root2-{cid}"  # (the same id: default cgroups would clash)
    rt2.create(client, cid, "--network", "bridge")  # the same id, under another root
    first, second = address(rt, cid), address(rt2, cid)
    assert first != second
    rt.ok("delete", "--force", cid)
    assert link(net.bridge) and records(rt2.root) and not records(rt.root)
    assert not nft_mentions(first)  # the first one's ports went with it, the table stays for the bridge
    rt2.ok("start", cid)
    server = rt.create(web_server(bundle.copy("again"), "again"), None, "-p", f"{port}:8080")  # joins it
    rt.ok("start", server)
    # from the second root's container, through the published port
    assert get_in(f"/proc/{rt2.state(cid)['pid']}/ns/net", net.gateway, port, 15) == "again\n"
    rt.ok("delete", "--force", server)
    assert link(net.bridge)
    rt2.ok("delete", "--force", cid)
    assert net.gone() == []  # the last one out, whatever its root


@pytest.mark.pyrt_only
def test_bridge_mode_turns_forwarding_on(rt, bundle):
    """A fresh machine does not forward; containers' routed traffic (hairpin, replies to the
    outside, other hosts reaching published ports) needs it, as with Docker and netavark."""
    assert FORWARDING.read_text().strip() == "0"
    net = Net()
    cid = rt.create(net.into(bundle).args("sleep", "100"), None, "--network", "bridge")
    assert FORWARDING.read_text().strip() == "1"
    rt.ok("delete", "--force", cid)
    assert FORWARDING.read_text().strip() == "1"  # left on, as Docker and netavark leave it: others may need it


def kill_create(rt, bundle, cid: str, when, *flags: str) -> None:
    """Start `create` of `cid` and SIGKILL it when `when(proc)` returns true (polled), or at its
    end; then reap what it left running."""
    bundle.write()
    with open(bundle.path / "create.log", "w") as out:
        create = subprocess.Popen(rt.cmd("create", "--bundle", str(bundle.path), *flags, cid),
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        while create.poll() is None and not when(create):
            pass
    finally:
        create.send_signal(signal.SIGKILL)
        create.wait()
        reap()
    assert "level=error" not in (bundle.path / "create.log").read_text()  # killed, not failed


def assert_left_nothing(rt, cid: str, net: Net) -> None:
    rt.ok("delete", "--force", cid)
    rt.ok("delete", "--force", cid)  # idempotent
    assert links(cid) == {}
    assert records(cid=cid) == []
    assert not nft_mentions(cid)
    assert net.gone() == []


@pytest.mark.pyrt_only
def test_sigkilled_create_then_delete_force_leaves_nothing(rt, bundle):
    net = Net()
    net.into(bundle).args("sleep", "100")
    cid = rt.new_id()
    kill_create(rt, bundle, cid, lambda _: links(cid), "-p", f"{free_port()}:80")  # its veth exists: mid-way
    # the address book survived: the next container gets another address
    held = records(cid=cid)[0].split()[1]
    other = rt.create(bundle, None, "--network", "bridge")
    assert address(rt, other) not in (held, net.gateway)
    rt.ok("delete", "--force", other)
    assert_left_nothing(rt, cid, net)


@pytest.mark.pyrt_only
@pytest.mark.parametrize("nth", range(1, 7))
def test_sigkill_at_each_netlink_step_of_a_create(rt, bundle, nth):
    """Killed right after its nth change to the host's links or addresses (the bridge made, its
    alias and MTU, its address, the veth pair, ...): `delete --force` removes everything, and the
    next create on that bridge works. (Once, a bridge killed before its mark stayed forever.)"""
    from pyroute2 import IPRoute

    net = Net()
    net.into(bundle).args("sleep", "100").config["annotations"][PORTS] = f"{free_port()}:80"
    cid = rt.new_id()
    seen = []
    with IPRoute() as events:
        events.bind()  # link and address changes, as the kernel makes them

        def nth_change(_) -> bool:
            if select.select([events], [], [], 0.05)[0]:
                for msg in events.get():
                    name = msg.get("IFLA_IFNAME") or msg.get("IFA_LABEL") or ""
                    if msg["event"] in ("RTM_NEWLINK", "RTM_NEWADDR") and (name == net.bridge or
                                                                            name.startswith("pv0ad5")):
                        seen.append(f"{msg['event']} {name}")
            return len(seen) >= nth

        kill_create(rt, bundle, cid, nth_change)
    assert_left_nothing(rt, cid, net)
    again = rt.create(bundle, None, "--network", "bridge")
    rt.ok("delete", "--force", again)
    assert net.gone() == []


@pytest.mark.pyrt_only
def test_sigkill_at_random_instants_of_networked_creates(rt, bundle):
    """Many creates (each making its bridge, ports and veth) killed at random instants: after
    `delete --force` nothing is left on the host, and a create on that bridge works."""
    net = Net()
    bundle.args("sleep", "100")
    started = time.monotonic()
    rt.ok("delete", "--force", rt.create(net.into(bundle), None, "-p", f"{free_port()}:80"))
    took = time.monotonic() - started  # a whole create (and delete): kills land anywhere in a create
    for _ in range(25):
        net = Net()
        net.into(bundle).config["annotations"][PORTS] = f"{free_port()}:80"
        cid = rt.new_id()
        at = time.monotonic() + random.uniform(0, took)
        kill_create(rt, bundle, cid, lambda _, at=at: time.sleep(0.001) or time.monotonic() >= at)
        assert_left_nothing(rt, cid, net)
        rt.ok("delete", "--force", rt.create(bundle))
        assert net.gone() == []


@pytest.fixture
def outside(tmp_path):
    """Another host, as a network namespace behind a veth pair of the test's own /30: yields
    (get_in there, the host's address facing it)."""
    prefix = free_prefix()
    holder = subprocess.Popen(["unshare", "--net", "sleep", "300"])
    host_end = "po" + uuid.uuid4().hex[:8]
    try:
        ns = f"/proc/{holder.pid}/ns/net"
        wait_for(lambda: os.readlink(ns) != os.readlink("/proc/self/ns/net"), 5, "the namespace")
        subprocess.run(["ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns], check=True)
        subprocess.run(["ip", "addr", "add", f"{prefix}.1/30", "dev", host_end], check=True)
        subprocess.run(["ip", "link", "set", host_end, "up"], check=True)

        for cmd in (f"ip addr add {prefix}.2/30 dev eth0", "ip link set eth0 up", "ip link set lo up",
                    f"ip route add default via {prefix}.1"):
            subprocess.run(["nsenter", f"--net={ns}", *cmd.split()], check=True)
        yield lambda host, port, timeout: get_in(ns, host, port, timeout), f"{prefix}.1"
    finally:
        subprocess.run(["ip", "link", "del", host_end], capture_output=True)
        holder.kill()
        holder.wait()


@pytest.mark.pyrt_only
def test_other_hosts_reach_published_ports_but_not_unpublished_ones(rt, bundle, outside):
    """With forwarding on, the host routes for other hosts: they reach what is published (DNAT)
    and nothing else of the containers (firewall.py's forward chain), as before forwarding."""
    there, host = outside
    net = Net()
    port = free_port()
    cid = rt.create(web_server(net.into(bundle), "published"), None, "-p", f"{port}:8080")
    rt.ok("start", cid)
    http_get(address(rt, cid), 8080)  # up
    assert there(host, port, 10) == "published\n"
    assert there(address(rt, cid), 8080, 2) == "timed out"  # routed to the container's own port: dropped
    rt.ok("delete", "--force", cid)


# One UDP datagram (payload: its destination) sent from eth0 as a raw Ethernet frame to the
# gateway's MAC: argv = gateway MAC, source address, destination address, port.
RAW_UDP = """
import socket, struct, sys
mac, src, dst, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def csum(b):
    b += b"\\0" * (len(b) % 2)
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s & 0xffff) + (s >> 16)
    return ~((s & 0xffff) + (s >> 16)) & 0xffff
data = dst.encode()
udp = struct.pack("!HHHH", 40000, port, 8 + len(data), 0) + data
pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 17, len(udp))
udp = udp[:6] + struct.pack("!H", csum(pseudo + udp) or 0xffff) + udp[8:]
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
own = bytes.fromhex(open("/sys/class/net/eth0/address").read().strip().replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
s.send(bytes.fromhex(mac.replace(":", "")) + own + b"\\x08\\x00" + ip + udp)
"""


@pytest.mark.pyrt_only
def test_containers_cannot_reach_the_hosts_loopback(rt, bundle):
    """route_localnet on the bridge (for DNAT from 127.0.0.1) would also let packets to 127.0.0.1
    in from the bridge (CVE-2020-8558): a container with CAP_NET_RAW (in Docker's default set)
    sends one as a raw frame to the bridge; the host's service must not get it."""
    net = Net()
    cid = rt.create(net.into(bundle).args("sleep", "100"), None, "--network", "bridge")
    netns = f"/proc/{rt.state(cid)['pid']}/ns/net"
    mac = Path(f"/sys/class/net/{net.bridge}/address").read_text().strip()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as service:
        service.bind(("0.0.0.0", 0))
        service.settimeout(2)
        for dst in (net.gateway, "127.0.0.1"):  # to the gateway it arrives: the raw frame itself is right
            r = subprocess.run(["nsenter", f"--net={netns}", "/usr/bin/python3", "-I", "-c", RAW_UDP, mac,
                                address(rt, cid), dst, str(service.getsockname()[1])],
                               capture_output=True, text=True, timeout=30)
            assert r.returncode == 0, r.stderr
        received = []
        with contextlib.suppress(TimeoutError):
            while True:
                received.append(service.recv(100).decode())
    assert received == [net.gateway]
    rt.ok("delete", "--force", cid)


@pytest.mark.pyrt_only
def test_plain_containers_never_import_pyroute2(rt, bundle):
    def imports(*flags: str) -> str:
        cid = rt.new_id()
        r = subprocess.run([sys.executable, "-X", "importtime", shutil.which(rt.binary), "--root", str(rt.root), "run",
                            "--bundle", str(bundle.path), *flags, cid], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stderr

    bundle.args("true").write()
    assert "pyroute2" not in imports()
    Net().into(bundle).write()
    assert "pyroute2" in imports("--network", "bridge")  # the check can see it


@pytest.mark.pyrt_only
def test_flagship_hello_world_with_published_port(rt):
    """The README's main command: `pyrt run -p 8080:8080 bundles/hello-world`."""
    assert os.path.exists(HELLO_BUNDLE / "rootfs" / "hello"), "build it first: make bundles"
    log = rt.root.parent / "hello.log"
    with open(log, "w") as out:
        run = subprocess.Popen(rt.cmd("run", "-p", "8080:8080", str(HELLO_BUNDLE)), stdin=subprocess.DEVNULL,
                               stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 30
        while not rt("list", "-q").stdout.strip():
            assert time.monotonic() < deadline and run.poll() is None, "pyrt run ended early"
            time.sleep(0.05)
        rt.ids.add(rt("list", "-q").stdout.strip())
        curl = subprocess.run(["curl", "-sS", "-m", "10", "--retry", "20", "--retry-connrefused", "--retry-delay", "0",
                               "http://127.0.0.1:8080/"], capture_output=True, text=True, timeout=60)
        assert curl.stdout == "Hello World!\n", curl.stderr
    finally:
        run.send_signal(signal.SIGTERM)  # forwarded: the server shuts down cleanly
        code = run.wait(timeout=30)
    output = log.read_text()
    assert code == 0, output
    assert "hello: stopped" in output
    assert links(str(rt.root)) == {}
