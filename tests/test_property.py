"""Property: whatever the input, through the real command line, pyrt either does the job (exit 0)
or fails with one line (exit 1; `exec` 255, as runc), never `internal error` or a traceback, and
leaves nothing behind: no state, cgroup, mount or process.

Every input surface: config.json (every section: process, mounts, hooks, annotations, devices,
resources, seccomp, personality, ...), exec's process.json, `update --resources` (file and stdin)
and the command line's arguments and flags. Each case is a valid input with one or two places
replaced by generated JSON (hostile atoms included: NUL bytes, surrogates, 2^64, deep nesting).
Deterministic (derandomized) and bounded, for `make test`: about a minute in all.

Generated values never reach what could harm the host whatever pyrt does with them: the rootfs
is a private copy, linux.cgroupsPath always stays below a cgroup of this test's own, hooks run
/bin/true. Containers are created and started; their process is `true`.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from conftest import BUSYBOX_ROOTFS, base_config, reap
from hypothesis import HealthCheck, Phase, assume, event, given, settings
from hypothesis import strategies as st

from pyrt import cgroups, cli

pytestmark = pytest.mark.pyrt_only

#: PYRT_PROPERTY_SCALE=N: N times the examples, randomized, a failure reported unshrunk (shrinking
#: cases of 50-100 ms each takes long): a longer search than `make test`'s
SCALE = int(os.environ.get("PYRT_PROPERTY_SCALE", "1"))
SETTINGS = dict(phases=tuple(Phase) if SCALE == 1 else (Phase.generate,), derandomize=SCALE == 1, deadline=None,
                database=None, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

# ----------------------------------------------------------------------------- generated JSON

STRINGS = st.sampled_from([
    "", "\0", "a\0b", "\ud800", "\udcff", "\n", "a\nb", "\t", "é", "x" * 300, "/x" * 3000, "-1", "0", "1",
    "4294967295", "18446744073709551616", "nan", "/", "/dev/null", "/proc/self/fd/0", "/nonexistent", "rel/path",
    "..", "../x", "/tmp", "/tmp/x", "/dev/x", "LINUX32", "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL",
    "CAP_SYS_ADMIN", "CAP_KILL", "RLIMIT_NOFILE", "RLIMIT_CORE", "bind", "rbind", "ro", "rw", "tmpfs", "proc",
    "nosuid", "c", "b", "p", "u", "rwm", "0-1", "max", "/bin/true", "KEY=VALUE", "A=", "=x", "pid", "network",
    "kernel.shmmax", "net.ipv4.ip_forward",
]) | st.text(max_size=12)
INTS = st.sampled_from([-(2**63) - 1, -(2**63), -2, -1, 0, 1, 2, 7, 255, 256, 4095, 4096, 65535, 65536, 65537,
                        2**20, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**70,
                        10**30]) | st.integers(-1000, 70000)
ATOMS = st.none() | st.booleans() | INTS | st.sampled_from([0.5, -1.5, 1e300, -0.0, 2.0]) | STRINGS


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


JSON = st.recursive(ATOMS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(STRINGS, inner, max_size=4), max_leaves=8) \
    | st.sampled_from([_nested(70), list(range(70000)), {"k" * 100: "v" * 100}])


def places(obj: object, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON tree (the key path of every value), and a new key in every object."""
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        out.append((*prefix, "x-new"))
        for k, v in obj.items():
            out += places(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += places(v, (*prefix, i))
    return out


def mutate(obj: dict, changes: list[tuple[tuple, object]]) -> dict:
    """obj with each place set to its value (a place that vanished in an earlier change is skipped)."""
    obj = copy.deepcopy(obj)
    for place, value in changes:
        parent = obj
        try:
            for k in place[:-1]:
                parent = parent[k]
            if isinstance(parent, (dict, list)):
                parent[place[-1]] = value
        except (KeyError, IndexError, TypeError):
            pass
    return obj


def at(obj: object, place: tuple) -> object:
    for k in place:
        obj = obj[k] if isinstance(obj, (dict, list)) and (k in obj if isinstance(obj, dict) else k < len(obj)) \
            else None
    return obj


def like(value: object):
    """Values of the type a place holds (so they get past the type checks, to the kernel), or
    any JSON at all."""
    if isinstance(value, bool):
        typed = st.booleans()
    elif isinstance(value, int):
        typed = INTS
    elif isinstance(value, str):
        typed = STRINGS
    elif isinstance(value, list) and value and isinstance(value[0], (int, str)) and not isinstance(value[0], bool):
        typed = st.lists(INTS if isinstance(value[0], int) else STRINGS, max_size=5)
    else:
        return JSON
    return typed | typed | JSON


@st.composite
def changes_to(draw, base: dict) -> list[tuple[tuple, object]]:
    """One or two places of base, each with a new value."""
    chosen = draw(st.lists(st.sampled_from(places(base)), min_size=1, max_size=2))
    return [(place, draw(like(at(base, place)))) for place in chosen]


# ----------------------------------------------------------------------------- checks


def outcome(r: subprocess.CompletedProcess, ok: tuple[int, ...] = (0,), fail: int = 1) -> bool:
    """Assert the property of one command; whether it succeeded."""
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    event(f"{r.args[3]}: exit {r.returncode}")  # --hypothesis-show-statistics: how many cases got through
    if r.returncode in ok:
        return True
    lines = r.stderr.strip().splitlines()
    assert r.returncode == fail and len(lines) == 1, (r.args, r.returncode, r.stderr)
    return False


class Host:
    """This test's corner of the host, and a check that a case left nothing in it."""

    def __init__(self, tmp_path: Path, rt) -> None:
        self.tmp, self.rt = tmp_path, rt
        self.prefix = f"pyrt-prop-{uuid.uuid4().hex[:8]}"
        self.bases = [Path(b) for b in cgroups.Cgroup.for_spec(None, "x").bases()]
        self.rootfs = tmp_path / "rootfs"
        shutil.copytree(BUSYBOX_ROOTFS, self.rootfs, symlinks=True)

    def cgroups_path(self, suffix: str = "c") -> str:
        return f"/{self.prefix}/{suffix}"

    def leaks(self, ids: set[str]) -> list[str]:
        reap()
        found = [f"mount: {line}" for line in Path("/proc/self/mountinfo").read_text().splitlines()
                 if str(self.tmp) in line]
        state = self.tmp / "state"
        if state.exists():
            found += [f"state: {p.name}" for p in state.iterdir() if p.name != ".network"]
        for base in self.bases:
            found += [f"cgroup: {p}" for p in base.glob(f"{self.prefix}*")]
            found += [f"cgroup: {base / 'pyrt' / i}" for i in ids if (base / "pyrt" / i).exists()]
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cgroup = Path(f"/proc/{pid}/cgroup").read_text()
            except OSError:
                continue
            if self.prefix in cgroup or any(f"/{i}\n" in cgroup for i in ids):
                found.append(f"process: {pid}")
        return found

    def assert_clean(self, ids: set[str]) -> None:
        """Delete what the case left (each container it made, whatever its state), then look."""
        listed = self.rt("list", "--quiet").stdout.split() if (self.tmp / "state").is_dir() else []
        for cid in {*ids, *listed}:
            r = self.rt("delete", "--force", cid)
            assert r.returncode == 0 or cid not in listed, r.stderr
        ids = {*ids, *listed}
        leaks = self.leaks(ids)
        for _ in range(50):  # a killed container's processes may take a moment to go
            if not leaks:
                return
            import time

            time.sleep(0.05)
            leaks = self.leaks(ids)
        assert not leaks, leaks


@pytest.fixture
def host(tmp_path, rt):
    h = Host(tmp_path, rt)
    yield h
    for base in h.bases:  # a failed case must not leave our cgroup prefix to the next test
        for p in sorted(base.glob(f"{h.prefix}*/**/"), key=lambda p: -len(p.parts)):
            try:
                p.rmdir()
            except OSError:
                pass


def rich_config(host: Host) -> dict:
    """A config using every section pyrt reads (the place generated values go)."""
    c = base_config(["true"])
    c["root"] = {"path": str(host.rootfs), "readonly": True}
    c["domainname"] = "pyrt.invalid"
    p = c["process"]
    p["user"] = {"uid": 0, "gid": 0, "additionalGids": [1, 2], "umask": 0o22}
    p["rlimits"].append({"type": "RLIMIT_CORE", "soft": 0, "hard": 2**64 - 1})
    p["oomScoreAdj"] = 100
    p["consoleSize"] = {"height": 24, "width": 80}
    p["capabilities"]["inheritable"] = p["capabilities"]["ambient"] = ["CAP_KILL"]
    c["mounts"].append({"destination": "/mnt/data", "type": "bind", "source": str(host.tmp / "data"),
                        "options": ["rbind", "ro", "nosuid"]})
    (host.tmp / "data").mkdir(exist_ok=True)
    hook = {"path": "/bin/true", "args": ["true", "x"], "env": ["A=1"], "timeout": 5}
    c["hooks"] = {k: [dict(hook)] for k in ("prestart", "createRuntime", "createContainer", "startContainer",
                                             "poststart", "poststop")}
    c["annotations"] = {"org.example.key": "value"}
    lx = c["linux"]
    lx["namespaces"].append({"type": "cgroup"})
    lx["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666, "uid": 0,
                      "gid": 0}]
    lx["cgroupsPath"] = host.cgroups_path()
    lx["resources"] = {"memory": {"limit": 256 << 20, "swappiness": 10}, "cpu": {"shares": 512, "quota": 50000,
                                                                              "period": 100000},
                       "pids": {"limit": 100},
                       "devices": [{"allow": False, "access": "rwm"},
                                   {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"}]}
    lx["sysctl"] = {"kernel.shmmax": "100000000", "net.ipv4.ip_forward": "1"}
    lx["rootfsPropagation"] = "rslave"
    lx["personality"] = {"domain": "LINUX"}
    lx["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                     "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                                  {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                                   "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}
    return c


def keep_safe(c: object, host: Host, bundle_dir: Path) -> object:
    """What no generated value may change: the rootfs (a host directory as root would make pyrt
    create mount points on the host) and the cgroup (never one of the host's)."""
    if not isinstance(c, dict):
        return c
    root = c.get("root")
    path = root.get("path") if isinstance(root, dict) else None
    if isinstance(path, str) and path != str(host.rootfs) and os.path.isdir(os.path.join(bundle_dir, path)):
        root["path"] = str(host.rootfs)
    lx = c.get("linux")
    if isinstance(lx, dict) and "cgroupsPath" in lx:
        path = lx["cgroupsPath"]
        if not isinstance(path, str) or not path.startswith(f"/{host.prefix}/") or ".." in path:
            lx["cgroupsPath"] = host.cgroups_path(str(path)[:40].replace("/", "_").replace(".", "_") or "c")
    return c


# ----------------------------------------------------------------------------- config.json


def create_start_delete(host: Host, bundle_dir: Path) -> None:
    rt = host.rt
    cid = rt.new_id()
    with open(bundle_dir / "out", "w") as out, open(bundle_dir / "err", "w+") as err:
        r = subprocess.run(rt.cmd("create", "--bundle", str(bundle_dir), cid), stdin=subprocess.DEVNULL, stdout=out,
                           stderr=err, timeout=60)
        err.seek(0)
        created = outcome(subprocess.CompletedProcess(r.args, r.returncode, "", err.read()))
    if created:
        outcome(rt("start", cid))
    host.assert_clean({cid})


def test_the_rich_config_runs(host, rt, bundle):
    """The valid inputs the properties vary do work: cases are one change away from success."""
    bundle.config = rich_config(host)
    cid = rt.create(bundle)
    rt.ok("start", cid)
    rt.wait_status(cid, "stopped")
    rt.ok("delete", cid)
    bundle.config["process"]["args"] = ["sleep", "100"]
    cid = rt.create(bundle, None)
    rt.ok("start", cid)
    (host.tmp / "process.json").write_text(json.dumps(EXEC_BASE))
    rt.ok("exec", "--process", str(host.tmp / "process.json"), cid)
    assert rt("exec", *exec_flags(EXEC_BASE), cid, "true").returncode == 0
    rt.ok("update", "--resources", "-", cid, input=json.dumps(UPDATE_BASE))
    host.assert_clean(rt.ids)


@settings(max_examples=150 * SCALE, **SETTINGS)
@given(data=st.data())
def test_any_config(host, data):
    base = rich_config(host)
    bundle_dir = host.tmp / "bundle"
    bundle_dir.mkdir(exist_ok=True)
    config = keep_safe(mutate(base, data.draw(changes_to(base), label="changes")), host, bundle_dir)
    (bundle_dir / "config.json").write_text(json.dumps(config))
    create_start_delete(host, bundle_dir)


#: The one input `create` refuses and `pyrt plan` passes: plan plans as `pyrt run` in the
#: foreground, which gives a terminal of its own (create needs --console-socket for one).
NEEDS_CONSOLE = "process.terminal is true: a --console-socket is needed (or `pyrt run` in the foreground)"


@settings(max_examples=150 * SCALE, **SETTINGS)
@given(data=st.data())
def test_plan_refuses_what_create_refuses(host, data):
    """`pyrt plan` is the same gate and the same planners as `create`: whatever config it
    refuses, create refuses with the same line, and whatever create refuses before the kernel
    has a say (before pyrt-init runs, or a write into the cgroup), plan refuses too."""
    base = rich_config(host)
    bundle_dir = host.tmp / "bundle"
    bundle_dir.mkdir(exist_ok=True)
    config = keep_safe(mutate(base, data.draw(changes_to(base), label="changes")), host, bundle_dir)
    (bundle_dir / "config.json").write_text(json.dumps(config))
    rt = host.rt
    cid = rt.new_id()
    planned = rt("plan", "--id", cid, str(bundle_dir))
    outcome(planned)
    with open(bundle_dir / "err", "w+") as err:  # a file: the container's process holds it open
        r = subprocess.run(rt.cmd("create", "--bundle", str(bundle_dir), cid), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=err, timeout=60)
        err.seek(0)
        created = subprocess.CompletedProcess(r.args, r.returncode, "", err.read())
    host.assert_clean({cid})
    outcome(created)
    if planned.returncode:
        assert message(created.stderr) == message(planned.stderr), (planned.stderr, created.stderr)
    elif created.returncode:
        error = message(created.stderr)
        event(f"refused by the kernel: {error.split(':')[0]}")
        assert error == NEEDS_CONSOLE or error.startswith(("unable to start container process: ", "write ")), error


def message(stderr: str) -> str:
    """The error of a one-line log entry (time="..." level=error msg="...")."""
    line = stderr.strip()
    return json.loads(line[line.index("msg=") + 4:]) if "msg=" in line else line


@settings(max_examples=30 * SCALE, **SETTINGS)
@given(text=st.binary(max_size=40) | st.sampled_from([b"{}", b"[]", b"null", b'{"ociVersion": "1.0.0"}', b"\xff",
                                                      b"[" * 100000, b'{"a": 1e999}', b'{"a": NaN}', b"1" * 5000]),
       kind=st.sampled_from(["file", "file", "/dev/zero", "/dev/urandom", "fifo", "dir", "missing"]))
def test_any_config_file(host, text, kind):
    bundle_dir = host.tmp / "raw"
    shutil.rmtree(bundle_dir, ignore_errors=True)
    bundle_dir.mkdir()
    path = bundle_dir / "config.json"
    if kind == "file":
        path.write_bytes(text)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    elif kind != "missing":
        path.symlink_to(kind)
    create_start_delete(host, bundle_dir)


# ----------------------------------------------------------------------------- exec, update


class Running:
    """A running container on the rich config (sleeping), re-made if a case stopped it."""

    def __init__(self, host: Host, rt, bundle) -> None:
        self.host, self.rt, self.bundle = host, rt, bundle
        bundle.config = rich_config(host)
        bundle.config["process"]["args"] = ["sleep", "1000"]
        self.cid, self.pid = "", 0
        self.procs = host.bases[0] / host.cgroups_path().lstrip("/") / "cgroup.procs"

    def get(self) -> str:
        reap()
        if self.cid and Path(f"/proc/{self.pid}").exists() and self.rt.state(self.cid)["status"] == "running":
            return self.cid
        if self.cid:
            self.rt.ok("delete", "--force", self.cid)
        self.cid = self.rt.create(self.bundle)
        self.rt.ok("start", self.cid)
        self.pid = self.rt.state(self.cid)["pid"]
        return self.cid

    def check_alone(self) -> None:
        """Only the container's init is in its cgroup; only the container is in the state dir."""
        reap()
        assert self.procs.read_text().split() == [str(self.pid)], self.procs.read_text()
        assert [p.name for p in (self.host.tmp / "state").iterdir() if p.name != ".network"] == [self.cid]


@pytest.fixture
def running(host, rt, bundle):
    return Running(host, rt, bundle)


EXEC_BASE = {"args": ["true"], "cwd": "/", "env": ["PATH=/bin", "HOME=/"], "terminal": False,
             "user": {"uid": 0, "gid": 0, "additionalGids": [3], "umask": 0o22},
             "capabilities": {k: ["CAP_KILL"] for k in ("bounding", "effective", "permitted")},
             "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 100}], "noNewPrivileges": True,
             "oomScoreAdj": 0, "consoleSize": {"height": 1, "width": 1}}


def strings(value: object) -> list[str]:
    """The strings of a generated list that can be in an argv (a C string: no NUL, and bytes)."""
    def fits(s: object) -> bool:
        try:
            return isinstance(s, str) and "\0" not in s and len(s.encode(errors="surrogateescape")) < 100000
        except UnicodeEncodeError:
            return False

    return [s for s in value if fits(s)] if isinstance(value, list) else []


def exec_flags(process: dict) -> list[str]:
    user = process.get("user") if isinstance(process.get("user"), dict) else {}
    ids = [str(user.get(k)) for k in ("uid", "gid") if isinstance(user.get(k), (int, str))]
    flags = [f"--cwd={c}" for c in strings([process.get("cwd")])]
    flags += [f"--user={':'.join(ids)}"] if ids and isinstance(user.get("uid"), (int, str)) else []
    flags += [f"--env={e}" for e in strings(process.get("env"))]
    gids = user.get("additionalGids") if isinstance(user.get("additionalGids"), list) else []
    flags += [f"--additional-gids={g}" for g in gids if isinstance(g, (int, str))]
    flags += ["--tty"] if process.get("terminal") else []
    flags += ["--no-new-privs"] if process.get("noNewPrivileges") else []
    return strings(flags)


@settings(max_examples=80 * SCALE, **SETTINGS)
@given(changes=changes_to(EXEC_BASE), how=st.sampled_from(["file", "flags"]))
def test_any_exec_process(host, running, changes, how, tmp_path):
    cid = running.get()
    process = mutate(EXEC_BASE, changes)
    if how == "file":
        path = tmp_path / "process.json"
        path.write_text(json.dumps(process))
        r = host.rt("exec", "--process", str(path), cid)
    else:  # what of it exec's flags can say (a value a flag cannot parse: runc's usage error)
        argv = [*exec_flags(process), cid, *strings(process.get("args"))]
        assume(sum(len(a) + 9 for a in argv) < 1 << 20)  # within what execve(2) takes
        r = host.rt("exec", *argv)
        if r.returncode == 1 and r.stderr.startswith("Incorrect Usage"):
            r.returncode, r.stderr = 255, r.stderr.splitlines()[0]
    outcome(r, fail=255)
    running.check_alone()


UPDATE_BASE = {"memory": {"limit": 128 << 20, "reservation": 64 << 20, "swap": 256 << 20},
               "cpu": {"shares": 256, "quota": 20000, "period": 100000, "cpus": "0", "mems": "0"},
               "pids": {"limit": 50}}


@settings(max_examples=60 * SCALE, **SETTINGS)
@given(changes=changes_to(UPDATE_BASE), stdin=st.booleans())
def test_any_update_resources(host, running, changes, stdin, tmp_path):
    cid = running.get()
    text = json.dumps(mutate(UPDATE_BASE, changes))
    if stdin:
        r = host.rt("update", "--resources", "-", cid, input=text)
    else:
        (tmp_path / "resources.json").write_text(text)
        r = host.rt("update", "--resources", str(tmp_path / "resources.json"), cid)
    outcome(r)
    running.check_alone()


# ----------------------------------------------------------------------------- the command line

ARG_VALUES = st.sampled_from(["", "-1", "0", "1", "3", "100000", "99999999999999999999", "nan", "inf", "1e3",
                              "0x10", "1:2", "4294967295", "2147483648:0", "a b", "x" * 300, "rel", "rel/f", "é",
                              "true", "json", "table", "text", "KILL", "SIGTERM", "19", "64", "none", "bridge",
                              "1s", "-5ms", "8080:80", "CAP_KILL", "A=1", "=", "-", "--", "-x", "--bogus"]) \
    | st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"), max_size=8)


@st.composite
def command_lines(draw, cid: str, bundle: str) -> list[str]:
    """A command line of pyrt's: global flags, a command, its flags (every spelling), arguments."""
    argv = []
    for flag in draw(st.lists(st.sampled_from([f for f in cli.GLOBAL_FLAGS if f.name != "root"]), max_size=2)):
        argv += flag_args(draw, flag)
    name = draw(st.sampled_from([*cli.COMMANDS, *cli.ALIASES, "bogus"]))
    argv.append(name)
    cmd = cli.COMMANDS.get(cli.ALIASES.get(name, name))
    for flag in draw(st.lists(st.sampled_from(cmd.flags), max_size=4)) if cmd and cmd.flags else []:
        argv += flag_args(draw, flag)
    if name == "events":
        argv.append("--stats")  # without it, events streams until killed
    argv += draw(st.lists(st.sampled_from([cid, cid, bundle, "nonexistent-id"]) | ARG_VALUES, max_size=3))
    return argv


def flag_args(draw, flag: cli.Flag) -> list[str]:
    dash = draw(st.sampled_from(["-", "--"]))
    name = draw(st.sampled_from([flag.name, flag.short])) if flag.short else flag.name
    if flag.kind is None:
        return [dash + name + draw(st.sampled_from(["", "", "=true", "=false", "=maybe"]))]
    value = draw(ARG_VALUES)
    return [f"{dash}{name}={value}"] if draw(st.booleans()) else [dash + name, value]


def cli_outcome(r: subprocess.CompletedProcess, argv: list[str]) -> None:
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, (argv, r.stderr)
    lines = r.stderr.strip().splitlines()
    usage = lines and lines[0].startswith(("Incorrect Usage", "pyrt: "))  # runc's usage errors: text follows
    debug = any(a.lstrip("-").startswith("debug") for a in argv[:4])
    if r.returncode == 0 or usage or debug:
        return
    assert r.returncode in (1, 255) and len(lines) == 1, (argv, r.returncode, r.stderr)


@settings(max_examples=80 * SCALE, **SETTINGS)
@given(data=st.data())
def test_any_command_line(host, rt, bundle, data, tmp_path):
    bundle.config = base_config(["true"])
    bundle.config["root"]["path"] = str(host.rootfs)
    bundle.config["linux"]["cgroupsPath"] = host.cgroups_path(uuid.uuid4().hex[:8])
    cid = rt.create(bundle)
    if data.draw(st.booleans(), label="started"):
        rt.ok("start", cid)
    cwd = tmp_path / "cwd"
    shutil.rmtree(cwd, ignore_errors=True)
    cwd.mkdir()
    argv = data.draw(command_lines(cid, str(bundle.path)), label="argv")
    ids = {cid, *(a for a in argv if a and a.isascii() and a.replace("-", "").isalnum())}
    rt.ids |= ids
    r = subprocess.run(rt.cmd(*argv), cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       errors="replace", timeout=60)
    cli_outcome(r, argv)
    host.assert_clean(ids)
    rt.ids -= ids
