"""linux.netDevices: a host link moved into the container's network namespace, renamed as asked,
with its addresses and up; moved back under its own name on delete (pyrt; runc 1.5 leaves it to
die with the namespace). Links are veth pairs the tests make (this kernel has no dummy driver),
named pt<hex>."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
from conftest import IS_RUNC

ADDRESS = "10.213.7.1/24"  # on a link of a namespace the test owns: never routed


@pytest.fixture
def link():
    """A veth pair on the host: the first end (with ADDRESS, up) is the one to move."""
    name = "pt" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", name + "p"], check=True)
    subprocess.run(["ip", "addr", "add", ADDRESS, "dev", name], check=True)
    subprocess.run(["ip", "link", "set", name, "up"], check=True)
    yield name
    subprocess.run(["ip", "link", "del", name], capture_output=True)
    subprocess.run(["ip", "link", "del", name + "p"], capture_output=True)


def on_host(name: str) -> str | None:
    """`ip -br addr` of a host link, None if the host has none of that name."""
    r = subprocess.run(["ip", "-br", "addr", "show", "dev", name], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else None


def with_devices(bundle, devices: dict):
    bundle.config["linux"]["netDevices"] = devices
    return bundle


def test_moved_in_renamed_with_its_address(rt, bundle, link):
    cid = rt.create(with_devices(bundle, {link: {"name": "eth7"}}).args("sleep", "100"))
    assert on_host(link) is None and os.path.exists(f"/sys/class/net/{link}p")  # gone from the host
    rt.ok("start", cid)
    out = rt.ok("exec", cid, "ip", "addr", "show", "eth7").stdout
    assert "10.213.7.1/24" in out and ",UP" in out.split("\n")[0], out
    rt.ok("delete", "--force", cid)


def test_name_defaults_to_the_hosts(rt, bundle, link):
    bundle = with_devices(bundle, {link: {}}).args("sh", "-c", f"ip addr show {link}")
    bundle.write()
    r = rt("run", "--bundle", str(bundle.path), rt.new_id())
    assert r.returncode == 0 and "10.213.7.1/24" in r.stdout, r.stderr


@pytest.mark.pyrt_only  # runc 1.5 leaves the link in the namespace: a veth dies with it
def test_delete_moves_it_back_under_its_name(rt, bundle, link):
    cid = rt.create(with_devices(bundle, {link: {"name": "eth7"}}).args("sleep", "100"))
    rt.ok("start", cid)
    rt.ok("delete", "--force", cid)
    back = on_host(link)
    assert back and "10.213.7.1/24" in back and on_host("eth7") is None, back
    with open(f"/sys/class/net/{link}/flags") as f:
        assert int(f.read(), 16) & 1  # up again


@pytest.mark.pyrt_only
def test_delete_when_the_name_is_taken_on_the_host(rt, bundle, link):
    """Someone made a link of that name meanwhile: delete still deletes, and says why the
    device could not go back (it dies with the namespace)."""
    cid = rt.create(with_devices(bundle, {link: {"name": "eth7"}}).args("sleep", "100"))
    subprocess.run(["ip", "link", "add", link, "type", "veth", "peer", "name", link + "q"], check=True)
    r = rt("delete", "--force", cid)
    assert r.returncode == 0 and "file exists" in r.stderr and link in r.stderr, r.stderr
    assert rt("state", cid).returncode == 1


@pytest.mark.pyrt_only
def test_failed_create_moves_it_back(rt, bundle, link):
    bundle = with_devices(bundle, {link: {"name": "eth7"}}).args("/nosuch-program")
    bundle.write()
    cid = rt.new_id()
    r = rt("create", "--bundle", str(bundle.path), cid)
    assert r.returncode == 1 and "nosuch-program" in r.stderr, r.stderr
    assert not (rt.root / cid).exists()
    assert "10.213.7.1/24" in (on_host(link) or ""), on_host(link)


def _without_netns(c: dict) -> None:
    c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]


BAD = {  # the config change, pyrt's words (runc's differ: it names the value or fails in the kernel)
    "host-netns": (lambda c, link: _without_netns(c), "linux.netDevices: needs a new network namespace"),
    "joined-netns": (lambda c, link: (_without_netns(c), c["linux"]["namespaces"].append(
        {"type": "network", "path": "/proc/self/ns/net"})), "linux.netDevices: needs a new network namespace"),
    "missing-link": (lambda c, link: c["linux"]["netDevices"].update({"ptnosuch0": {}}),
                     "linux.netDevices: ptnosuch0: no such network device on the host"),
    "loopback": (lambda c, link: c["linux"]["netDevices"].update({"lo": {}}),
                 "linux.netDevices.lo: the loopback device cannot be moved"),
    "bad-name": (lambda c, link: c["linux"]["netDevices"][link].update(name="a/b"),
                 'invalid network device name \\"a/b\\"'),  # quotes escaped in the log line
}


@pytest.mark.parametrize("name", [
    # runc 1.5 sets the host's lo down before the kernel refuses to move it: never ask it to
    pytest.param(n, marks=pytest.mark.pyrt_only) if n == "loopback" else n for n in BAD])
def test_refused(rt, bundle, link, name):
    edit, words = BAD[name]
    with_devices(bundle, {link: {"name": "eth7"}})
    edit(bundle.config, link)
    bundle.args("true").write()
    cid = rt.new_id()
    r = rt("create", "--bundle", str(bundle.path), cid)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr and not (rt.root / cid).exists()
    if not IS_RUNC:  # runc 1.5 moves the links one by one: the first is lost when the second fails
        assert words in r.stderr, r.stderr
        assert on_host(link), "the link stays on the host"


def test_features(rt):
    import json

    assert json.loads(rt.ok("features").stdout)["linux"]["netDevices"] == {"enabled": True}
