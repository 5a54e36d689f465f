"""Networking through the command line. The OCI-pure part (a new network namespace has `lo` up
and nothing else; a namespace given by path is joined untouched) is shared with runc; bridge
mode and published ports are pyrt's own.

Traffic stays on this machine: loopback and addresses inside the namespaces the test made,
each test on its own bridge and subnet (netutil.Net)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import HELLO_BUNDLE, reap
from netutil import (
    ADDRESS,
    PORTS,
    Net,
    address,
    free_port,
    http_get,
    links,
    nft_mentions,
    nft_table,
    python_bundle,
    uplink_mtu,
    web_server,
)

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
    bridge = links(str(rt.root))[net.bridge]
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


@pytest.mark.pyrt_only
def test_twenty_parallel_creates_get_distinct_addresses(rt, bundle):
    net = Net()
    net.into(bundle).args("sleep", "100").write()
    ids = [rt.new_id() for _ in range(20)]
    procs = []
    for cid in ids:
        with open(bundle.path / f"create-{cid}.log", "w") as out:  # files, not pipes: the inits inherit them
            procs.append(subprocess.Popen(rt.cmd("create", "--bundle", str(bundle.path), "--network", "bridge", cid),
                                          stdin=subprocess.DEVNULL, stdout=out, stderr=out))
    for cid, proc in zip(ids, procs, strict=True):
        assert proc.wait(timeout=120) == 0, (bundle.path / f"create-{cid}.log").read_text()
    addresses = [address(rt, cid) for cid in ids]
    assert len(set(addresses)) == 20
    assert all(a.startswith(net.prefix + ".") and a != net.gateway for a in addresses)
    assert len([n for n, link in links(str(rt.root)).items() if link["master"]]) == 20
    deletes = [subprocess.Popen(rt.cmd("delete", "--force", cid)) for cid in ids]
    assert all(p.wait(timeout=120) == 0 for p in deletes)
    assert links(str(rt.root)) == {}
    assert not (rt.root / ".network").exists()


@pytest.mark.pyrt_only
def test_sigkilled_create_then_delete_force_leaves_nothing(rt, bundle):
    net = Net()
    port = free_port()
    net.into(bundle).args("sleep", "100").write()
    cid = rt.new_id()
    with open(bundle.path / "create.log", "w") as out:
        create = subprocess.Popen(rt.cmd("create", "--bundle", str(bundle.path), "-p", f"{port}:80", cid),
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    deadline = time.monotonic() + 30
    while not (veths := links(cid)):  # its veth exists: kill pyrt in the middle of its work
        assert time.monotonic() < deadline and create.poll() is None
        time.sleep(0.001)
    create.send_signal(signal.SIGKILL)
    create.wait()
    reap()
    # the pool survived: the next container gets another address (the veth's name encodes it)
    held = ".".join(str(int(h, 16)) for h in re.findall("..", next(iter(veths))[2:]))
    other = rt.create(bundle, None, "--network", "bridge")
    assert address(rt, other) not in (held, net.gateway)
    rt.ok("delete", "--force", other)
    rt.ok("delete", "--force", cid)
    rt.ok("delete", "--force", cid)  # idempotent
    assert links(str(rt.root)) == {}
    assert not nft_mentions(cid)
    assert not (rt.root / ".network").exists()


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
