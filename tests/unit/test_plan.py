"""The plan without root: the order of a container's setup steps, mount option mapping, devices,
credentials, and the wire encoding pyrt-init parses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from configs import base_config

from pyrt import cgroups, devices, mountopts, mounts, plan, planner, process, spec
from pyrt import config as gate
from pyrt.errors import PyrtError
from pyrt.plan import Step


def make_spec(bundle: Path, change=None, no_pivot: bool = False) -> spec.Spec:
    c = base_config()
    c["root"] = {"path": "rootfs", "readonly": True}
    if change:
        change(c)
    return gate.parse(json.loads(json.dumps(c)), str(bundle), gate.Overrides(relay=True, no_pivot=no_pivot))


def make_plan(s: spec.Spec, fds: planner.Fds | None = None, **options) -> list[Step]:
    opts = planner.Options("cid", **options)
    return planner.for_create(s, fds or planner.Fds(3), opts, cgroups.Cgroup.for_spec(None, "cid"))


def ops(steps: list[Step]) -> list[str]:
    return [s.op for s in steps]


def first(steps: list[Step], op: str, *args: str) -> int:
    """Index of the first step `op` whose arguments start with `args`."""
    for i, s in enumerate(steps):
        if s.op == op and s.args[: len(args)] == args:
            return i
    raise AssertionError(f"no step {op} {args} in {ops(steps)}")


def test_the_life_of_an_init_in_order(bundle_dir):
    s = make_spec(bundle_dir, lambda c: (c["linux"].update(sysctl={"net.ipv4.ip_forward": "1"}),
                                         c["process"].update(cwd="/work", oomScoreAdj=3)))
    steps = make_plan(s)
    order = [
        first(steps, "oom-score-adj"),
        first(steps, "propagation", "/", str(mounts.MS_REC | mounts.MS_SLAVE)),
        first(steps, "root", str(bundle_dir / "rootfs")),
        first(steps, "mount", "proc", "/proc"), first(steps, "mount", "tmpfs", "/dev"),
        first(steps, "mount", "devpts", "/dev/pts"), first(steps, "mount", "tmpfs", "/tmp"),
        first(steps, "mknod", "/dev/null"), first(steps, "symlink", "pts/ptmx", "/dev/ptmx"),
        first(steps, "mkdir", "/work"), first(steps, "lo-up"),
        first(steps, "sysctl", "/proc/sys/net/ipv4/ip_forward", "1"),  # before /proc/sys is read-only
        first(steps, "readonly", "/proc/bus"), first(steps, "mask", "/proc/acpi"),
        first(steps, "remount", "/", str(mounts.MS_RDONLY)),
        first(steps, "pivot-root"), first(steps, "hostname", "pyrt-test"),
        first(steps, "rlimit", "7", "1024", "1024"), first(steps, "session-keyring", "_ses.cid"),
        first(steps, "home", "0"), first(steps, "resolve-exec", "true"),
        first(steps, "ready"), first(steps, "wait-start", "3"),
        first(steps, "cap-bounding"), first(steps, "user", "0", "0", ""), first(steps, "caps"),
        first(steps, "no-new-privileges"), first(steps, "chdir", "/work"), first(steps, "close-fds", "3"),
        first(steps, "umask", "0022"), first(steps, "exec"),
    ]
    assert order == sorted(order)
    assert steps[-1].op == "exec"
    assert steps[-1].args[:2] == ("0", "2") and steps[-1].args[4:] == ("true",)
    # every mounts[] entry in config order, before any device node
    mount_points = [st.args[1] for st in steps if st.op == "mount"]
    assert mount_points == [m.destination for m in s.mounts]
    assert len([x for x in ops(steps) if x == "mask"]) == len(s.masked_paths)


def test_choices_of_the_command_line(bundle_dir):
    s = make_spec(bundle_dir)
    steps = make_plan(s, no_pivot=True, no_new_keyring=True, preserve_fds=2, trace=True)
    assert steps[0].op == "trace"
    assert "move-root" in ops(steps) and "pivot-root" not in ops(steps)
    assert "session-keyring" not in ops(steps)
    assert steps[first(steps, "close-fds")].args == ("5",)
    exe = steps[-1]
    assert exe.args[0] == "1" and "LISTEN_FDS=2" in exe.args  # LISTEN_PID is set by init (its own pid)


def test_namespaces_joined_and_new(bundle_dir):
    def join(c):
        c["linux"]["namespaces"] = [{"type": "pid", "path": "/p"}, {"type": "network", "path": "/n"},
                                    {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}]
    steps = make_plan(make_spec(bundle_dir, join), planner.Fds(3, {"pid": 7, "network": 8}))
    setns = [st.args for st in steps if st.op == "setns"]
    assert setns == [("8", str(0x40000000)), ("7", str(0x20000000))]  # network before pid (JOIN_ORDER)
    assert first(steps, "setns", "7") < first(steps, "fork") < first(steps, "unshare", str(0x02000000))
    assert "lo-up" not in ops(steps)  # a joined network namespace is someone else's


def test_terminal_gets_the_console(bundle_dir):
    s = make_spec(bundle_dir, lambda c: c["process"].update(terminal=True, consoleSize={"height": 5, "width": 9}))
    steps = make_plan(s, planner.Fds(3, console=6))
    assert steps[first(steps, "console")].args == ("6", "5", "9")
    assert first(steps, "symlink", "pts/ptmx") < first(steps, "console") < first(steps, "pivot-root")


SLAVE, SHARED, PRIVATE = mounts.MS_SLAVE, mounts.MS_SHARED, mounts.MS_PRIVATE
REC, UNBINDABLE = mounts.MS_REC, mounts.MS_UNBINDABLE


@pytest.mark.parametrize("asked,on_root,holder,after_pivot", [
    (None, SLAVE | REC, PRIVATE, None), ("rshared", SHARED | REC, PRIVATE, SHARED | REC),
    ("shared", SHARED, PRIVATE, SHARED), ("rslave", SLAVE | REC, SLAVE, None), ("slave", SLAVE, SLAVE, None),
    ("rprivate", PRIVATE | REC, PRIVATE, None), ("unbindable", UNBINDABLE, PRIVATE, UNBINDABLE),
])
def test_root_propagation_as_runc(bundle_dir, asked, on_root, holder, after_pivot):
    """runc 1.5's order: rootfsPropagation (default rslave) on "/", the mount holding the rootfs
    private (slave for a slave root), the root bind; after pivot_root shared or unbindable again."""
    steps = make_plan(make_spec(bundle_dir, lambda c: asked and c["linux"].update(rootfsPropagation=asked)))
    props = [(i, st.args) for i, st in enumerate(steps) if st.op == "propagation"]
    root, pivot = first(steps, "root"), first(steps, "pivot-root")
    assert [a for i, a in props if i < root] == [("/", str(on_root)), (str(bundle_dir / "rootfs"), str(holder))]
    assert [a for i, a in props if i > pivot] == ([("/", str(after_pivot))] if after_pivot else [])
    assert "mkdir" not in ops(steps)  # cwd "/" needs none


def test_no_pivot_root_propagation(bundle_dir):
    """--no-pivot moves the rootfs onto "/": "/" is made private first, or a shared "/" would
    carry the move to the host's "/". A private root is refused, as runc does."""
    rshared = make_spec(bundle_dir, lambda c: c["linux"].update(rootfsPropagation="rshared"), no_pivot=True)
    steps = make_plan(rshared, no_pivot=True)
    assert steps[first(steps, "move-root") - 1] == Step("propagation", "/", mounts.MS_PRIVATE)
    assert first(steps, "propagation", "/", str(SHARED | REC)) < first(steps, "root")
    assert steps[first(steps, "move-root") + 1] == Step("propagation", "/", SHARED | REC)
    for asked in ("private", "rprivate"):  # refused at the gate (--no-pivot is one of its overrides)
        with pytest.raises(PyrtError, match=f'rootfsPropagation: "{asked}" is not safe without pivot_root'):
            make_spec(bundle_dir, lambda c, asked=asked: c["linux"].update(rootfsPropagation=asked), no_pivot=True)


# ----------------------------------------------------------------------------- mount options


@pytest.mark.parametrize("options,flags,propagation,attr_set,attr_clr,data", [
    ([], 0, 0, 0, 0, ""),
    (["defaults"], 0, 0, 0, 0, ""),
    (["ro", "nosuid", "nodev", "noexec"], mounts.MS_RDONLY | mounts.MS_NOSUID | mounts.MS_NODEV | mounts.MS_NOEXEC,
     0, 0, 0, ""),
    (["ro", "rw"], 0, 0, 0, 0, ""),  # the last word wins
    (["noatime", "atime"], 0, 0, 0, 0, ""),
    (["relatime", "strictatime", "nodiratime", "sync", "dirsync", "lazytime", "nosymfollow"],
     mounts.MS_RELATIME | mounts.MS_STRICTATIME | mounts.MS_NODIRATIME | mounts.MS_SYNCHRONOUS | mounts.MS_DIRSYNC
     | mounts.MS_LAZYTIME | mounts.MS_NOSYMFOLLOW, 0, 0, 0, ""),
    (["bind"], mounts.MS_BIND, 0, 0, 0, ""),
    (["rbind", "rprivate"], mounts.MS_BIND | mounts.MS_REC, mounts.MS_PRIVATE | mounts.MS_REC, 0, 0, ""),
    (["rslave"], 0, mounts.MS_SLAVE | mounts.MS_REC, 0, 0, ""),
    (["shared"], 0, mounts.MS_SHARED, 0, 0, ""),
    (["unbindable"], 0, mounts.MS_UNBINDABLE, 0, 0, ""),
    (["rro", "rnosuid", "rnodev", "rnoexec"], 0, 0,
     mounts.ATTR_RDONLY | mounts.ATTR_NOSUID | mounts.ATTR_NODEV | mounts.ATTR_NOEXEC, 0, ""),
    (["rrw", "rexec"], 0, 0, 0, mounts.ATTR_RDONLY | mounts.ATTR_NOEXEC, ""),
    (["rnoatime"], 0, 0, mounts.ATTR_NOATIME, mounts.ATTR__ATIME, ""),
    (["mode=755", "size=65536k", "nosuid", "uid=5"], mounts.MS_NOSUID, 0, 0, 0, "mode=755,size=65536k,uid=5"),
    (["newinstance", "ptmxmode=0666", "gid=5"], 0, 0, 0, 0, "newinstance,ptmxmode=0666,gid=5"),
])
def test_mount_option_mapping(options, flags, propagation, attr_set, attr_clr, data):
    o = mountopts.Options(options, "here")
    assert (o.flags, o.propagation, o.attr_set, o.attr_clr, o.data) == (flags, propagation, attr_set, attr_clr, data)


@pytest.mark.parametrize("kind,options,words", [
    ("tmpfs", ["remount"], '"remount" is not allowed'),
    ("tmpfs", ["ro", ""], "empty mount option"),
    ("bind", ["idmap"], '"idmap" is not supported'),
    ("bind", ["rbind", "size=1m"], 'unknown mount option "size=1m" for a bind mount'),
    ("", ["nosuid"], "type is required"),
    ("proc", ["tmpcopyup"], "tmpcopyup"),
])
def test_mount_option_errors(kind, options, words):
    with pytest.raises(PyrtError, match=r"^config\.json: mounts\[4\]: .*" + words.replace("(", r"\(")):
        mountopts.parse(kind, options, "config.json: mounts[4]")


def test_mount_types_and_binds():
    bind = spec.Mount("/data", "bind", "vol", ["ro"])
    step = mounts.mount_step(bind, mountopts.parse("bind", ["ro"], "m"), "/bundles/b")
    assert step.args == ("/bundles/b/vol", "/data", "", str(mounts.MS_BIND | mounts.MS_RDONLY), "0", "", "0", "0",
                         "0")
    assert mountopts.parse("rbind", [], "m").flags == mounts.MS_BIND | mounts.MS_REC
    none_rbind = spec.Mount("/data", "none", "/abs", ["rbind"])
    assert mounts.mount_step(none_rbind, mountopts.parse("none", ["rbind"], "m"), "/b").args[2] == ""  # a bind
    for kind, dest, nosymlinks in (("proc", "/proc", "1"), ("sysfs", "/sys", "1"), ("devpts", "/dev/pts", "1"),
                                   ("mqueue", "/dev/mqueue", "1"), ("tmpfs", "/dev", "1"), ("tmpfs", "/run", "0")):
        m = spec.Mount(dest, kind, kind, [])
        st = mounts.mount_step(m, mountopts.parse(kind, [], "m"), "/b")
        assert (st.args[0], st.args[2], st.args[6]) == (kind, kind, nosymlinks), (kind, dest)


# ----------------------------------------------------------------------------- /dev


def test_default_devices_and_overrides(bundle_dir):
    s = make_spec(bundle_dir, lambda c: c["linux"].update(devices=[
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600, "uid": 9, "gid": 9},
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]))
    steps = devices.steps(s)
    nodes = {st.args[0]: st.args[1:] for st in steps if st.op == "mknod"}
    assert set(nodes) == {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",
                          "/dev/fuse"}
    assert nodes["/dev/null"] == ("c", "1", "3", "0600", "9", "9")  # the config's node wins
    assert nodes["/dev/tty"] == ("c", "5", "0", "0666", "0", "0")
    links = {st.args[1]: st.args[0] for st in steps if st.op == "symlink"}
    assert links == {"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1",
                     "/dev/stderr": "/proc/self/fd/2", "/dev/ptmx": "pts/ptmx"}


@pytest.mark.parametrize("kind, options", [("bind", ["rbind"]), ("rbind", [])])
def test_dev_bind_mounted_from_the_host_gets_no_nodes(bundle_dir, kind, options):
    """Nothing is made (or chowned) through a bind of the host's /dev, not even linux.devices."""
    def host_dev(c):
        c["mounts"][1] = {"destination": "/dev", "type": kind, "source": "/dev", "options": options}
        c["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    assert devices.steps(make_spec(bundle_dir, host_dev)) == []


# ----------------------------------------------------------------------------- the process


def proc_with(**fields) -> spec.Process:
    return spec.Process(**{"args": ["sh"], "env": ["PATH=/bin"], **fields})


def test_rlimits_infinity_and_order():
    p = proc_with(rlimits=[("RLIMIT_CORE", process.RLIM_INFINITY, process.RLIM_INFINITY), ("RLIMIT_NOFILE", 5, 9)])
    inf = str(process.RLIM_INFINITY)  # pyrt-init reads unsigned 64-bit limits: 2^63 and up too
    assert [st.args for st in process.rlimit_steps(p)] == [("4", inf, inf), ("7", "5", "9")]


def test_credentials_and_capability_masks():
    caps = {"bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"],
            "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL", "CAP_CHOWN"]}
    p = proc_with(uid=1000, gid=100, additional_gids=[5, 6], umask=0o77, capabilities=caps)
    steps = process.final_steps(p, 0)
    by_op = {st.op: st.args for st in steps}
    assert by_op["cap-bounding"] == ("21",)  # KILL (5) | CHOWN (0)
    assert by_op["caps"] == ("20", "20", "20", "20")  # CHOWN cannot be ambient: not permitted/inheritable
    assert by_op["user"] == ("1000", "100", "5,6")
    assert by_op["umask"] == ("0077",)
    assert by_op["chown-stdio"] == ("1000",)
    assert ops(steps).index("chown-stdio") < ops(steps).index("user")  # needs CAP_CHOWN
    root = process.final_steps(proc_with(), 0)
    assert "chown-stdio" not in ops(root) and dict((s.op, s.args) for s in root)["umask"] == ("0022",)


def test_personality_for_create_and_exec(bundle_dir):
    """linux.personality is a step of its own, in `create` and in `exec` (runc applies it to both)."""
    s = make_spec(bundle_dir, lambda c: c["linux"].update(personality={"domain": "LINUX32"}))
    steps = make_plan(s)
    at = first(steps, "personality", "8")
    assert first(steps, "pivot-root") < at < first(steps, "ready")
    proc = s.process
    exec_steps = planner.for_exec(proc, 5, ["pid", "mount"], planner.Fds(-1), planner.Options("cid"), 8)
    assert first(exec_steps, "enter-root") < first(exec_steps, "personality", "8") < first(exec_steps, "exec")
    assert "personality" not in ops(make_plan(make_spec(bundle_dir)))
    assert "personality" not in ops(planner.for_exec(proc, 5, ["mount"], planner.Fds(-1), planner.Options("cid")))


@pytest.mark.parametrize("nnp", [True, False])
def test_seccomp_is_loaded_where_it_can_be(nnp):
    steps = ops(process.final_steps(proc_with(no_new_privileges=nnp), 0, Step("seccomp", 9, 0)))
    if nnp:  # last, right before execve: the filter need not allow init's own calls
        assert steps[-2:] == ["seccomp", "exec"] and steps.index("no-new-privileges") < steps.index("seccomp")
    else:  # while CAP_SYS_ADMIN is still held
        assert steps.index("seccomp") < steps.index("user")


# ----------------------------------------------------------------------------- the wire format


def decode(data: bytes) -> list[tuple[str, ...]]:
    """What init.c's parse() reads: per step, its name, the argument count, the arguments."""
    fields = data.split(b"\0")
    assert fields[-1] == b""
    fields, out, i = fields[:-1], [], 0
    while i < len(fields):
        name, count = fields[i].decode(), int(fields[i + 1])
        out.append((name, *(f.decode() for f in fields[i + 2:i + 2 + count])))
        i += 2 + count
    return out


def test_encoding_round_trip(bundle_dir):
    steps = make_plan(make_spec(bundle_dir, lambda c: c["process"].update(args=["sh", "-c", "echo 'a b' é", ""])))
    assert decode(plan.encode(steps)) == [(s.op, *s.args) for s in steps]
    with pytest.raises(PyrtError, match="NUL"):
        plan.encode([Step("exec", "0", "0", "a\0b")])


def test_every_step_of_a_plan_reads_as_a_sentence(bundle_dir):
    s = make_spec(bundle_dir, lambda c: (c["process"].update(terminal=True, cwd="/w"),
                                         c["linux"].update(sysctl={"kernel.shmmax": "1"}, rootfsPropagation="slave",
                                                           personality={"domain": "LINUX32"})))
    steps = make_plan(s, planner.Fds(3, console=4), trace=True)
    lines = plan.render(steps).splitlines()
    assert len(lines) == len(steps)
    for line, st in zip(lines, steps, strict=True):
        number, _, text = line.strip().partition("  ")
        assert number.isdigit() and text != " ".join((st.op, *st.args)), f"{st.op} has no description"
    text = plan.render(steps)
    assert "mount proc on /proc (no symlinks)" in text and "execve ['true']" in text
    assert "set the execution domain LINUX32" in text and "soft=1024 hard=1024" in text
