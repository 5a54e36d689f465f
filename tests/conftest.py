"""Shared fixtures: the runtime under test (PYRT_BIN, default `pyrt`; `runc` as the oracle),
bundles over the busybox rootfs, and a leak check after every test.

Integration tests drive the runtime only through its command line, so the same suite runs
against runc: tests of pyrt-only behaviour carry the `pyrt_only` marker. The oracle is runc 1.5
(`PYRT_BIN=runc` picks shared/bin/runc-1.5 beside the clone, or $SHARED_BIN, when present);
Debian's runc 1.1.5 still works (`PYRT_BIN=/usr/sbin/runc`), minus the tests marked
`not_runc_1_1` (behaviour runc gained after 1.1).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
import zlib
from pathlib import Path

import prctl
import pytest
from configs import BUSYBOX_ROOTFS, base_config

REPO = Path(__file__).resolve().parent.parent


def shared_bin(name: str) -> Path | None:
    """A tool the project keeps beside its clone, in shared/bin (runc-1.5, the oracle for runc's
    current behaviour; crictl-1.26): $SHARED_BIN, else the nearest shared/bin above the
    repository (a worktree may sit one level deeper); None when absent."""
    dirs = [Path(os.environ["SHARED_BIN"])] if os.environ.get("SHARED_BIN") else []
    dirs += [up / "shared" / "bin" for up in (REPO.parent, REPO.parent.parent)]
    return next((d / name for d in dirs if os.access(d / name, os.X_OK)), None)


def runc_version(binary: str) -> tuple[int, int]:
    """(major, minor) of a runc binary, from `runc --version`."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    major, minor = out.split()[2].split(".")[:2]
    return int(major), int(minor)


RUNC_1_5 = shared_bin("runc-1.5")
#: PYRT_BIN=runc means the oracle: runc 1.5 from shared/bin when present, else runc on $PATH.
BINARY = os.environ.get("PYRT_BIN", "pyrt")
if BINARY == "runc" and RUNC_1_5:
    BINARY = str(RUNC_1_5)
IS_RUNC = os.path.basename(BINARY).split("-")[0] in ("runc", "crun")  # runc-1.5 too
#: Debian's runc 1.1.5 as the oracle: it lacks behaviour runc gained since (marker not_runc_1_1).
OLD_RUNC = IS_RUNC and os.path.basename(BINARY).startswith("runc") and runc_version(BINARY) < (1, 2)
HELLO_BUNDLE = REPO / "bundles" / "hello-world"
SCHEMA_DIR = Path("/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema")
CGROUP_ROOTS = [Path("/sys/fs/cgroup")]

# The test process adopts orphaned container processes (PID 1 here reaps late) and reaps them.
prctl.set_child_subreaper(True)


def pytest_collection_modifyitems(config, items):
    if IS_RUNC:
        skip = pytest.mark.skip(reason="pyrt-only behaviour; PYRT_BIN is runc")
        old = pytest.mark.skip(reason="runc 1.1 lacks this behaviour of runc 1.5")
        for item in items:
            if "pyrt_only" in item.keywords or "differential" in item.keywords:
                item.add_marker(skip)
            elif OLD_RUNC and "not_runc_1_1" in item.keywords:
                item.add_marker(old)


def pyrt_differs(reason: str):
    """A shared test pyrt fails today where runc 1.5 passes (docs/runc-differences.md): an
    expected failure of the pyrt pass until pyrt is fixed (strict: the fix must remove it)."""
    return pytest.mark.xfail(not IS_RUNC, strict=True, reason=f"pyrt differs from runc 1.5: {reason}")


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class Bundle:
    """A bundle directory in the test's tmp dir whose rootfs is the shared busybox tree."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.config = base_config()
        path.mkdir(parents=True, exist_ok=True)

    @property
    def process(self) -> dict:
        return self.config["process"]

    def args(self, *args: str) -> Bundle:
        self.config["process"]["args"] = list(args)
        return self

    def write(self) -> Bundle:
        (self.path / "config.json").write_text(json.dumps(self.config, indent=1))
        return self

    def copy(self, name: str) -> Bundle:
        other = Bundle(self.path.parent / name)
        other.config = copy.deepcopy(self.config)
        return other


class Runtime:
    """The runtime under test, with its own --root in the test's tmp dir."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.binary = BINARY
        self.ids: set[str] = set()

    def new_id(self) -> str:
        cid = "t" + uuid.uuid4().hex[:10]
        self.ids.add(cid)
        return cid

    def cmd(self, *args: str, root: bool = True) -> list[str]:
        return [self.binary, *(("--root", str(self.root)) if root else ()), *args]

    def __call__(self, *args: str, input: str | None = None, timeout: float = 30, cwd: str | None = None,
                 stdin=None, env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
        result = subprocess.run(self.cmd(*args), input=input, capture_output=True, text=True, timeout=timeout,
                                cwd=cwd, stdin=stdin if input is None else None, env=env)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def ok(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self(*args, check=True, **kw)

    def state(self, cid: str) -> dict:
        return json.loads(self.ok("state", cid).stdout)

    def create(self, bundle: Bundle, cid: str | None = None, *extra: str) -> str:
        cid = cid or self.new_id()
        self.ids.add(cid)
        bundle.write()
        # stdio on files: a container inherits the runtime's fds, which must not keep pipes open
        with open(bundle.path / "stdout", "w") as out, open(bundle.path / "stderr", "w+") as err:
            r = subprocess.run(self.cmd("create", "--bundle", str(bundle.path), *extra, cid), stdin=subprocess.DEVNULL,
                               stdout=out, stderr=err, timeout=30)
            err.seek(0)
            assert r.returncode == 0, err.read()
        return cid

    def wait_status(self, cid: str, status: str, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            reap()
            r = self("state", cid)
            st = json.loads(r.stdout) if r.returncode == 0 else {"status": r.stderr.strip()}
            if st["status"] == status or time.monotonic() > deadline:
                assert st["status"] == status, st
                return st
            time.sleep(0.02)

    def cleanup(self) -> None:
        for cid in list(self.ids):
            subprocess.run(self.cmd("delete", "--force", cid), capture_output=True, timeout=30)


@pytest.fixture
def rt(tmp_path: Path):
    runtime = Runtime(tmp_path / "state")
    yield runtime
    runtime.cleanup()


@pytest.fixture
def bundle(tmp_path: Path) -> Bundle:
    return Bundle(tmp_path / "bundle")


@pytest.fixture(scope="session")
def differ(tmp_path_factory):
    """Runs a scenario under pyrt and runc 1.5, once per session (tests/differential.py)."""
    if not RUNC_1_5:
        if os.environ.get("CI"):
            pytest.fail("shared/bin/runc-1.5 is missing: the differential tests need it")
        pytest.skip("shared/bin/runc-1.5 not found (set SHARED_BIN)")
    from differential import Differ

    return Differ(tmp_path_factory.mktemp("differential"))


# ----------------------------------------------------------------------------- leak check


def _leaks(tmp_path: Path, ids: set[str]) -> list[str]:
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if str(tmp_path) in line or str(BUSYBOX_ROOTFS) in line:
                found.append(f"mount: {line.strip()}")
    state = tmp_path / "state"
    if state.exists() and any(state.iterdir()):
        found.append(f"state left: {sorted(p.name for p in state.iterdir())}")
    # pyrt puts a root's containers in pyrt/<crc32 of the root>/<id> (cgroups.root_tag): the
    # containers' cgroups, and that parent once they are all gone
    tag = f"{zlib.crc32(str(state).encode()):08x}"
    for root in CGROUP_ROOTS:
        for dirpath, dirnames, _ in os.walk(root):
            if dirpath.count("/") > 7:
                dirnames[:] = []
                continue
            for d in dirnames:
                if d in ids or any(d.endswith(i) for i in ids) or (d == tag and dirpath.endswith("/pyrt")):
                    found.append(f"cgroup left: {os.path.join(dirpath, d)}")
    # processes of this test's containers (other tests may run at the same time: match ids)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cgroup = Path(f"/proc/{pid}/cgroup").read_text()
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if any(i in cgroup for i in ids):
            found.append(f"process left: {pid} {comm}")
    st = os.stat("/dev/null")
    if (st.st_uid, st.st_gid, st.st_mode & 0o7777) != (0, 0, 0o666):
        found.append(f"host /dev/null changed: {st.st_uid}:{st.st_gid} {st.st_mode & 0o7777:o}")
    return found + _network_leaks(tmp_path, ids)


def _network_leaks(tmp_path: Path, ids: set[str]) -> list[str]:
    """pyrt's bridge mode: links (veths; their addresses go with them) whose alias names this
    test's root, entries of the host-wide address book (/run/pyrt-network) for this root, nft
    elements whose comment names one of its containers, and any pyrt bridge that its record
    does not vouch for (the last container out removes both). (Published ports are kernel
    DNAT: pyrt runs no proxy process.)"""
    from pyroute2 import IPRoute

    found = []
    records = {}
    for path in Path("/run/pyrt-network").glob("*.json"):
        try:
            records[path.stem] = json.loads(path.read_text())
        except FileNotFoundError:
            continue
        found += [f"address left: {path.stem} {address} ({e['root']} {e['id']})"
                  for address, e in records[path.stem]["addresses"].items() if str(tmp_path) in e["root"]]
    with IPRoute() as ipr:
        for link in ipr.get_links():
            name, alias = link.get("IFLA_IFNAME"), link.get("IFLA_IFALIAS") or ""
            if str(tmp_path) in alias:
                found.append(f"link left: {name} ({alias})")
            elif alias == "pyrt" and link["index"] != records.get(name, {}).get("bridge", {}).get("index"):
                found.append(f"bridge left: {name} (no record of pyrt's)")
    if shutil.which("nft"):  # without it pyrt's bridge mode makes no rules either
        rules = subprocess.run(["nft", "-j", "list", "table", "ip", "pyrt"], capture_output=True, text=True).stdout
        found += [f"nft element left for {i}" for i in ids if f'"comment": "{i}"' in rules]
    return found


def _tree(root: Path) -> set[str]:
    """Every path (and its type) in a tree, to notice anything a test makes in it."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            out.add(f"{os.path.relpath(path, root)} {os.lstat(path).st_mode >> 12:o}")
    return out


_BUSYBOX_TREE = _tree(BUSYBOX_ROOTFS) if BUSYBOX_ROOTFS.exists() else set()


def _host_lo_up() -> bool:
    """The host's lo, up: a container that touches its network without a namespace of its own,
    or a link operation in the wrong namespace, can take it down (127.0.0.1 then fails for every
    later test: CI once saw every CRI exec time out)."""
    return bool(int(Path("/sys/class/net/lo/flags").read_text(), 16) & 1)


def _shared_rootfs_changes() -> list[str]:
    """The busybox rootfs is shared by every test: a test that needs to create mount points or
    device nodes in its rootfs must work on a copy (device nodes there once made a copytree read
    /dev/full until the disk was full)."""
    extra = _tree(BUSYBOX_ROOTFS) - _BUSYBOX_TREE if _BUSYBOX_TREE else set()
    for entry in sorted(extra, reverse=True):  # deepest first: put the tree back for the next test
        path = BUSYBOX_ROOTFS / entry.rsplit(" ", 1)[0]
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return [f"shared busybox rootfs changed: {e}" for e in sorted(extra)]


@pytest.fixture(autouse=True)
def no_leaks(request, tmp_path: Path):
    """Fail any test that leaves a mount, state dir, cgroup or process behind, or that changes the
    shared busybox rootfs."""
    lo_was_up = _host_lo_up()
    yield
    changed = _shared_rootfs_changes()
    if changed:
        pytest.fail("\n  ".join(changed))
    if lo_was_up and not _host_lo_up():
        subprocess.run(["ip", "link", "set", "lo", "up"], check=False)  # for the tests after this one
        pytest.fail("the host's loopback was brought down")
    runtime = request.node.funcargs.get("rt")
    ids = runtime.ids if runtime else set()
    if runtime:
        # give containers the test killed a moment to be gone (they may be exiting)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            reap()
            if not _leaks(tmp_path, ids):
                break
            time.sleep(0.05)
    leaks = _leaks(tmp_path, ids)
    if leaks:
        if runtime:
            runtime.cleanup()
        for line in leaks:
            if line.startswith("process left"):
                try:
                    os.kill(int(line.split()[2]), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        reap()
        pytest.fail("leaked:\n  " + "\n  ".join(leaks))


def wait_for(predicate, timeout: float = 20, what: str = "condition"):
    """Poll `predicate` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def read_until(fd: int, text: str, timeout: float = 15) -> str:
    """Read from a pty master until `text` shows up; everything read so far is returned."""
    import select

    seen, deadline = b"", time.monotonic() + timeout
    while text.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{text!r} not seen in {seen!r}"
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the other side closed
                chunk = b""
            assert chunk, f"{text!r} not seen before the end in {seen!r}"
            seen += chunk
    return seen.decode(errors="replace")


def validate(instance: object, schema_name: str) -> None:
    """Validate against the official OCI schema (Debian's golang-github-opencontainers-specs-dev)."""
    import jsonschema
    from referencing import Registry, Resource

    base = f"file://{SCHEMA_DIR}/"
    registry = Registry().with_resources(
        (base + p.name, Resource.from_contents(json.loads(p.read_text()), default_specification=_draft4()))
        for p in SCHEMA_DIR.glob("*.json"))
    schema = {**json.loads((SCHEMA_DIR / schema_name).read_text()), "id": base + schema_name}
    jsonschema.Draft4Validator(schema, registry=registry).validate(instance)


def _draft4():
    from referencing.jsonschema import DRAFT4

    return DRAFT4
