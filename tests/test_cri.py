"""The Kubernetes node path (issue 15): containerd's CRI plugin with a `pyrt` RuntimeClass handler
(the runc v2 shim with BinaryName = the runtime under test), driven with crictl 1.26 as a kubelet
drives it. Every scenario runs twice: with the `pyrt` handler, and with `runc` as the oracle.

One private containerd per module (tests/engines.py CriContainerd: its own root, state, sockets,
network namespaces, a CNI bridge + host-local + portmap network with a bridge of its own); images
made here and imported offline. After each test no pod, container, runtime state, mount, netns,
veth, cgroup or process may be left; after the module, not the bridge, portmap's iptables chains
or containerd itself either, and ip_forward is as it was.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from pathlib import Path

import engines
import pytest
from conftest import wait_for

pytestmark = pytest.mark.pyrt_only  # the runc handler is the oracle here: PYRT_BIN=runc adds nothing

BUSYBOX = "localhost/busybox:latest"
HELLO = "localhost/hello-world:latest"  # bundles/hello-world: "Hello World!" on :8080
POD, CONTAINER, NODE = 0, 1, 2  # runtime.v1.NamespaceMode
BIDIRECTIONAL = 2  # runtime.v1.MountPropagation.PROPAGATION_BIDIRECTIONAL


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    c = engines.CriContainerd(tmp_path_factory.mktemp("cri"))
    try:
        c.import_image(engines.BUSYBOX_ROOTFS, BUSYBOX, cmd=["/bin/sh"])
        c.import_image(engines.HELLO_ROOTFS, HELLO, entrypoint=["/hello"])
        yield c
    finally:
        left = c.close()
        assert not left, "the CRI node left:\n  " + "\n  ".join(left)


class Kubelet:
    """What a kubelet asks of the CRI for one handler: pods, containers in them, their removal."""

    def __init__(self, node: engines.CriContainerd, handler: str, tmp: Path) -> None:
        self.node, self.handler, self.tmp = node, handler, tmp
        self.pods: dict[str, tuple[Path, dict]] = {}  # pod id -> its config (file, contents)

    def run_pod(self, name: str, host_network: bool = False, port_mappings: tuple[dict, ...] = ()) -> str:
        """A pod sandbox with our RuntimeClass handler, as a kubelet asks for one: a pid namespace
        per container, the pod's network (or the node's, keeping its hostname), its cgroups
        under the node's parent."""
        uid = uuid.uuid4().hex
        namespaces = {"pid": CONTAINER, "network": NODE if host_network else POD}
        config = {"metadata": {"name": name, "namespace": "pyrt-test", "uid": uid, "attempt": 0},
                  "log_directory": str(self.tmp / "logs" / name), "port_mappings": list(port_mappings),
                  "linux": {"cgroup_parent": f"{self.node.cgroup.path}/pod{uid}",
                            "security_context": {"namespace_options": namespaces}},
                  **({} if host_network else {"hostname": name})}
        path = self.tmp / f"pod-{name}.json"
        path.write_text(json.dumps(config))
        pod = self.node.cri_ok("runp", "--runtime", self.handler, str(path)).stdout.strip()
        self.pods[pod] = (path, config)
        return pod

    def create(self, pod: str, name: str, image: str = BUSYBOX, linux: dict | None = None, **config) -> str:
        """A started container in `pod` (config: CRI ContainerConfig fields), in the pod's
        namespaces as a kubelet sets them."""
        path, pod_config = self.pods[pod]
        linux = linux or {}
        linux.setdefault("security_context", {})["namespace_options"] = \
            pod_config["linux"]["security_context"]["namespace_options"]
        (self.tmp / f"ctr-{name}.json").write_text(json.dumps({
            "metadata": {"name": name}, "image": {"image": image}, "log_path": f"{name}.log", "linux": linux,
            **config}))
        cid = self.node.cri_ok("create", pod, str(self.tmp / f"ctr-{name}.json"), str(path)).stdout.strip()
        self.node.cri_ok("start", cid)
        return cid

    def inspect(self, cid: str) -> dict:
        return json.loads(self.node.cri_ok("inspect", cid).stdout)

    def state(self, cid: str) -> str:
        return self.inspect(cid)["status"]["state"]

    def runtime_state(self, cid: str) -> dict:
        """`state` of `cid` from the handler's own binary, in the shim's Root for it: the proof
        that this runtime runs it (runc and pyrt cannot read each other's state)."""
        root = self.node.base / "runtime-root" / self.handler / self.node.NAMESPACE
        r = subprocess.run([self.node.binaries[self.handler], "--root", str(root), "state", cid],
                           capture_output=True, text=True, timeout=30, check=True)
        return json.loads(r.stdout)

    def remove_pod(self, pod: str) -> None:
        """As a kubelet: stop the pod's containers and sandbox, remove it all, then its cgroup
        (the pod-level cgroup is the kubelet's: runtimes make it if missing, runc leaves it)."""
        self.node.cri_ok("stopp", pod)
        self.node.cri_ok("rmp", pod)
        parent = self.pods.pop(pod)[1]["linux"]["cgroup_parent"].lstrip("/")
        for hierarchy in engines.CGROUP_FS.iterdir():
            with contextlib.suppress(FileNotFoundError):
                (hierarchy / parent).rmdir()


@pytest.fixture(params=engines.CriContainerd.HANDLERS)
def kubelet(node, request, tmp_path):
    """A kubelet for one handler; fails the test if its pods left anything behind."""
    k = Kubelet(node, request.param, tmp_path)
    yield k
    leaks = node.leaks()
    if leaks:
        pytest.fail("leaked:\n  " + "\n  ".join(leaks))


def cgroup_file(kubelet: Kubelet, cid: str, controller: str, name: str) -> str:
    path = kubelet.inspect(cid)["info"]["runtimeSpec"]["linux"]["cgroupsPath"]
    return (engines.CGROUP_FS / controller / path.lstrip("/") / name).read_text().strip()


def test_pod_with_env_args_mounts_and_logs(kubelet, tmp_path):
    ro, rw = tmp_path / "config", tmp_path / "data"
    ro.mkdir()
    rw.mkdir()
    (ro / "greeting").write_text("from the host\n")
    pod = kubelet.run_pod("web")
    script = ('echo "$GREETING from $(hostname)"; cat /config/greeting; echo written > /data/out; '
              'touch /config/x 2>/dev/null || echo config is read-only; echo to-stderr >&2; echo "args: $*"')
    cid = kubelet.create(pod, "app", command=["sh", "-c", script, "sh"], args=["one", "two"],
                         envs=[{"key": "GREETING", "value": "hello"}],
                         mounts=[{"container_path": "/config", "host_path": str(ro), "readonly": True},
                                 {"container_path": "/data", "host_path": str(rw)}])
    assert kubelet.runtime_state(pod)["status"] == "running"  # the handler's runtime runs the pod
    wait_for(lambda: kubelet.state(cid) == "CONTAINER_EXITED", what="the container to exit")
    status = kubelet.inspect(cid)["status"]
    assert (status["exitCode"], status["reason"]) == (0, "Completed")
    logs = kubelet.node.cri_ok("logs", cid)
    assert logs.stdout == "hello from web\nfrom the host\nconfig is read-only\nargs: one two\n"
    assert logs.stderr == "to-stderr\n"
    assert (rw / "out").read_text() == "written\n"
    pod_status = json.loads(kubelet.node.cri_ok("inspectp", pod).stdout)["status"]
    assert pod_status["state"] == "SANDBOX_READY" and pod_status["network"]["ip"].startswith("10.213.")
    kubelet.remove_pod(pod)


def test_exec_with_and_without_a_terminal(kubelet):
    pod = kubelet.run_pod("exec")
    cid = kubelet.create(pod, "sleeper", command=["sleep", "1000"])
    r = kubelet.node.cri("exec", cid, "sh", "-c", "echo out; echo err >&2; cat /proc/1/cmdline; exit 3")
    assert r.stdout == "out\nsleep\x001000\x00" and r.stderr.startswith("err\n")
    assert r.returncode != 0 and "command terminated with exit code 3" in r.stderr
    # ExecSync, as liveness probes use it
    assert kubelet.node.cri_ok("exec", "--sync", cid, "sh", "-c", "echo probe ok").stdout.split() == ["probe", "ok"]
    r = kubelet.node.cri("exec", "--sync", cid, "sh", "-c", "exit 7")
    assert r.returncode != 0 and "exited with 7" in r.stderr, r.stderr

    t = kubelet.node.cri_pty("exec", "-it", cid, "sh")
    try:
        t.expect("# ")
        t.send("tty; echo $((6*7))\n")
        t.expect("42")
        t.send("exit 0\n")
        assert t.wait() == 0, t.text
    finally:
        t.close()
    assert "/dev/pts/" in t.text, t.text
    kubelet.remove_pod(pod)


def test_stats_update_stop(kubelet):
    pod = kubelet.run_pod("limits")
    cid = kubelet.create(pod, "busy", command=["sh", "-c", "trap 'exit 5' TERM; while :; do :; done"],
                         linux={"resources": {"memory_limit_in_bytes": 96 << 20, "cpu_shares": 512}})
    assert cgroup_file(kubelet, cid, "memory", "memory.limit_in_bytes") == str(96 << 20)

    def stats() -> dict:
        s = json.loads(kubelet.node.cri_ok("stats", "-o", "json", "--id", cid).stdout)["stats"]
        return s[0] if s else {}

    busy = wait_for(lambda: (s := stats()) and int(s["cpu"]["usageCoreNanoSeconds"]["value"]) > 10**7 and s,
                    what="cpu usage in the stats")
    assert int(busy["memory"]["workingSetBytes"]["value"]) > 0

    kubelet.node.cri_ok("update", "--memory", str(64 << 20), "--cpu-share", "256", cid)
    assert cgroup_file(kubelet, cid, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert cgroup_file(kubelet, cid, "cpu", "cpu.shares") == "256"

    kubelet.node.cri_ok("stop", "--timeout", "10", cid)  # SIGTERM: the trap exits 5
    assert kubelet.inspect(cid)["status"]["exitCode"] == 5
    kubelet.node.cri_ok("rm", cid)
    kubelet.remove_pod(pod)


def test_memory_limit_oom_kills(kubelet):
    pod = kubelet.run_pod("oom")
    # the shell holds 64 MiB of "a"s in a variable: over the 32 MiB limit
    cid = kubelet.create(pod, "hog", command=["sh", "-c", 'x=$(head -c 67108864 /dev/zero | tr "\\0" a); echo no'],
                         linux={"resources": {"memory_limit_in_bytes": 32 << 20}})
    wait_for(lambda: kubelet.state(cid) == "CONTAINER_EXITED", 60, "the container to be OOM-killed")
    status = kubelet.inspect(cid)["status"]
    assert (status["reason"], status["exitCode"]) == ("OOMKilled", 137), status
    kubelet.remove_pod(pod)


@pytest.fixture
def shared_dir(tmp_path):
    """A host directory on a shared mount, as kubelet makes /var/lib/kubelet (containerd refuses
    a Bidirectional volume elsewhere); unmounted with everything below it at the end."""
    path = tmp_path / "shared"
    (path / "in-container").mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "--recursive", "--lazy", str(path)], check=True)


def test_bidirectional_volume(kubelet, shared_dir):
    """mountPropagation: Bidirectional, as a CSI node plugin uses it: a mount made in the
    container appears on the host, and its unmount too."""
    pod = kubelet.run_pod("csi")
    cid = kubelet.create(pod, "plugin", command=["sleep", "1000"],
                         mounts=[{"container_path": "/plugin", "host_path": str(shared_dir),
                                  "propagation": BIDIRECTIONAL}],
                         linux={"security_context": {"capabilities": {"add_capabilities": ["SYS_ADMIN"]}}})
    spec = kubelet.inspect(cid)["info"]["runtimeSpec"]
    assert spec["linux"]["rootfsPropagation"] == "rshared"  # what containerd sends for it
    target = shared_dir / "in-container"
    kubelet.node.cri_ok("exec", cid, "mount", "-t", "tmpfs", "-o", "size=16k", "csi-volume", "/plugin/in-container")
    assert wait_for(lambda: engines.mounts_matching(f" {target} "), 5, "the mount on the host")
    kubelet.node.cri_ok("exec", cid, "umount", "/plugin/in-container")
    wait_for(lambda: not engines.mounts_matching(f" {target} "), 5, "the unmount on the host")
    kubelet.remove_pod(pod)


def test_host_network_pod(kubelet):
    veths = kubelet.node.network.veths()
    pod = kubelet.run_pod("hostnet", host_network=True)
    cid = kubelet.create(pod, "netns", command=["sleep", "1000"])
    inside = kubelet.node.cri_ok("exec", cid, "readlink", "/proc/self/ns/net").stdout.strip()
    assert inside == Path("/proc/self/ns/net").readlink().as_posix()
    assert kubelet.node.network.veths() == veths  # no CNI for a host-network pod
    kubelet.remove_pod(pod)


def test_port_forward_and_host_port(kubelet):
    """`kubectl port-forward` (CRI's streaming server dials the port inside the pod's network
    namespace) and a hostPort on 127.0.0.1 (the portmap plugin's DNAT)."""
    host_port = engines.free_port(18080)
    pod = kubelet.run_pod("hello", port_mappings=({"protocol": 0, "container_port": 8080, "host_port": host_port,
                                                   "host_ip": "127.0.0.1"},))
    kubelet.create(pod, "hello", image=HELLO)
    local = engines.free_port(18081)
    forward = subprocess.Popen(kubelet.node.crictl_cmd("port-forward", pod, f"{local}:8080"), env=kubelet.node.env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert engines.http_get(f"http://127.0.0.1:{local}/") == "Hello World!\n"
    finally:
        forward.terminate()
        forward.wait(timeout=10)
    assert engines.http_get(f"http://127.0.0.1:{host_port}/") == "Hello World!\n"
    kubelet.remove_pod(pod)


# ----------------------------------------------------------------------------- oom_score_adj


def has_cap_sys_resource() -> bool:
    bounding = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("CapBnd:"))
    return bool(int(bounding.split()[1], 16) >> 24 & 1)


def test_sandbox_oom_score_adj_error_names_the_cause(rt, bundle):
    """A pod sandbox asks for oom_score_adj -998 (unless containerd has restrict_oom_score_adj):
    lowering it needs CAP_SYS_RESOURCE, which root lacks on some hosts (this VM). The error must
    say what and why, as docs/kubernetes.md tells."""
    bundle.process["oomScoreAdj"] = -998
    bundle.write()
    r = rt("run", "--bundle", str(bundle.path), rt.new_id())
    if has_cap_sys_resource():
        assert r.returncode == 0, r.stderr
    else:
        assert r.returncode == 1 and "set oom_score_adj -998: permission denied" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
