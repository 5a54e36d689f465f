"""Private podman and containerd instances driving the runtime under test, for the engine tests.

Everything an engine writes lives in one temporary directory per test module (storage, run and
state dirs, sockets, locks, events), and the cgroups the engines make live under one parent per
module, removed at the end. The runtime is `ENGINE_RUNTIME` (default: the installed launcher
/usr/local/bin/pyrt); `ENGINE_RUNTIME=/usr/sbin/runc` checks the scenarios themselves against runc.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import tarfile
import termios
import time
import uuid
from pathlib import Path

from conftest import shared_bin, wait_for

RUNTIME = os.path.abspath(os.environ.get("ENGINE_RUNTIME", "/usr/local/bin/pyrt"))
RUNTIME_NAME = os.path.basename(RUNTIME)
#: Where the runtime keeps state when the engine passes no --root (podman never does).
DEFAULT_STATE_ROOT = {"runc": "/run/runc", "crun": "/run/crun"}.get(RUNTIME_NAME, "/run/pyrt")
TEMPLATES = Path(__file__).resolve().parent / "engines"
REPO = Path(__file__).resolve().parent.parent
BUSYBOX_ROOTFS = REPO / "bundles" / "busybox" / "rootfs"
HELLO_ROOTFS = REPO / "bundles" / "hello-world" / "rootfs"
CGROUP_FS = Path("/sys/fs/cgroup")


def shared_tool(name: str) -> str:
    """A tool from shared/bin beside the clone (conftest.shared_bin), which must be there."""
    path = shared_bin(name)
    assert path, f"{name} not found in shared/bin beside the repository (set SHARED_BIN)"
    return str(path)


# ----------------------------------------------------------------------------- images


def rootfs_tar(rootfs: Path) -> bytes:
    """The rootfs as an uncompressed tar, owned by root, with stable timestamps (a layer)."""
    buf = io.BytesIO()

    def norm(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = 0
        return info

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(rootfs.iterdir()):
            tar.add(entry, arcname=entry.name, filter=norm)
    return buf.getvalue()


def oci_archive(rootfs: Path, name: str, out: Path, cmd: list[str] | None = None,
                entrypoint: list[str] | None = None) -> Path:
    """Write an OCI image layout tarball of one layer (what `ctr image import` reads): the image
    is made here from a local rootfs, never pulled."""
    layer = rootfs_tar(rootfs)
    blobs: dict[str, bytes] = {}

    def add(data: bytes) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    layer_gz = gzip.compress(layer, mtime=0)
    config = {
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   **({"Cmd": cmd} if cmd else {}), **({"Entrypoint": entrypoint} if entrypoint else {})},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
        "history": [{"created_by": "pyrt tests: " + str(rootfs)}],
    }
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **add(json.dumps(config).encode())},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **add(layer_gz)}],
    }
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", **add(json.dumps(manifest).encode()),
        "platform": {"architecture": "amd64", "os": "linux"},
        "annotations": {"io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rpartition(":")[2]}}]}
    with tarfile.open(out, "w") as tar:
        def put(path: str, data: bytes) -> None:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        put("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        put("index.json", json.dumps(index).encode())
        for digest, data in blobs.items():
            put("blobs/sha256/" + digest.partition(":")[2], data)
    return out


# ----------------------------------------------------------------------------- host checks


def mounts_matching(*needles: str) -> list[str]:
    """Mount points (from our mountinfo) whose line mentions any of `needles`."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if any(n in line for n in needles):
                found.append(line.split()[4])
    return found


def processes_matching(*needles: str) -> list[str]:
    """Processes whose cgroup or command line mentions any of `needles` (zombies included:
    an unreaped process is a leak too)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            text = Path(f"/proc/{pid}/cgroup").read_text()
            text += Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if any(n in text for n in needles):
            found.append(f"{pid} {comm}")
    return found


def reap_orphans(keep: tuple[int, ...] = ()) -> None:
    """Reap our zombie children except `keep`: the test process is a child subreaper (conftest),
    so daemons that double-fork (conmon, containerd's shims) end up as our children."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) in keep:
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(int(pid), os.WNOHANG)


class CgroupParent:
    """A cgroup of our own that every cgroup the engine and the runtime make goes under, in each
    hierarchy; removed (bottom-up) at the end. The host's other cgroups are never touched."""

    def __init__(self, prefix: str) -> None:
        self.name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.path = "/" + self.name

    def dirs(self) -> list[Path]:
        return [h / self.name for h in sorted(CGROUP_FS.iterdir()) if (h / self.name).is_dir()]

    def children(self, needle: str = "") -> list[str]:
        """Cgroups below the parent (all, or those whose name contains `needle`)."""
        found = []
        for top in self.dirs():
            for dirpath, dirnames, _ in os.walk(top):
                found += [os.path.join(dirpath, d) for d in dirnames if needle in d]
        return found

    def remove(self, keep_parent: bool = False) -> list[str]:
        """Remove the parent (unless `keep_parent`) and what is below it; return what could not
        be removed."""
        left = []
        for top in self.dirs():
            for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
                if keep_parent and dirpath == str(top):
                    continue
                try:
                    os.rmdir(dirpath)
                except OSError as e:
                    left.append(f"{dirpath}: {os.strerror(e.errno)}")
        return left


# ----------------------------------------------------------------------------- terminals


class Pty:
    """A command on a new pseudo-terminal (its controlling terminal), as if typed in a shell:
    what `-it` / `-t` need. Output is collected; `expect` waits for text, `send` types."""

    def __init__(self, cmd: list[str], env: dict[str, str], rows: int = 24, cols: int = 80) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
                                     preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        self.output = b""

    def _read(self, timeout: float) -> bool:
        """Read what arrives within `timeout`; False if nothing did or the terminal is closed
        (EIO once no slave fd is left)."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:
            return False
        self.output += data
        return bool(data)

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace").replace("\r\n", "\n")

    def expect(self, needle: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} did not appear on the terminal; got {self.text!r}")
            self._read(0.1)

    def send(self, data: str) -> None:
        os.write(self.master, data.encode())

    def wait(self, timeout: float = 60) -> int:
        """Wait for the command to exit (reading its output); its exit status."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        while self._read(0.1):  # what is still in the buffer
            pass
        if self.proc.poll() is None:
            self.close()
            raise AssertionError(f"{self.proc.args} still running after {timeout}s; output {self.text!r}")
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError):
            os.close(self.master)


def free_port(preferred: int) -> int:
    """`preferred` if nothing listens on it on loopback, else a free port the kernel picks."""
    import socket

    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise AssertionError("no free port")


def http_get(url: str, timeout: float = 20) -> str:
    """GET `url`, retrying until the server is up (or the timeout)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _template(name: str, **subst: str) -> str:
    text = (TEMPLATES / name).read_text()
    for key, value in subst.items():
        text = text.replace(f"@{key}@", value)
    return text


def _run(cmd: list[str], env: dict[str, str], input: str | None, timeout: float, check: bool,
         cwd: str | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd,
                       stdin=subprocess.DEVNULL if input is None else None)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# ----------------------------------------------------------------------------- podman


class Podman:
    """podman with a private image store, run dir and config, whose runtime is the one under
    test, and whose containers' cgroups go under a cgroup parent of our own."""

    def __init__(self, base: Path) -> None:
        self.base = base
        for d in ("home", "tmp", "networks"):
            (base / d).mkdir(parents=True, exist_ok=True)
        subst = {"BASE": str(base), "RUNTIME": RUNTIME, "RUNTIME_NAME": RUNTIME_NAME}
        (base / "containers.conf").write_text(_template("containers.conf", **subst))
        (base / "storage.conf").write_text(_template("storage.conf", **subst))
        self.env = {"PATH": BASE_PATH, "HOME": str(base / "home"), "TMPDIR": str(base / "tmp"),
                    "CONTAINERS_CONF": str(base / "containers.conf"),
                    "CONTAINERS_STORAGE_CONF": str(base / "storage.conf")}
        self.cgroup = CgroupParent("pyrt-podman")
        self.events_seen = 0

    def cmd(self, *args: str) -> list[str]:
        """The podman command line; `run` and `create` get our cgroup parent."""
        if args and args[0] in ("run", "create"):
            args = (args[0], "--cgroup-parent", self.cgroup.path, *args[1:])
        return ["podman", "--runtime", RUNTIME, *args]

    def __call__(self, *args: str, input: str | None = None, timeout: float = 60,
                 check: bool = False) -> subprocess.CompletedProcess:
        return _run(self.cmd(*args), self.env, input, timeout, check)

    def ok(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self(*args, check=True, **kw)

    def pty(self, *args: str, rows: int = 24, cols: int = 80) -> Pty:
        """`podman ARGS` on a terminal of its own (for -it)."""
        return Pty(self.cmd(*args), self.env, rows, cols)

    def import_image(self, rootfs: Path, name: str, *changes: str) -> None:
        """`podman import` of a tarball of a local rootfs (images are made here, never pulled)."""
        tar = self.base / "tmp" / "rootfs.tar"
        tar.write_bytes(rootfs_tar(rootfs))
        args = [a for c in changes for a in ("--change", c)]
        self.ok("import", "--quiet", *args, str(tar), name)
        tar.unlink()

    def inspect(self, name: str) -> dict:
        return json.loads(self.ok("inspect", "--type", "container", name).stdout)[0]

    def container_ids(self) -> list[str]:
        return self.ok("ps", "--all", "--quiet", "--no-trunc").stdout.split()

    def new_container_ids(self) -> set[str]:
        """Ids of the containers created since the last call, from podman's events log."""
        path = self.base / "events.log"
        if not path.exists():
            return set()
        lines = path.read_text().splitlines()
        new, self.events_seen = lines[self.events_seen:], len(lines)
        ids = set()
        for line in new:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("Type") == "container" and event.get("ID"):
                    ids.add(event["ID"])
        return ids

    def leaks(self, ids: set[str]) -> list[str]:
        """What containers `ids` left behind: podman's record, the runtime's state, mounts
        (overlay, shm), processes, cgroups. podman cleans up asynchronously (conmon starts
        `podman container cleanup` when the container exits): give it a moment."""

        def find() -> list[str]:
            reap_orphans()
            found = [f"podman container left: {cid}" for cid in self.container_ids()]
            found += [f"{RUNTIME_NAME} state left: {DEFAULT_STATE_ROOT}/{cid}" for cid in ids
                      if os.path.exists(os.path.join(DEFAULT_STATE_ROOT, cid))]
            if ids:
                found += [f"mount left: {m}" for m in mounts_matching(*ids)]
                found += [f"process left: {p}" for p in processes_matching(*ids)]
            found += [f"cgroup left: {c}" for c in self.cgroup.children("libpod-")]
            return found

        deadline = time.monotonic() + 10
        while (found := find()) and time.monotonic() < deadline:
            time.sleep(0.1)
        if found:  # clean up for the next test
            self("rm", "--force", "--all", "--time", "0")
            for cid in ids:
                _run([RUNTIME, "delete", "--force", cid], self.env, None, 30, False)
        return found

    def close(self) -> list[str]:
        """Remove everything podman made (storage, mounts, cgroups); what could not be."""
        self("rm", "--force", "--all", "--time", "0")
        self("system", "reset", "--force")
        reap_orphans()
        mounts = mounts_matching(str(self.base))
        for m in reversed(mounts):
            subprocess.run(["umount", "-l", m], capture_output=True)
        left = [f"mount left: {m}" for m in mounts]
        left += [f"process left: {p}" for p in processes_matching(str(self.base))]
        left += [f"cgroup not removable: {c}" for c in self.cgroup.remove()]
        return left


# ----------------------------------------------------------------------------- containerd


class Containerd:
    """A private containerd (own root, state, sockets; CRI off), driven with ctr, whose tasks run
    under the runtime under test (`ctr run --runc-binary`) with their state in a private --root."""

    NAMESPACE = "pyrt-test"
    TEMPLATE = "containerd.toml"
    CGROUP_PREFIX = "pyrt-ctr"

    def __init__(self, base: Path, **subst: str) -> None:
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.sock = str(base / "containerd.sock")
        self.runc_root = base / "runc-root"
        self.runtime_roots = [self.runc_root]  # state roots of the runtimes the shims call
        self.fifo_dir = base / "fifo"
        self.cgroup = CgroupParent(self.CGROUP_PREFIX)
        # the shims put their sockets in /run/containerd/s whatever the config says
        self.had_run_dir = os.path.exists("/run/containerd")
        (base / "containerd.toml").write_text(_template(self.TEMPLATE, BASE=str(base), **subst))
        self.env = {"PATH": BASE_PATH, "HOME": str(base), "TMPDIR": str(base)}
        self.log = open(base / "containerd.log", "wb")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(["containerd", "--config", str(base / "containerd.toml")],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=self.env, start_new_session=True)
        wait_for(lambda: self.proc.poll() is not None or self("version").returncode == 0, 30, "containerd to start")
        assert self.proc.poll() is None, (base / "containerd.log").read_text()

    def __call__(self, *args: str, input: str | None = None, timeout: float = 60,
                 check: bool = False) -> subprocess.CompletedProcess:
        return _run(self.cmd(*args), self.env, input, timeout, check)

    def ok(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self(*args, check=True, **kw)

    def cmd(self, *args: str) -> list[str]:
        return ["ctr", "--address", self.sock, "--namespace", self.NAMESPACE, *args]

    def run_args(self, cid: str) -> list[str]:
        """`ctr run` options: our runtime, its private state root, our cgroup parent, our fifo dir."""
        return ["run", "--runc-binary", RUNTIME, "--runc-root", str(self.runc_root), "--fifo-dir", str(self.fifo_dir),
                "--cgroup", f"{self.cgroup.path}/{cid}"]

    def run(self, *args: str, cid: str, image: str, command: tuple[str, ...] = (), **kw) -> subprocess.CompletedProcess:
        return self(*self.run_args(cid), *args, image, cid, *command, **kw)

    def exec_args(self, exec_id: str) -> list[str]:
        return ["task", "exec", "--fifo-dir", str(self.fifo_dir), "--exec-id", exec_id]

    def pty(self, *args: str, rows: int = 24, cols: int = 80) -> Pty:
        return Pty(self.cmd(*args), self.env, rows, cols)

    def task_status(self, cid: str) -> str:
        for line in self.ok("task", "ls").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return fields[2]
        return ""

    def import_image(self, rootfs: Path, name: str, **config) -> None:
        archive = oci_archive(rootfs, name, self.base / "image.tar", **config)
        self.ok("image", "import", str(archive))
        archive.unlink()

    def leaks(self) -> list[str]:
        """What the tests' containers left behind (and remove it): tasks, containers, the
        runtime's state, rootfs mounts, cgroups, processes."""
        found = []
        for line in self.ok("task", "ls", "--quiet").stdout.split():
            found.append(f"task left: {line}")
            self("task", "delete", "--force", line)
        for cid in self.ok("container", "ls", "--quiet").stdout.split():
            found.append(f"container left: {cid}")
            self("container", "delete", cid)
        return found + self.host_leftovers()

    def host_leftovers(self) -> list[str]:
        """What the engine's containers left on the host: the runtime's state, mounts under the
        engine's state dir, cgroups, processes (given 10 s to go)."""
        def find() -> list[str]:
            reap_orphans(keep=(self.proc.pid,))
            left = []
            for root in self.runtime_roots:
                state = root / self.NAMESPACE
                left += [f"runtime state left: {p}" for p in state.iterdir()] if state.is_dir() else []
            left += [f"mount left: {m}" for m in mounts_matching(str(self.base / "state"))]
            left += [f"cgroup left: {c}" for c in self.cgroup.children()]
            left += [f"process left: {p}" for p in processes_matching(self.cgroup.name)]
            return left

        deadline = time.monotonic() + 10
        while (left := find()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return left

    def close(self) -> list[str]:
        """Stop containerd; remove its mounts and our cgroups; what was left."""
        left = self.leaks()
        self("image", "remove", *self.ok("image", "ls", "--quiet").stdout.split())
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            left.append("containerd did not stop on SIGTERM")
        self.log.close()
        reap_orphans()
        shims = processes_matching(self.sock)
        left += [f"shim left: {p}" for p in shims]
        for p in shims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(p.split()[0]), signal.SIGKILL)
        mounts = mounts_matching(str(self.base))
        left += [f"mount left: {m}" for m in mounts]
        for m in reversed(mounts):
            subprocess.run(["umount", "-l", m], capture_output=True)
        left += [f"cgroup not removable: {c}" for c in self.cgroup.remove()]
        if not self.had_run_dir:
            # the shims' socket dir: ours to remove if containerd was not there before
            for d in ("/run/containerd/s", "/run/containerd"):
                with contextlib.suppress(OSError):
                    os.rmdir(d)
        shutil.rmtree(self.base, ignore_errors=True)
        return left


# ----------------------------------------------------------------------------- Kubernetes node (CRI)


class CniNetwork:
    """A CNI network of a test's own (Debian's containernetworking-plugins: bridge + host-local +
    portmap), for podman (a conflist in its network dir) or containerd's CRI (in its conf_dir):
    its bridge, subnet and addresses are ours, and so is removing what CNI leaves on the host by
    design: the bridge, libcni's cached results, portmap's CNI-HOSTPORT-* chains and the nat
    tables iptables-nft made for them if they were not there before, and ip_forward, which the
    bridge turns on as the pods' gateway. What another user of CNI has there is left alone."""

    CACHE = Path("/var/lib/cni")  # libcni's cache (results/), hard-coded in podman 4 and containerd 1.6
    PORTMAP = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK")

    def __init__(self, conflist: Path, ipam_dir: Path, name: str, bridge: str, subnet: str,
                 masquerade: bool = False) -> None:
        self.name, self.bridge, self.subnet = name, bridge, subnet
        self.ip_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
        self.cache_existed = self.CACHE.exists()
        self.tables_before = self._nft_tables()
        self.chains_before = {cmd: self._chains(cmd) for cmd in ("iptables", "ip6tables")}
        gateway = subnet.rsplit(".", 1)[0] + ".1"
        conf = {"cniVersion": "0.4.0", "name": name, "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": masquerade, "hairpinMode": True,
             "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(ipam_dir),
                      "ranges": [[{"subnet": subnet, "gateway": gateway}]]}},
            {"type": "portmap", "capabilities": {"portMappings": True}}]}
        conflist.parent.mkdir(parents=True, exist_ok=True)
        conflist.write_text(json.dumps(conf, indent=1))

    @staticmethod
    def free_subnet(prefix: str = "10.213") -> str:
        """A /24 in PREFIX.0.0/16 that no route of the host covers."""
        import ipaddress

        routes = json.loads(_out("ip", "-j", "route", "show", "table", "all") or "[]")
        taken = [ipaddress.ip_network(r["dst"], strict=False) for r in routes
                 if r.get("dst", "default") != "default" and ":" not in r["dst"]]
        for i in range(256):
            net = ipaddress.ip_network(f"{prefix}.{i}.0/24")
            if not any(net.overlaps(t) for t in taken):
                return str(net)
        raise AssertionError(f"no free /24 in {prefix}.0.0/16")

    @staticmethod
    def _nft_tables() -> set[str]:
        out = _out("nft", "list", "tables")
        return {line.removeprefix("table ").strip() for line in out.splitlines() if line.startswith("table ")}

    @staticmethod
    def _chains(cmd: str) -> set[str]:
        """The user chains of the nat table, as iptables-nft lists them."""
        return {line.split()[1] for line in _out(cmd, "-w", "-t", "nat", "-S").splitlines() if line.startswith("-N")}

    @staticmethod
    def _rules(cmd: str, chain: str = "") -> list[list[str]]:
        """The rules of the nat table (or of one chain), each as the words of `-A CHAIN ...`."""
        import shlex

        lines = _out(cmd, "-w", "-t", "nat", "-S", *([chain] if chain else [])).splitlines()
        return [shlex.split(line) for line in lines if line.startswith("-A")]

    def _our_chains(self, cmd: str) -> set[str]:
        """Chains the plugins made for our pods (portmap's CNI-DN-*, the bridge's masquerade
        CNI-*): the rules that jump to them name our network in a comment."""
        return {rule[-1] for rule in self._rules(cmd) if rule[-2] == "-j" and rule[-1].startswith("CNI-")
                and any(self.name in word for word in rule)} - set(self.PORTMAP)

    def _drop(self, cmd: str, chains: set[str]) -> None:
        """Remove nat chains and the rules that jump to them."""
        for rule in self._rules(cmd):
            if rule[-2] == "-j" and rule[-1] in chains:
                _out(cmd, "-w", "-t", "nat", "-D", *rule[1:])
        for chain in chains:
            _out(cmd, "-w", "-t", "nat", "-F", chain)
            _out(cmd, "-w", "-t", "nat", "-X", chain)

    def veths(self) -> list[str]:
        """The links still attached to our bridge (pods' veths)."""
        out = _out("ip", "-j", "link", "show", "master", self.bridge)
        return [link["ifname"] for link in json.loads(out or "[]")]

    def leaks(self) -> list[str]:
        """What removed pods left: veths on our bridge, iptables chains of our network."""
        return [f"veth left: {v}" for v in self.veths()] + \
            [f"iptables chain left: {c}" for cmd in self.chains_before for c in sorted(self._our_chains(cmd))]

    def close(self) -> list[str]:
        """Undo what the network left on the host; return what could not be undone."""
        _out("ip", "link", "delete", self.bridge)
        for cmd, before in self.chains_before.items():
            self._drop(cmd, self._our_chains(cmd))
            portmap = (self._chains(cmd) - before) & set(self.PORTMAP)
            if portmap and not self._rules(cmd, "CNI-HOSTPORT-DNAT"):  # new, and no one forwards ports now
                self._drop(cmd, portmap)
        for table in sorted(self._nft_tables() - self.tables_before):
            if table in ("ip nat", "ip6 nat") and not self._rules("iptables" if table == "ip nat" else "ip6tables"):
                _out("nft", "delete", "table", *table.split())
        Path("/proc/sys/net/ipv4/ip_forward").write_text(self.ip_forward)
        results = self.CACHE / "results"
        for cached in results.glob(f"{self.name}-*") if results.is_dir() else ():
            cached.unlink()
        if not self.cache_existed:  # libcni's dirs, if we brought them and they are empty now
            for d in (results, self.CACHE):
                with contextlib.suppress(OSError):
                    d.rmdir()
        left = self.leaks()
        if Path(f"/sys/class/net/{self.bridge}").exists():
            left.append(f"bridge left: {self.bridge}")
        if self.subnet.rsplit(".", 1)[0] + "." in _out("nft", "list", "ruleset"):
            left.append(f"nft rules for {self.subnet} left")
        return left


def _out(*cmd: str) -> str:
    """stdout of a host tool ('' if it failed: the callers check the state it leaves)."""
    return subprocess.run(cmd, capture_output=True, text=True).stdout


class CriContainerd(Containerd):
    """A private containerd with the CRI plugin, driven with crictl as a kubelet drives it: pods on
    a CNI network of their own, two RuntimeClass handlers on the runc v2 shim (`runc`, the
    oracle, and `pyrt`, whose BinaryName is the runtime under test), images imported offline."""

    NAMESPACE = "k8s.io"
    TEMPLATE = "containerd-cri.toml"
    CGROUP_PREFIX = "pyrt-cri"
    HANDLERS = ("runc", "pyrt")
    PAUSE = "localhost/pause:pyrt-test"

    def __init__(self, base: Path) -> None:
        base.mkdir(parents=True, exist_ok=True)
        self.crictl = shared_tool("crictl-1.26")
        self.binaries = {"runc": shutil.which("runc", path=BASE_PATH) or "runc", "pyrt": RUNTIME}
        name = "pyrt-test-" + uuid.uuid4().hex[:8]  # the bridge: a name nothing else on a host has
        self.network = CniNetwork(base / "cni" / "10-pyrt-test.conflist", base / "cni-ipam", name,
                                  "crib" + name[-8:], CniNetwork.free_subnet())
        try:
            super().__init__(base, PAUSE_IMAGE=self.PAUSE, RUNTIME=RUNTIME, RUNC=self.binaries["runc"])
        except BaseException:
            self.network.close()
            raise
        self.runtime_roots = [base / "runtime-root" / h for h in self.HANDLERS]
        (base / "crictl.yaml").write_text(f"runtime-endpoint: unix://{self.sock}\nimage-endpoint: unix://{self.sock}\n"
                                          "timeout: 60\npull-image-on-create: false\n")
        # the pod sandbox's image: Debian's static catatonit as pid 1 (`catatonit -P`, a pause)
        pause = base / "pause-rootfs"
        pause.mkdir()
        shutil.copy2("/usr/bin/catatonit", pause / "catatonit")
        self.import_image(pause, self.PAUSE, entrypoint=["/catatonit", "-P"])
        shutil.rmtree(pause)

    def crictl_cmd(self, *args: str) -> list[str]:
        return [self.crictl, "--config", str(self.base / "crictl.yaml"), *args]

    def cri(self, *args: str, input: str | None = None, timeout: float = 90,
            check: bool = False) -> subprocess.CompletedProcess:
        """`crictl ARGS` against our containerd."""
        return _run(self.crictl_cmd(*args), self.env, input, timeout, check)

    def cri_ok(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.cri(*args, check=True, **kw)

    def cri_pty(self, *args: str, rows: int = 24, cols: int = 80) -> Pty:
        return Pty(self.crictl_cmd(*args), self.env, rows, cols)

    def leaks(self) -> list[str]:
        """What the tests' pods left behind (and remove it): pods, containers, then what they
        left on the host (runtime state, mounts, netns, cgroups, processes, veths)."""
        found = []
        for cid in self.cri_ok("ps", "--all", "--quiet").stdout.split():
            found.append(f"container left: {cid}")
            self.cri("rm", "--force", cid)
        for pod in self.cri_ok("pods", "--quiet").stdout.split():
            found.append(f"pod left: {pod}")
            self.cri("stopp", pod)
            self.cri("rmp", "--force", pod)
        found += self.host_leftovers()
        self.cgroup.remove(keep_parent=True)  # pod cgroups of a failed test: not the next one's leak
        netns = self.base / "state" / "netns"
        found += [f"netns left: {p}" for p in netns.iterdir()] if netns.is_dir() else []
        return found + self.network.leaks()

    def close(self) -> list[str]:
        left = super().close()  # containerd, shims, mounts, cgroups, our dir
        return left + self.network.close()
