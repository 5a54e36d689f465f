"""The plan without root: the order of a container's setup steps, mount option mapping, devices,
credentials; the plan is a pure function of the spec, a host layout and the options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from configs import base_config

from pyrt import cheader, devices, kernel, mountopts, mounts, planner, process, spec, steps
from pyrt import config as gate
from pyrt.errors import PyrtError
from pyrt.host import HostLayout
from pyrt.steps import Fd, Step

V2_HOST = HostLayout("/sys/fs/cgroup")
HYBRID_HOST = HostLayout("/sys/fs/cgroup/unified", {"cpu": "/sys/fs/cgroup/cpu,cpuacct",
                                                    "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
                                                    "memory": "/sys/fs/cgroup/memory",
                                                    "name=systemd": "/sys/fs/cgroup/systemd"})


def make_spec(bundle: Path, change=None, no_pivot: bool = False) -> spec.Spec:
    c = base_config()
    c["root"] = {"path": "rootfs", "readonly": True}
    if change:
        change(c)
    return gate.parse(json.loads(json.dumps(c)), str(bundle), gate.Overrides(relay=True, no_pivot=no_pivot))


def make_plan(s: spec.Spec, host: HostLayout = V2_HOST, **options) -> list[Step]:
    return planner.for_create(s, host, planner.Options("cid", **options)).child


def ops(plan: list[Step]) -> list[str]:
    return [s.name for s in plan]


def first(plan: list[Step], name: str, *values) -> int:
    """Index of the first step `name` whose values start with `values`."""
    for i, s in enumerate(plan):
        if s.name == name and s.values[: len(values)] == values:
            return i
    raise AssertionError(f"no step {name} {values} in {ops(plan)}")


def test_the_life_of_an_init_in_order(bundle_dir):
    s = make_spec(bundle_dir, lambda c: (c["linux"].update(sysctl={"net.ipv4.ip_forward": "1"}),
                                         c["process"].update(cwd="/work", oomScoreAdj=3),
                                         c.update(hooks={"startContainer": [{"path": "/bin/true"}]})))
    plan = make_plan(s)
    order = [
        first(plan, "oom-score-adj", 3),
        first(plan, "propagation", "/", kernel.MS_REC | kernel.MS_SLAVE),
        first(plan, "root", str(bundle_dir / "rootfs")),
        first(plan, "mount", "proc", "/proc"), first(plan, "mount", "tmpfs", "/dev"),
        first(plan, "mount", "devpts", "/dev/pts"), first(plan, "mount", "tmpfs", "/tmp"),
        first(plan, "mknod", "/dev/null"), first(plan, "symlink", "pts/ptmx", "/dev/ptmx"),
        first(plan, "mkdir", "/work"), first(plan, "lo-up"), first(plan, "hook-sync"),
        first(plan, "sysctl", "/proc/sys/net/ipv4/ip_forward", "1"),  # before /proc/sys is read-only
        first(plan, "readonly", "/proc/bus"), first(plan, "mask", "/proc/acpi"),
        first(plan, "remount", "/", kernel.MS_RDONLY),
        first(plan, "pivot-root"), first(plan, "hostname", "pyrt-test"),
        first(plan, "rlimit", 7, 1024, 1024), first(plan, "session-keyring", "_ses.cid"),
        first(plan, "home", 0), first(plan, "resolve-exec", "true"),
        # credentials and capabilities before `ready`, as runc: their failures fail `create`
        first(plan, "cap-bounding"), first(plan, "user", 0, 0, ()), first(plan, "caps"),
        first(plan, "no-new-privileges"), first(plan, "chdir", "/work", False), first(plan, "close-fds", 3),
        first(plan, "umask", 0o022), first(plan, "ready"), first(plan, "wait-start", Fd("fifo")),
        first(plan, "hook", "startContainer"), first(plan, "exec"),
    ]
    assert order == sorted(order)
    assert plan[-1] == Step("exec", False, s.process.env, ["true"])
    # every mounts[] entry in config order, before any device node
    assert [st["dest"] for st in plan if st.name == "mount"] == [m.destination for m in s.mounts]
    assert len([x for x in ops(plan) if x == "mask"]) == len(s.masked_paths)


def test_choices_of_the_command_line(bundle_dir):
    s = make_spec(bundle_dir)
    plan = make_plan(s, no_pivot=True, no_new_keyring=True, preserve_fds=2, trace=True)
    assert plan[0].name == "trace"
    assert "move-root" in ops(plan) and "pivot-root" not in ops(plan)
    assert "session-keyring" not in ops(plan)
    assert plan[first(plan, "close-fds")]["first"] == 5
    exe = plan[-1]
    assert exe["listen_pid"] is True and "LISTEN_FDS=2" in exe["env"]  # LISTEN_PID: init's own pid


def test_namespaces_joined_and_new(bundle_dir):
    def join(c):
        c["linux"]["namespaces"] = [{"type": "pid", "path": "/p"}, {"type": "network", "path": "/n"},
                                    {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}]
    plan = make_plan(make_spec(bundle_dir, join))
    setns = [st.values for st in plan if st.name == "setns"]
    assert setns == [(Fd("ns:network"), 0x40000000), (Fd("ns:pid"), 0x20000000)]  # network before pid
    assert first(plan, "setns", Fd("ns:pid")) < first(plan, "fork") < first(plan, "unshare", 0x02000000)
    assert "lo-up" not in ops(plan)  # a joined network namespace is someone else's


def test_cgroup_v1_hierarchies_of_a_hybrid_host(bundle_dir):
    """On a hybrid host pyrt-init first writes itself into the container's `tasks` file of
    every v1 hierarchy (co-mounted controllers share one); on a v2 host there is none."""
    plan = make_plan(make_spec(bundle_dir), HYBRID_HOST)
    assert plan[0] == Step("join-cgroups", [Fd("cgroup-v1:cpu,cpuacct"), Fd("cgroup-v1:memory"),
                                            Fd("cgroup-v1:systemd")])
    assert "join-cgroups" not in ops(make_plan(make_spec(bundle_dir)))


def test_plan_slots_are_the_fds_to_open(bundle_dir):
    def change(c):
        c["process"].update(terminal=True, noNewPrivileges=False)
        c["linux"]["namespaces"][2] = {"type": "ipc", "path": "/i"}
    s = make_spec(bundle_dir, change)
    plan = planner.for_create(s, HYBRID_HOST, planner.Options("cid", seccomp=0, console=True))
    assert plan.slots() == ["cgroup-v1:cpu,cpuacct", "cgroup-v1:memory", "cgroup-v1:systemd", "ns:ipc", "console",
                            "seccomp", "fifo"]
    assert plan.parent == []


def test_terminal_gets_the_console(bundle_dir):
    s = make_spec(bundle_dir, lambda c: c["process"].update(terminal=True, consoleSize={"height": 5, "width": 9}))
    plan = make_plan(s, console=True)
    assert plan[first(plan, "console")].values == (Fd("console"), 5, 9)
    assert first(plan, "symlink", "pts/ptmx") < first(plan, "console") < first(plan, "pivot-root")


SLAVE, SHARED, PRIVATE = kernel.MS_SLAVE, kernel.MS_SHARED, kernel.MS_PRIVATE
REC, UNBINDABLE = kernel.MS_REC, kernel.MS_UNBINDABLE


@pytest.mark.parametrize("asked,on_root,holder,after_pivot", [
    (None, SLAVE | REC, PRIVATE, None), ("rshared", SHARED | REC, PRIVATE, SHARED | REC),
    ("shared", SHARED, PRIVATE, SHARED), ("rslave", SLAVE | REC, SLAVE, None), ("slave", SLAVE, SLAVE, None),
    ("rprivate", PRIVATE | REC, PRIVATE, None), ("unbindable", UNBINDABLE, PRIVATE, UNBINDABLE),
])
def test_root_propagation_as_runc(bundle_dir, asked, on_root, holder, after_pivot):
    """runc 1.5's order: rootfsPropagation (default rslave) on "/", the mount holding the rootfs
    private (slave for a slave root), the root bind; after pivot_root shared or unbindable again."""
    plan = make_plan(make_spec(bundle_dir, lambda c: asked and c["linux"].update(rootfsPropagation=asked)))
    props = [(i, st.values) for i, st in enumerate(plan) if st.name == "propagation"]
    root, pivot = first(plan, "root"), first(plan, "pivot-root")
    assert [a for i, a in props if i < root] == [("/", on_root), (str(bundle_dir / "rootfs"), holder)]
    assert [a for i, a in props if i > pivot] == ([("/", after_pivot)] if after_pivot else [])
    assert "mkdir" not in ops(plan)  # cwd "/" needs none


def test_no_pivot_root_propagation(bundle_dir):
    """--no-pivot moves the rootfs onto "/": "/" is made private first, or a shared "/" would
    carry the move to the host's "/". A private root is refused, as runc does."""
    rshared = make_spec(bundle_dir, lambda c: c["linux"].update(rootfsPropagation="rshared"), no_pivot=True)
    plan = make_plan(rshared, no_pivot=True)
    assert plan[first(plan, "move-root") - 1] == Step("propagation", "/", kernel.MS_PRIVATE)
    assert first(plan, "propagation", "/", SHARED | REC) < first(plan, "root")
    assert plan[first(plan, "move-root") + 1] == Step("propagation", "/", SHARED | REC)
    for asked in ("private", "rprivate"):  # refused at the gate (--no-pivot is one of its overrides)
        with pytest.raises(PyrtError, match=f'rootfsPropagation: "{asked}" is not safe without pivot_root'):
            make_spec(bundle_dir, lambda c, asked=asked: c["linux"].update(rootfsPropagation=asked), no_pivot=True)


# ----------------------------------------------------------------------------- mount options


@pytest.mark.parametrize("options,flags,propagation,attr_set,attr_clr,data", [
    ([], 0, 0, 0, 0, ""),
    (["defaults"], 0, 0, 0, 0, ""),
    (["ro", "nosuid", "nodev", "noexec"], kernel.MS_RDONLY | kernel.MS_NOSUID | kernel.MS_NODEV | kernel.MS_NOEXEC,
     0, 0, 0, ""),
    (["ro", "rw"], 0, 0, 0, 0, ""),  # the last word wins
    (["noatime", "atime"], 0, 0, 0, 0, ""),
    (["relatime", "strictatime", "nodiratime", "sync", "dirsync", "lazytime", "nosymfollow"],
     kernel.MS_RELATIME | kernel.MS_STRICTATIME | kernel.MS_NODIRATIME | kernel.MS_SYNCHRONOUS | kernel.MS_DIRSYNC
     | kernel.MS_LAZYTIME | kernel.MS_NOSYMFOLLOW, 0, 0, 0, ""),
    (["bind"], kernel.MS_BIND, 0, 0, 0, ""),
    (["rbind", "rprivate"], kernel.MS_BIND | kernel.MS_REC, kernel.MS_PRIVATE | kernel.MS_REC, 0, 0, ""),
    (["rslave"], 0, kernel.MS_SLAVE | kernel.MS_REC, 0, 0, ""),
    (["shared"], 0, kernel.MS_SHARED, 0, 0, ""),
    (["unbindable"], 0, kernel.MS_UNBINDABLE, 0, 0, ""),
    (["rro", "rnosuid", "rnodev", "rnoexec"], 0, 0,
     kernel.ATTR_RDONLY | kernel.ATTR_NOSUID | kernel.ATTR_NODEV | kernel.ATTR_NOEXEC, 0, ""),
    (["rrw", "rexec"], 0, 0, 0, kernel.ATTR_RDONLY | kernel.ATTR_NOEXEC, ""),
    (["rnoatime"], 0, 0, kernel.ATTR_NOATIME, kernel.ATTR__ATIME, ""),
    (["mode=755", "size=65536k", "nosuid", "uid=5"], kernel.MS_NOSUID, 0, 0, 0, "mode=755,size=65536k,uid=5"),
    (["newinstance", "ptmxmode=0666", "gid=5"], 0, 0, 0, 0, "newinstance,ptmxmode=0666,gid=5"),
])
def test_mount_option_mapping(options, flags, propagation, attr_set, attr_clr, data):
    o = mountopts.Options(options, "here")
    assert (o.flags, o.propagation, o.attr_set, o.attr_clr, o.data) == (flags, propagation, attr_set, attr_clr, data)


@pytest.mark.parametrize("kind,options,words", [
    ("tmpfs", ["remount"], '"remount" is not allowed'),
    ("tmpfs", ["ro", ""], "empty mount option"),
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
    assert step.values == ("/bundles/b/vol", "/data", "", kernel.MS_BIND | kernel.MS_RDONLY, 0, "", False, 0, 0)
    assert mountopts.parse("rbind", [], "m").flags == kernel.MS_BIND | kernel.MS_REC
    none_rbind = spec.Mount("/data", "none", "/abs", ["rbind"])
    assert mounts.mount_step(none_rbind, mountopts.parse("none", ["rbind"], "m"), "/b")["fstype"] == ""  # a bind
    for kind, dest, nosymlinks in (("proc", "/proc", True), ("sysfs", "/sys", True), ("devpts", "/dev/pts", True),
                                   ("mqueue", "/dev/mqueue", True), ("tmpfs", "/dev", True), ("tmpfs", "/run", False)):
        m = spec.Mount(dest, kind, kind, [])
        st = mounts.mount_step(m, mountopts.parse(kind, [], "m"), "/b")
        assert (st["source"], st["fstype"], st["nosymlinks"]) == (kind, kind, nosymlinks), (kind, dest)


# ----------------------------------------------------------------------------- /dev


def test_default_devices_and_overrides(bundle_dir):
    s = make_spec(bundle_dir, lambda c: c["linux"].update(devices=[
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600, "uid": 9, "gid": 9},
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]))
    plan = devices.steps(s, bind=False)
    nodes = {st["path"]: st.values[1:] for st in plan if st.name == "mknod"}
    assert set(nodes) == {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",
                          "/dev/fuse"}
    assert nodes["/dev/null"] == ("c", 1, 3, 0o600, 9, 9)  # the config's node wins
    assert nodes["/dev/tty"] == ("c", 5, 0, 0o666, 0, 0)
    links = {st["link"]: st["target"] for st in plan if st.name == "symlink"}
    assert links == {"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1",
                     "/dev/stderr": "/proc/self/fd/2", "/dev/ptmx": "pts/ptmx"}


@pytest.mark.parametrize("kind, options", [("bind", ["rbind"]), ("rbind", [])])
def test_dev_bind_mounted_from_the_host_gets_no_nodes(bundle_dir, kind, options):
    """Nothing is made (or chowned) through a bind of the host's /dev, not even linux.devices."""
    def host_dev(c):
        c["mounts"][1] = {"destination": "/dev", "type": kind, "source": "/dev", "options": options}
        c["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    assert devices.steps(make_spec(bundle_dir, host_dev), bind=False) == []


# ----------------------------------------------------------------------------- the process


def proc_with(**fields) -> spec.Process:
    return spec.Process(**{"args": ["sh"], "env": ["PATH=/bin"], **fields})


def test_rlimits_infinity_and_order():
    inf = kernel.RLIM_INFINITY  # pyrt-init reads unsigned 64-bit limits: 2^63 and up too
    p = proc_with(rlimits=[("RLIMIT_CORE", inf, inf), ("RLIMIT_NOFILE", 5, 9)])
    assert [st.values for st in process.rlimit_steps(p)] == [(4, inf, inf), (7, 5, 9)]


def test_credentials_and_capability_masks():
    caps = {"bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"],
            "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL", "CAP_CHOWN"]}
    p = proc_with(uid=1000, gid=100, additional_gids=[5, 6], umask=0o77, capabilities=caps)
    plan = process.become_steps(p, 0)
    by_name = {st.name: st.values for st in plan}
    assert by_name["cap-bounding"] == (0x21,)  # KILL (5) | CHOWN (0)
    assert by_name["caps"] == (0x20, 0x20, 0x20, 0x20)  # CHOWN cannot be ambient: not permitted/inheritable
    assert by_name["user"] == (1000, 100, (5, 6))
    assert by_name["umask"] == (0o77,)
    assert by_name["chown-stdio"] == (1000,)
    assert ops(plan).index("chown-stdio") < ops(plan).index("user")  # needs CAP_CHOWN
    root = process.become_steps(proc_with(), 0)
    assert "chown-stdio" not in ops(root) and dict((s.name, s.values) for s in root)["umask"] == (0o022,)


def test_personality_for_create_and_exec(bundle_dir):
    """linux.personality is a step of its own, in `create` and in `exec` (runc applies it to both)."""
    s = make_spec(bundle_dir, lambda c: c["linux"].update(personality={"domain": "LINUX32"}))
    plan = make_plan(s)
    at = first(plan, "personality", 8)
    assert first(plan, "pivot-root") < at < first(plan, "ready")
    proc = s.process
    exec_plan = planner.for_exec(proc, V2_HOST, ["pid", "mount"], planner.Options("cid"), 8).child
    assert first(exec_plan, "enter-root") < first(exec_plan, "personality", 8) < first(exec_plan, "exec")
    assert "personality" not in ops(make_plan(make_spec(bundle_dir)))
    assert "personality" not in ops(planner.for_exec(proc, V2_HOST, ["mount"], planner.Options("cid")).child)


def test_exec_joins_through_the_init_pidfd(bundle_dir):
    s = make_spec(bundle_dir, lambda c: c["process"].update(terminal=True))
    plan = planner.for_exec(s.process, HYBRID_HOST, ["pid", "mount", "network"], planner.Options("cid", console=True))
    assert plan.child[0].name == "join-cgroups"
    assert plan.child[first(plan.child, "setns")].values == (Fd("pidfd"), 0x20000000 | 0x00020000 | 0x40000000)
    assert first(plan.child, "setns") < first(plan.child, "fork") < first(plan.child, "enter-root") < \
        first(plan.child, "pty", Fd("console"))
    assert "ready" not in ops(plan.child) and "wait-start" not in ops(plan.child)
    assert plan.slots() == ["cgroup-v1:cpu,cpuacct", "cgroup-v1:memory", "cgroup-v1:systemd", "pidfd", "console"]
    with pytest.raises(PyrtError, match="exec needs a --console-socket"):
        planner.for_exec(s.process, V2_HOST, ["mount"], planner.Options("cid"))


@pytest.mark.parametrize("nnp", [True, False])
def test_seccomp_is_loaded_where_it_can_be(nnp):
    seccomp = Step("seccomp", Fd("seccomp"), 0)
    proc = proc_with(no_new_privileges=nnp)
    plan = ops(process.become_steps(proc, 0, seccomp) + [Step("wait-start", Fd("fifo"))]
               + process.exec_steps(proc, 0, seccomp))
    if nnp:  # last, right before execve: the filter need not allow init's own calls
        assert plan[-2:] == ["seccomp", "exec"] and plan.index("no-new-privileges") < plan.index("seccomp")
    else:  # while CAP_SYS_ADMIN is still held
        assert plan.index("seccomp") < plan.index("user")
    assert plan.count("seccomp") == 1


# ----------------------------------------------------------------------------- the schema and the wire


def decode(data: bytes) -> list[tuple]:
    """What native/init/plan.c reads: per step its name, then its fields, a list as its count
    and its items (read here by the kinds of steps.py)."""
    fields = data.split(b"\0")
    assert fields[-1] == b""
    tokens, out = iter(f.decode() for f in fields[:-1]), []
    for name in tokens:
        values = []
        for kind in steps.TYPES[name].kinds:
            if kind.isupper():
                values.append(tuple(next(tokens) for _ in range(int(next(tokens)))))
            else:
                values.append(next(tokens))
        out.append((name, *values))
    return out


def test_encoding(bundle_dir):
    s = make_spec(bundle_dir, lambda c: c["process"].update(args=["sh", "-c", "echo 'a b' é", ""], terminal=True))
    plan = planner.for_create(s, HYBRID_HOST, planner.Options("cid", console=True))
    fds = {name: 10 + i for i, name in enumerate(plan.slots())}
    wire = decode(steps.encode(plan.child, fds))
    assert [w[0] for w in wire] == ops(plan.child)
    assert wire[0] == ("join-cgroups", ("10", "11", "12"))
    assert wire[-1] == ("exec", "0", tuple(s.process.env), ("sh", "-c", "echo 'a b' é", ""))
    assert ("wait-start", str(fds["fifo"])) in wire and ("console", str(fds["console"]), "0", "0") in wire
    assert ("user", "0", "0", ()) in wire and ("umask", "18") in wire and ("oom-score-adj", "-5") in decode(
        steps.encode([Step("oom-score-adj", -5)], {}))
    with pytest.raises(steps.StepError, match="fd slot fifo was not opened"):
        steps.encode(plan.child, {k: v for k, v in fds.items() if k != "fifo"})


@pytest.mark.parametrize("name, values, why", [
    ("nope", (), "unknown step 'nope'"),
    ("umask", (), r"step umask: 0 values for the fields \(mask\)"),
    ("umask", ("0022",), "step umask: field mask: not an int: '0022'"),
    ("umask", (-1,), "step umask: field mask: out of range: -1"),
    ("rlimit", (7, 1 << 64, 0), "field soft: out of range"),
    ("oom-score-adj", (1 << 63,), "field value: out of range"),
    ("umask", (True,), "field mask: not an int"),
    ("mount", ("a", "/b", "", 0, 0, "", 1, 0, 0), "field nosymlinks: not a bool: 1"),
    ("exec", (False, ["A=1"], ["a\0b"]), r"field argv: item 0: contains a NUL byte"),
    ("user", (0, 0, "5,6"), "field groups: not a list"),
    ("user", (0, 0, [5, "6"]), "field groups: item 1: not an int"),
    ("wait-start", (3,), "field fifo: not an Fd: 3"),
    ("join-cgroups", ([Fd("a"), 4],), "field tasks: item 1: not an Fd"),
])
def test_a_step_is_checked_when_it_is_built(name, values, why):
    """A wrong value is pyrt's bug: it fails in the parent, naming the step and the field."""
    with pytest.raises(steps.StepError, match=why):
        Step(name, *values)


def test_the_c_header_is_generated_from_the_schema():
    """native/init/steps.h is `python -m pyrt.cheader`' output: a step changed here and not
    regenerated there fails this (and pyrt-init would refuse every plan that uses it)."""
    header = Path(__file__).resolve().parent.parent.parent / "native" / "init" / "steps.h"
    assert header.read_text() == cheader.header(), "run: python -m pyrt.cheader > native/init/steps.h"
    for t in steps.TYPES.values():
        assert set(t.kinds) <= set(steps.KINDS), t.name
        assert len(set(t.fields)) == len(t.fields), t.name


def test_every_step_of_a_plan_reads_as_a_sentence(bundle_dir):
    s = make_spec(bundle_dir, lambda c: (c["process"].update(terminal=True, cwd="/w"),
                                         c["linux"].update(sysctl={"kernel.shmmax": "1"}, rootfsPropagation="slave",
                                                           personality={"domain": "LINUX32"}),
                                         c.update(hooks={"createContainer": [{"path": "/bin/true", "timeout": 3}]})))
    plan = make_plan(s, HYBRID_HOST, console=True, trace=True, seccomp=0)
    lines = steps.render(plan).splitlines()
    assert len(lines) == len(plan)
    named = set()
    for line, st in zip(lines, plan, strict=True):
        number, _, text = line.strip().partition("  ")
        assert number.isdigit() and text != " ".join(map(str, (st.name, *st.values))), f"{st.name} has no description"
        named.add(st.name)
    text = steps.render(plan)
    assert "mount proc on /proc (no symlinks)" in text and "execve ['true']" in text
    assert "set the execution domain LINUX32" in text and "soft=1024 hard=1024" in text
    assert "write 0 to the tasks files <cgroup-v1:cpu,cpuacct>, <cgroup-v1:memory>" in text
    assert "wait on the exec fifo <fifo>" in text and "set umask 0022" in text
    assert "mknod /dev/null (c 1:3, mode 0666, owner 0:0)" in text
    assert "run the createContainer hook /bin/true (timeout 3 s)" in text
    assert len(named) >= 30  # most of the vocabulary in one plan


# ----------------------------------------------------------------------------- user and time namespaces


def with_userns(c: dict) -> None:
    c["linux"]["namespaces"].append({"type": "user"})
    c["linux"]["uidMappings"] = c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def test_a_new_user_namespace_comes_with_clone3(bundle_dir):
    from pyrt import namespaces

    s = make_spec(bundle_dir, with_userns)
    assert namespaces.clone_flags(s) & kernel.CLONE["user"]
    plan = make_plan(s)
    assert "mknod" not in ops(plan) and "setns" not in ops(plan) and "fork" not in ops(plan)
    assert first(plan, "mount", "/dev/null", "/dev/null", "", kernel.MS_BIND)  # the host's node, bound


def test_sysfs_and_mqueue_bound_without_their_namespaces(bundle_dir):
    def change(c):
        with_userns(c)
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] not in ("network", "ipc")]
    plan = make_plan(make_spec(bundle_dir, change))
    sys_ = plan[first(plan, "mount", "/sys", "/sys")]
    assert sys_["fstype"] == "" and sys_["flags"] & kernel.MS_REC and sys_["flags"] & kernel.MS_RDONLY
    assert plan[first(plan, "mount", "/dev/mqueue", "/dev/mqueue")]["fstype"] == ""
    own = make_plan(make_spec(bundle_dir, with_userns))
    assert own[first(own, "mount", "sysfs", "/sys")]["fstype"] == "sysfs"


def test_a_joined_user_namespace_owns_the_new_ones(bundle_dir):
    from pyrt import namespaces

    def change(c):
        c["linux"]["namespaces"].append({"type": "user", "path": "/proc/1/ns/user"})
    s = make_spec(bundle_dir, change)
    assert namespaces.clone_flags(s) == 0
    plan = make_plan(s)
    assert [o for o in ops(plan) if o != "cpu-affinity"][:4] == ["setns", "ns-root", "unshare", "fork"]
    new = plan[first(plan, "unshare")]["flags"]
    assert new == sum(kernel.CLONE[k] for k in ("pid", "network", "ipc", "uts", "mount"))


def test_a_time_namespace_is_unshared_with_the_pid_one_then_entered_by_a_fork(bundle_dir):
    from pyrt import namespaces

    def change(c):
        c["linux"]["namespaces"].append({"type": "time"})
        c["linux"]["timeOffsets"] = {"monotonic": {"secs": -5, "nanosecs": 7}}
    s = make_spec(bundle_dir, change)
    assert not namespaces.clone_flags(s) & (kernel.CLONE["time"] | kernel.CLONE["pid"])
    plan = make_plan(s)
    i = first(plan, "unshare", kernel.CLONE["time"] | kernel.CLONE["pid"])
    assert plan[i + 1] == Step("time-offsets", -5, 7, 0, 0) and plan[i + 2].name == "fork"


def test_idmapped_mounts_are_the_parents_trees(bundle_dir):
    from pyrt import parent_plan

    def change(c):
        with_userns(c)
        c["mounts"] += [{"destination": "/a", "type": "bind", "source": "/srv", "options": ["rbind", "ridmap"]},
                        {"destination": "/b", "type": "bind", "source": "/srv", "options": ["bind"],
                         "uidMappings": [{"containerID": 0, "hostID": 1, "size": 2}],
                         "gidMappings": [{"containerID": 0, "hostID": 3, "size": 4}]}]
    s = make_spec(bundle_dir, change)
    plan = make_plan(s)
    a = plan[first(plan, "mount-idmapped", Fd("idmap:7"))]
    assert a["dest"] == "/a" and a["source"] == "/srv"
    assert parent_plan.idmapped_trees(s) == [
        (7, "/srv", ((0, 100000, 65536),), ((0, 100000, 65536),), True, True),
        (8, "/srv", ((0, 1, 2),), ((0, 3, 4),), False, False)]
    assert {"idmap:7", "idmap:8"} <= set(steps.Plan(plan).slots())


def test_scheduling_steps_come_first_and_final_affinity_is_exec_only(bundle_dir):
    """The CPUs (every one: not the affinity of whoever ran pyrt), memory policy, scheduler and
    I/O priority right after the cgroups, while pyrt-init holds every capability; execCPUAffinity
    only for exec (the runtime-spec: "not applicable to the container's init process")."""
    fields = {"scheduler": {"policy": "SCHED_DEADLINE", "runtime": 1, "deadline": 2, "period": 3,
                            "flags": ["SCHED_FLAG_RESET_ON_FORK"]},
              "ioPriority": {"class": "IOPRIO_CLASS_IDLE"}, "execCPUAffinity": {"initial": "0-2,5", "final": "1"}}
    s = make_spec(bundle_dir, lambda c: (c["process"].update(fields),
                                         c["linux"].update(memoryPolicy={"mode": "MPOL_BIND", "nodes": "0,2",
                                                                         "flags": ["MPOL_F_STATIC_NODES"]})))
    plan = make_plan(s, HYBRID_HOST)
    assert ops(plan)[:5] == ["join-cgroups", "cpu-affinity", "mempolicy", "scheduler", "ioprio"]
    assert plan[1].values == ((),) and "cpu-affinity" not in ops(plan)[5:]
    assert plan[2].values == (2, 1 << 15, (0, 2))
    assert plan[3].values == (6, 0, 0, 1, 1, 2, 3)
    assert plan[4].values == (3 << 13,)
    ex = planner.for_exec(s.process, V2_HOST, ["mount", "pid"], planner.Options("cid")).child
    assert ex[0] == Step("cpu-affinity", [0, 1, 2, 5])
    assert ex[-2] == Step("cpu-affinity", [1]) and ex[-1].name == "exec"
    assert "mempolicy" not in ops(ex)


@pytest.mark.parametrize(("where", "value", "words"), [
    ("process", {"scheduler": {"policy": "SCHED_FIFO", "priority": 100}}, "process.scheduler.priority"),
    ("process", {"scheduler": {"policy": "SCHED_OTHER", "nice": -21}}, "process.scheduler.nice"),
    ("process", {"execCPUAffinity": {"initial": "3-1"}}, "process.execCPUAffinity.initial"),
    ("process", {"execCPUAffinity": {"final": "8192"}}, "process.execCPUAffinity.final"),
    ("process", {"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": -1}}, "process.ioPriority.priority"),
    ("linux", {"memoryPolicy": {}}, 'linux.memoryPolicy.mode: invalid memory policy mode ""'),
    ("linux", {"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "1024"}}, "linux.memoryPolicy.nodes"),
    ("linux", {"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0", "flags": "x"}}, "linux.memoryPolicy.flags"),
])
def test_scheduling_fields_are_checked_at_the_gate(bundle_dir, where, value, words):
    with pytest.raises(PyrtError, match=words.replace("(", r"\(").replace(".", r"\.")):
        make_spec(bundle_dir, lambda c: c[where].update(value))


def test_mounts_as_runc_takes_them(bundle_dir):
    """A bind whose options clear a flag is remounted (MS_REMOUNT: even with no flag set, so the
    source's nosuid, nodev... go); a destination written as the rootfs path on the host means
    the path in the container; a read-only /dev tmpfs is made read-only once filled."""
    root = str(bundle_dir / "rootfs")
    s = make_spec(bundle_dir, lambda c: (c["mounts"].extend([
        {"destination": "/a", "type": "bind", "source": "/tmp", "options": ["bind", "rw", "suid"]},
        {"destination": "/b", "type": "bind", "source": "/tmp", "options": ["bind"]},
        {"destination": root + "/mnt/p", "type": "tmpfs", "source": "tmpfs"}]),
        c["mounts"][1]["options"].append("ro")))
    plan = make_plan(s)
    by_dest = {p["dest"]: p for p in plan if p.name == "mount"}
    assert by_dest["/a"]["flags"] & kernel.MS_REMOUNT and not by_dest["/b"]["flags"] & kernel.MS_REMOUNT
    assert "/mnt/p" in by_dest
    assert not by_dest["/dev"]["flags"] & kernel.MS_RDONLY
    assert first(plan, "mknod") < first(plan, "remount", "/dev", kernel.MS_RDONLY) < first(plan, "pivot-root")
