"""The gate (config.py) without root or containers: what a valid config becomes (an immutable
Spec), and that every invalid one is refused with a message naming the file and the field,
never anything else."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from configs import base_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyrt import config as gate
from pyrt import spec
from pyrt.errors import PyrtError
from pyrt.reader import ConfigError


def config(**process) -> dict:
    c = base_config()
    c["root"] = {"path": "rootfs", "readonly": True}
    c["process"].update(process)
    return c


def parse(c: dict, bundle: Path, overrides: gate.Overrides | None = None) -> spec.Spec:
    return gate.parse(json.loads(json.dumps(c)), str(bundle), overrides)


def error(c: dict, bundle: Path) -> str:
    with pytest.raises(ConfigError) as e:
        parse(c, bundle)
    return str(e.value)


def test_a_valid_config(bundle_dir):
    c = config(user={"uid": 5, "gid": 6, "additionalGids": [7, 8], "umask": 0o27}, oomScoreAdj=-17)
    c["mounts"].append({"destination": "tmp//x/../y/", "type": "bind", "source": "data", "options": ["rbind"]})
    c["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
                             {"path": "/dev/p", "type": "p"}, {"path": "/dev/u", "type": "u", "major": 1, "minor": 3,
                                                                "fileMode": 0o600, "uid": 1, "gid": 2}]
    c["linux"]["namespaces"].append({"type": "cgroup", "path": "/proc/1/ns/cgroup"})
    c["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    c["linux"]["rootfsPropagation"] = "rslave"
    c["annotations"] = {"a": "b"}
    s = parse(c, bundle_dir)
    assert s.root == str(bundle_dir / "rootfs") and s.root_readonly and s.bundle == str(bundle_dir)
    assert s.hostname == "pyrt-test" and s.annotations == {"a": "b"}
    p = s.process
    assert (p.uid, p.gid, p.additional_gids, p.umask, p.oom_score_adj) == (5, 6, (7, 8), 0o27, -17)
    assert p.args == ("true",) and p.cwd == "/" and p.no_new_privileges and not p.terminal
    assert p.rlimits == (("RLIMIT_NOFILE", 1024, 1024),)
    assert p.capabilities["bounding"] == ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
    assert p.capabilities["inheritable"] == p.capabilities["ambient"] == ()  # absent sets are empty
    assert s.mounts[-1].destination == "/tmp/y" and s.mounts[-1].options == ("rbind",)
    assert s.mounts[-1].opts.bind and s.mounts[0].opts.flags == 0  # mount options parsed at the gate
    assert [m.destination for m in s.mounts[:3]] == ["/proc", "/dev", "/dev/pts"]
    assert s.namespaces == {"pid": None, "network": None, "ipc": None, "uts": None, "mount": None,
                            "cgroup": "/proc/1/ns/cgroup"}
    fuse, fifo, u = s.devices
    assert (fuse.type, fuse.major, fuse.minor, fuse.file_mode, fuse.uid, fuse.gid) == ("c", 10, 229, 0o666, 0, 0)
    assert (fifo.type, fifo.major, fifo.minor) == ("p", 0, 0)
    assert (u.type, u.file_mode, u.uid, u.gid) == ("c", 0o600, 1, 2)  # "u" (unbuffered) is a char device
    assert s.sysctl == {"net.ipv4.ip_forward": "1"} and s.rootfs_propagation == "rslave"
    assert s.masked_paths[0] == "/proc/acpi" and s.readonly_paths[-1] == "/proc/sysrq-trigger"


def test_absolute_root_and_minimal_config(tmp_path):
    minimal = {"ociVersion": "1.0.0", "root": {"path": str(tmp_path)}, "process": {"args": ["sh"], "cwd": "/"},
               "linux": {"namespaces": [{"type": "mount"}]}}
    s = gate.parse(minimal, "/elsewhere")
    assert s.root == str(tmp_path) and s.mounts == () and s.namespaces == {"mount": None}
    assert s.network is None and s.seccomp is None and s.hooks == {} and s.annotations == {}
    for missing, words in (("process", "config.json: process: is required to create a container"),
                           ("linux", "config.json: linux.namespaces: pyrt needs a new mount namespace")):
        with pytest.raises(ConfigError, match=words):
            gate.parse({k: v for k, v in minimal.items() if k != missing}, "/elsewhere")


@pytest.mark.parametrize("version", ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.1", "1.3.0", "1.3.7+build", "1.0.0-rc5"])
def test_accepted_versions(bundle_dir, version):
    c = config()
    c["ociVersion"] = version
    assert parse(c, bundle_dir).oci_version == version


@pytest.mark.parametrize("version", ["0.9.9", "1.4.0", "2.0.0", "1.0", "one", "", "1.0.0.0"])
def test_refused_versions(bundle_dir, version):
    c = config()
    c["ociVersion"] = version
    assert error(c, bundle_dir).startswith("config.json: ociVersion: unsupported version")


def set_path(c: dict, path: str, value: object) -> None:
    """Set a dotted path (with [i] indexes) in a config; value DELETE removes the key."""
    keys = [int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")]
    obj = c
    for k in keys[:-1]:
        obj = obj[k]
    if value is DELETE:
        del obj[keys[-1]]
    else:
        obj[keys[-1]] = value


DELETE = object()

# field -> (bad value, words of the message after "config.json: ")
BAD = [
    ("root", DELETE, "root: is required"),
    ("root.path", "", "root.path: must not be empty"),
    ("root.path", 7, "root.path: must be a string"),
    ("root.path", "missing", "root.path: "),
    ("root.readonly", "yes", "root.readonly: must be true or false"),
    ("ociVersion", DELETE, "ociVersion: is required"),
    ("hostname", ["a"], "hostname: must be a string"),
    ("process.args", [], "process.args: must be a non-empty array of strings"),
    ("process.args", ["sh", None], "process.args: must be a non-empty array of strings"),
    ("process.args", "sh", "process.args: must be an array"),
    ("process.cwd", DELETE, "process.cwd: is required"),
    ("process.cwd", "tmp", "process.cwd: must be an absolute path"),
    ("process.env", ["A=1", "B"], 'process.env[1]: "B" is not KEY=VALUE'),
    ("process.terminal", 1, "process.terminal: must be true or false"),
    ("process.user.uid", -1, "process.user.uid: uids and gids must be in range 0-2147483647"),
    ("process.user.uid", True, "process.user.uid: must be an integer"),
    ("process.user.gid", 1 << 32, "process.user.gid: uids and gids must be in range 0-2147483647"),
    # -1 as a u32: setresuid(2) and chown(2) read it as "unchanged" (the process stays root)
    ("process.user.uid", 4294967295, "process.user.uid: uids and gids must be in range 0-2147483647"),
    ("process.user.gid", 4294967295, "process.user.gid: uids and gids must be in range 0-2147483647"),
    ("process.user.uid", 2147483648, "process.user.uid: uids and gids must be in range 0-2147483647"),
    ("process.user.additionalGids", [1, 4294967295], "process.user.additionalGids: uids and gids must be in range"),
    ("process.user.additionalGids", list(range(65537)),
     "process.user.additionalGids: 65537 groups: the kernel takes at most 65536"),
    ("process.user.umask", 0o1000, "process.user.umask: must be between 0 and 0777"),
    ("process.user.additionalGids", [1, "2"], "process.user.additionalGids: must be an array of group ids"),
    ("process.user.username", "bob", "process.user.username: process.user.username (Windows) is not supported"),
    ("process.capabilities.bounding", ["CAP_NOPE"], 'process.capabilities.bounding: unknown capability "CAP_NOPE"'),
    ("process.capabilities.effective", "CAP_KILL", "process.capabilities.effective: must be an array"),
    ("process.rlimits[0].type", "RLIMIT_NOPE", 'process.rlimits[0].type: unknown rlimit "RLIMIT_NOPE"'),
    ("process.rlimits[0].soft", -1, "process.rlimits[0].soft: must be between 0 and"),
    ("process.rlimits[0]", "x", "process.rlimits[0]: must be an object"),
    ("process.oomScoreAdj", 1001, "process.oomScoreAdj: must be between -1000 and 1000"),
    ("process.noNewPrivileges", "true", "process.noNewPrivileges: must be true or false"),
    ("process.apparmorProfile", "p", "process.apparmorProfile: AppArmor is not supported"),
    ("process.selinuxLabel", "l", "process.selinuxLabel: SELinux is not supported"),
    ("process.consoleSize", {"height": -3}, "process.consoleSize.height: must be between 0"),
    ("process.consoleSize", {"width": 65536}, "process.consoleSize.width: must be between 0 and 65535"),
    ("process.args", ["sh", "a\0b"], "process.args[1]: must not contain a NUL byte"),
    ("process.env", ["A=\ud800"], "process.env[0]: must be valid UTF-8"),
    ("hostname", "h" * 65, "hostname: longer than the kernel's 64 bytes"),
    ("domainname", "d" * 65, "domainname: longer than the kernel's 64 bytes"),
    ("linux.cgroupsPath", "/a\0b", "linux.cgroupsPath: must not contain a NUL byte"),
    ("linux.cgroupsPath", "/pyrt-x" + "/a" * 1981, "linux.cgroupsPath: longer than 3968 bytes"),
    ("linux.namespaces[0].path", "/proc/1/ns/pid\0", "linux.namespaces[0].path: must not contain a NUL byte"),
    ("hooks", {"prestart": [{"path": "/bin/true\0"}]}, "hooks.prestart[0].path: must not contain a NUL byte"),
    ("hooks", {"prestart": [{"path": "/x", "timeout": 1 << 31}]}, "hooks.prestart[0].timeout: must be a positive"),
    ("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["re\0ad"]}]},
     "linux.seccomp.syscalls[0].names[0]: must not contain a NUL byte"),
    ("linux.resources", {"cpu": {"cpus": "0\0"}}, "linux.resources.cpu.cpus: must not contain a NUL byte"),
    ("annotations", {"k\0": "v"}, "annotations.k\\x00: must not contain a NUL byte"),
    ("linux.sysctl", {"kernel.shmmax": "1\0"}, "linux.sysctl.kernel.shmmax: must not contain a NUL byte"),
    ("mounts", {}, "mounts: must be an array"),
    ("mounts[0].destination", DELETE, "mounts[0].destination: is required"),
    ("mounts[0].destination", "", "mounts[0].destination: must not be empty"),
    ("mounts[0].options", ["ro", 1], "mounts[0].options: must be an array of strings"),
    ("mounts[0].uidMappings", [{"containerID": 0, "hostID": 1, "size": 1}],
     "mounts[0].gidMappings: an idmapped mount needs both uidMappings and gidMappings"),
    ("linux.namespaces[0].type", "time2", 'linux.namespaces[0].type: unknown namespace type "time2"'),
    ("linux.namespaces[1].type", "pid", 'linux.namespaces[1].type: namespace "pid" is listed twice'),
    ("linux.namespaces[0]", ["pid"], "linux.namespaces[0]: must be an object"),
    ("linux.devices", [{"path": "/dev/x", "type": "q", "major": 1, "minor": 1}],
     'linux.devices[0].type: unknown device type "q"'),
    ("linux.devices", [{"path": "/dev/x", "type": "c"}], "linux.devices[0].major: is required"),
    ("linux.devices", [{"path": "/dev/../etc/x", "type": "c", "major": 1, "minor": 1}],
     "linux.devices[0].path: must be a path under /dev"),
    ("linux.devices", [{"path": "/dev/x", "type": "c", "major": 1, "minor": 1, "fileMode": 0o10000}],
     "linux.devices[0].fileMode: must be a permission mode"),
    ("linux.rootfsPropagation", "sideways", 'linux.rootfsPropagation: unknown propagation "sideways"'),
    ("linux.sysctl", {"../x": "1"}, 'linux.sysctl: bad sysctl "../x"'),
    ("linux.sysctl", {"net.ipv4.ip_forward": 1}, 'linux.sysctl: bad sysctl "net.ipv4.ip_forward"'),
    ("linux.maskedPaths", "/proc/kcore", "linux.maskedPaths: must be an array"),
    ("linux.intelRdt", {"closID": "x"}, "linux.intelRdt: Intel RDT is not supported"),
    ("linux.timeOffsets", {"boottime": {"secs": 1}},
     "linux.timeOffsets: time namespace offsets specified, but time namespace isn't enabled in the config"),
    ("linux.uidMappings", [{"containerID": 0, "hostID": -1, "size": 1}], "linux.uidMappings[0].hostID: must be"),
    ("linux.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}],
     "linux.uidMappings: mappings without a user namespace"),
    ("linux.gidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}],
     "linux.gidMappings: mappings without a user namespace"),
    ("linux.devices", [{"path": "/dev/x", "type": "c", "major": 1, "minor": 3, "uid": 4294967295}],
     "linux.devices[0].uid: uids and gids must be in range 0-2147483647"),
    ("linux.devices", [{"path": "/dev/x", "type": "c", "major": 1, "minor": 3, "gid": -1}],
     "linux.devices[0].gid: uids and gids must be in range 0-2147483647"),
    ("linux.devices", [{"path": "/dev/x", "type": "c", "major": 4096, "minor": 3}],
     "linux.devices[0].major: must be between 0 and 4095"),
    ("linux.devices", [{"path": "/dev/x", "type": "b", "major": 1, "minor": 1 << 20}],
     "linux.devices[0].minor: must be between 0 and 1048575"),
    ("linux.devices", [{"path": "/dev/x", "type": "c", "major": -1, "minor": 3}],
     "linux.devices[0].major: must be between 0 and 4095"),
    ("linux.personality", {"domain": "FOO"}, 'linux.personality.domain: invalid personality domain "FOO"'),
    ("linux.personality", {}, 'linux.personality.domain: invalid personality domain ""'),
    ("linux.personality", {"domain": "LINUX32", "flags": ["ADDR_NO_RANDOMIZE"]},
     "linux.personality.flags: personality flags are not supported by pyrt"),
    ("linux.personality", {"domain": "LINUX32", "flags": "x"}, "linux.personality.flags: must be an array"),
    ("linux.personality", "LINUX32", "linux.personality: must be an object"),
    ("annotations", {"a": 1}, "annotations: values must be strings"),
    ("hooks", {"prestart": [{"args": []}]}, "hooks.prestart[0].path: is required"),
    ("hooks", {"prestart": [{"path": "rel"}]}, "hooks.prestart[0].path: must be an absolute path"),
    ("hooks", {"prestart": [{"path": "/x", "timeout": 0}]}, "hooks.prestart[0].timeout: must be a positive number"),
    ("hooks", {"preboot": []}, 'hooks: unknown hook kind "preboot"'),
    ("windows", {"layerFolders": ["x"]}, "windows: the windows platform is not supported"),
]


@pytest.mark.parametrize("field,value,words", BAD, ids=[f"{f}={v!r}"[:60] for f, v, _ in BAD])
def test_invalid_field_is_named(bundle_dir, field, value, words):
    c = config()
    set_path(c, field, value)
    message = error(c, bundle_dir)
    assert message.startswith("config.json: " + words), message
    assert "\n" not in message


def test_load_errors_name_the_file(tmp_path):
    path = tmp_path / "config.json"
    with pytest.raises(ConfigError, match="no such file or directory"):
        gate.load(str(tmp_path))
    for text, words in (("", "config.json is empty"), ("  \n", "config.json is empty"),
                        ('{"ociVersion": "1.0.0",', "invalid JSON"), (b"\xff\xfe{}", "invalid JSON"),
                        ("[]", "config.json: must be an object"), ("null", "config.json: must be an object")):
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        with pytest.raises(ConfigError) as e:
            gate.load(str(tmp_path))
        assert words in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_load_reads_a_large_config(bundle_dir):
    c = config()
    c["annotations"] = {f"k{i}": "v" * 100 for i in range(2000)}  # > 64 KiB, several reads
    (bundle_dir / "config.json").write_text(json.dumps(c))
    assert len(gate.load(str(bundle_dir)).annotations) == 2000


def test_process_json_errors_name_their_file():
    with pytest.raises(ConfigError, match=r"^process\.json: args: must be a non-empty array"):
        gate.load_process({"args": [], "cwd": "/"}, "process.json")


# ----------------------------------------------------------------------------- property

JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
                    | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=6)


def paths(obj: object, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON tree: the key paths of all its values."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += paths(v, (*prefix, i))
    return out


BASE = config()
PLACES = [p for p in paths(BASE) if p]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(place=st.sampled_from(PLACES), value=JSON, extra_key=st.booleans())
def test_any_json_anywhere_is_a_config_error_or_a_spec(bundle_dir, place, value, extra_key):
    """Whatever JSON sits at whatever place of a valid config, the gate either refuses it with
    one line naming the field or passes it; what it passes, the child's planner plans without
    an error (nothing is left for it to refuse), and the parent's refuses only what this host
    cannot do with linux.resources."""
    c = copy.deepcopy(BASE)
    obj = c
    for k in place[:-1]:
        obj = obj[k]
    if extra_key and isinstance(obj, dict):
        obj["x-unknown"] = value  # unknown keys are ignored, as runc does
    else:
        obj[place[-1]] = value
    try:
        s = gate.parse(c, str(bundle_dir), gate.Overrides(relay=True))
    except PyrtError as e:
        assert str(e).startswith("config.json: ") and "\n" not in str(e)
        return
    from pyrt import cgroups, cgwrites, host, planner

    layout = host.HostLayout(v2_controllers=frozenset(("cpu", "cpuset", "io", "memory", "pids", "hugetlb")))
    planner.for_create(s, layout, planner.Options("prop", seccomp=0 if s.seccomp else None, console=True))
    try:
        cgwrites.writes(s.resources, cgroups.Cgroup.for_spec(s.cgroups_path, "prop", host=layout),
                        device_nodes=s.devices)
    except PyrtError as e:
        assert str(e).startswith("config.json: linux.resources") and "\n" not in str(e), str(e)


# ----------------------------------------------------------------------------- checks across sections


@pytest.mark.parametrize("key,namespaces,ok", [
    ("net.ipv4.ip_forward", ("network",), True), ("net.core.somaxconn", ("ipc",), False),
    ("kernel.shmmax", ("ipc",), True), ("fs.mqueue.queues_max", ("ipc",), True),
    ("kernel.shmmax", ("network",), False), ("kernel.hostname", ("uts",), True),
    ("kernel.domainname", (), False), ("vm.swappiness", ("network", "ipc", "uts"), False),
    ("kernel.panic", ("network", "ipc", "uts"), False),
])
def test_only_namespaced_sysctls(bundle_dir, key, namespaces, ok):
    """A sysctl of a namespace the container does not own would change the host's."""
    c = config()
    c["linux"]["namespaces"] = [{"type": t} for t in ("mount", *namespaces)]
    c["linux"]["sysctl"] = {key: "1"}
    c.pop("hostname")
    if ok:
        assert parse(c, bundle_dir).sysctl == {key: "1"}
    else:
        assert error(c, bundle_dir) == (f'config.json: linux.sysctl: "{key}" is not in a namespace of the container '
                                        "(it would change the host)")


@pytest.mark.parametrize("change,words", [
    (lambda c: c["linux"]["namespaces"].append({"type": "user"}),
     "config.json: linux.uidMappings: a new user namespace needs mappings"),
    (lambda c: c["mounts"].append({"destination": "/x", "type": "bind", "source": "/", "options": ["bind", "idmap"]}),
     'config.json: mounts[7]: mount option "idmap" without uidMappings and gidMappings takes those of the '
     "container's user namespace, and it has none"),
    (lambda c: c["mounts"].append({"destination": "/x", "type": "tmpfs", "source": "t", "options": ["ridmap"]}),
     "config.json: mounts[7]: idmapped mounts are only supported for bind mounts"),
    (lambda c: c["linux"]["namespaces"].remove({"type": "uts"}),
     "config.json: hostname: unable to set hostname without a private UTS namespace"),
    (lambda c: c.update(domainname="d") or c["linux"]["namespaces"].remove({"type": "uts"}),
     "unable to set hostname without a private UTS namespace"),
    (lambda c: c.pop("hostname") and c.update(domainname="d") or c["linux"]["namespaces"].remove({"type": "uts"}),
     "config.json: domainname: unable to set domainname without a private UTS namespace"),
    (lambda c: c["linux"]["namespaces"][3].update(path="/proc/self/ns/uts"),
     "config.json: hostname: the joined uts namespace is the host's (pyrt never renames the host)"),
    (lambda c: c["linux"]["namespaces"].remove({"type": "mount"}), "pyrt needs a new mount namespace"),
    (lambda c: c["linux"]["namespaces"][4].update(path="/proc/1/ns/mnt"), "pyrt needs a new mount namespace"),
    (lambda c: c["process"]["rlimits"].append({"type": "RLIMIT_CORE", "soft": 9, "hard": 5}),
     "config.json: process.rlimits: RLIMIT_CORE: soft limit 9 is above the hard limit 5"),
    (lambda c: c["mounts"].append({"destination": "/x", "type": "tmpfs", "options": ["remount"]}),
     'config.json: mounts[7]: mount option "remount" is not allowed in config.json'),
    (lambda c: c["mounts"].append({"destination": "/x", "type": "bind", "source": "/", "options": ["size=1m"]}),
     'config.json: mounts[7]: unknown mount option "size=1m" for a bind mount'),
    (lambda c: c["linux"].update(cgroupsPath="system.slice:pyrt:x"),
     'config.json: linux.cgroupsPath: "system.slice:pyrt:x" is a systemd path; pyrt has no systemd cgroup driver'),
    (lambda c: c["linux"].update(cgroupsPath="/a/../../b"),
     'config.json: linux.cgroupsPath: "/a/../../b" must name a cgroup below the root'),
    (lambda c: c["linux"].update(cgroupsPath="///"), 'config.json: linux.cgroupsPath: "///" must name a cgroup'),
    (lambda c: c["linux"].update(resources={"memory": {"limit": "1G"}}),
     "config.json: linux.resources.memory.limit: '1G' is not an integer"),
    (lambda c: c["linux"].update(resources={"devices": [{"type": "c"}]}),
     "config.json: linux.resources.devices[0].allow: is required"),
    (lambda c: c["linux"].update(seccomp={"defaultAction": "SCMP_ACT_NOPE"}),
     'config.json: linux.seccomp.defaultAction: unknown action "SCMP_ACT_NOPE"'),
    (lambda c: c.update(annotations={"org.pyrt.ports": "80"}),
     'config.json: annotations: org.pyrt.ports "80": want [IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]'),
    (lambda c: c.update(annotations={"org.pyrt.network": "host"}),
     'config.json: annotations: org.pyrt.network "host": unknown network mode (use none or bridge)'),
    (lambda c: c.update(annotations={"org.pyrt.network": "bridge"}) or c["linux"]["namespaces"].remove(
        {"type": "network"}), "bridge networking needs a new network namespace"),
])
def test_refused_across_sections(bundle_dir, change, words):
    """Checks that need more than one field, or more than config.json's own types, all at the gate."""
    c = config()
    change(c)
    with pytest.raises(PyrtError) as e:
        parse(c, bundle_dir)
    assert words in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_the_command_line_against_the_config(bundle_dir):
    """--console-socket, --no-pivot and the terminal: refused at the gate, with runc's words."""
    tty = config(terminal=True)
    with pytest.raises(PyrtError, match=r"^process.terminal is true: a --console-socket is needed"):
        parse(tty, bundle_dir)
    assert parse(tty, bundle_dir, gate.Overrides(console_socket="/s")).process.terminal
    assert parse(tty, bundle_dir, gate.Overrides(relay=True)).process.terminal  # `run` in the foreground
    with pytest.raises(PyrtError, match="--console-socket: process.terminal is false"):
        parse(config(), bundle_dir, gate.Overrides(console_socket="/s"))


def test_network_flags_are_folded_into_the_annotations(bundle_dir):
    """--network and -p end in the Spec's annotations (final: `state` shows them) and its request."""
    c = config()
    c["annotations"] = {"org.pyrt.ports": "1:2"}
    s = parse(c, bundle_dir, gate.Overrides(network="bridge", publish=["8080:80", "127.0.0.1:53:53/udp"]))
    assert s.annotations == {"org.pyrt.network": "bridge", "org.pyrt.ports": "8080:80/tcp,127.0.0.1:53:53/udp"}
    assert [str(p) for p in s.network.ports] == ["8080:80/tcp", "127.0.0.1:53:53/udp"]
    assert (s.network.bridge, s.network.subnet) == ("pyrt0", "10.77.0.0/16")
    none = parse(c, bundle_dir, gate.Overrides(network="none"))
    assert none.network is None and none.annotations == {"org.pyrt.network": "none"}
    assert parse(config(), bundle_dir).network is None
    c["annotations"]["org.opencontainers.image.exposedPorts"] = "80/tcp,53/udp"
    assert [str(p) for p in parse(c, bundle_dir, gate.Overrides(publish_all=True)).network.ports] == [
        "80:80/tcp", "53:53/udp"]


def test_the_spec_cannot_change(bundle_dir):
    """Nothing after the gate can change what it checked: attributes, arrays, objects."""
    s = parse(config(), bundle_dir)
    with pytest.raises(AttributeError):
        s.hostname = "other"
    with pytest.raises(AttributeError):
        s.process.uid = 5
    with pytest.raises(TypeError):
        s.annotations["org.pyrt.network.address"] = "10.77.0.2"
    with pytest.raises(TypeError):
        s.namespaces.pop("mount")
    assert isinstance(s.mounts, tuple) and isinstance(s.process.args, tuple) and isinstance(s.process.env, tuple)


def test_process_json_reads_back_the_same_process(bundle_dir):
    """exec keeps the container's process in state.json as config.json writes it: read back by
    the same parser, it is the same Process."""
    c = config(user={"uid": 5, "gid": 6, "additionalGids": [7], "umask": 0o27}, oomScoreAdj=-17, terminal=True,
               consoleSize={"height": 5, "width": 9})
    p = parse(c, bundle_dir, gate.Overrides(relay=True)).process
    assert gate.load_process(json.loads(json.dumps(gate.process_json(p))), "state.json") == p
    bare = gate.load_process({"args": ["sh"], "cwd": "/"}, "x")
    assert gate.load_process(gate.process_json(bare), "x") == bare


# ----------------------------------------------------------------------------- user and time namespaces


def userns(c: dict, uid: list | None = None, gid: list | None = None) -> dict:
    c["linux"]["namespaces"].append({"type": "user"})
    full = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    c["linux"]["uidMappings"], c["linux"]["gidMappings"] = uid or full, gid or full
    return c


def m(container: int, host: int, size: int) -> dict:
    return {"containerID": container, "hostID": host, "size": size}


def test_mappings_are_read_in_order(bundle_dir):
    s = parse(userns(config(), [m(0, 100000, 1000), m(1000, 300000, 5)]), bundle_dir)
    assert s.uid_mappings == ((0, 100000, 1000), (1000, 300000, 5)) and s.gid_mappings == ((0, 100000, 65536),)


@pytest.mark.parametrize("maps,words", [
    ([m(0, 100000, 0)], "linux.uidMappings[0].size: must be at least 1"),
    ([m(0, 100000, 10), m(9, 200000, 1)], "linux.uidMappings: entries 0 and 1 overlap (containerID ranges)"),
    ([m(0, 100000, 10), m(20, 100009, 1)], "linux.uidMappings: entries 0 and 1 overlap (hostID ranges)"),
    ([m(10, 200000, 1), m(0, 100000, 11)], "linux.uidMappings: entries 0 and 1 overlap (containerID ranges)"),
    ([m(0, 4294967295, 1)], "linux.uidMappings[0].size: hostID + size goes past the last id 4294967294"),
    ([m(0, 100000, 1), m(4294967290, 200000, 6)],
     "linux.uidMappings[1].size: containerID + size goes past the last id 4294967294"),
    ([m(0, 100000, 1 << 32)], "linux.uidMappings[0].size: must be between 0 and 4294967295"),
    ([m(i, 100000 + i, 1) for i in range(341)], "linux.uidMappings: 341 mappings: the kernel takes at most 340"),
    ([m(1, 100000, 10)], "linux.uidMappings: user namespaces enabled, but no mapping found for uid 0"),
])
def test_bad_mappings(bundle_dir, maps, words):
    assert error(userns(config(), maps), bundle_dir) == f"config.json: {words}"


def test_340_mappings_and_the_last_id_are_fine(bundle_dir):
    s = parse(userns(config(), [m(i, 100000 + i, 1) for i in range(340)], [m(0, 4294967294 - 9, 10)]), bundle_dir)
    assert len(s.uid_mappings) == 340


def test_the_process_ids_must_be_mapped(bundle_dir):
    c = userns(config(), [m(0, 100000, 1000)])
    c["process"]["user"] = {"uid": 1000, "gid": 0}
    assert error(c, bundle_dir) == "config.json: linux.uidMappings: user namespaces enabled, but no mapping found " \
                                   "for uid 1000"


def test_a_new_user_namespace_with_a_joined_namespace_is_refused(bundle_dir):
    c = userns(config())
    c["linux"]["namespaces"] = [{"type": "network", "path": "/proc/1/ns/net"} if n["type"] == "network" else n
                                for n in c["linux"]["namespaces"]]
    assert error(c, bundle_dir) == ('config.json: linux.namespaces: a new user namespace with the "network" '
                                    "namespace joined by path is not supported by pyrt")


@pytest.mark.parametrize("offsets,words", [
    ({"monotonic": {"secs": 1, "nanosecs": 10 ** 9}}, "linux.timeOffsets.monotonic.nanosecs: must be between"),
    ({"realtime": {"secs": 1}}, 'linux.timeOffsets: unknown clock "realtime" (monotonic or boottime)'),
    ({"boottime": {"secs": -(1 << 63) - 1}}, "linux.timeOffsets.boottime.secs: must be a signed 64-bit"),
    ({"boottime": 5}, "linux.timeOffsets.boottime: must be an object"),
])
def test_bad_time_offsets(bundle_dir, offsets, words):
    c = config()
    c["linux"]["namespaces"].append({"type": "time"})
    c["linux"]["timeOffsets"] = offsets
    assert error(c, bundle_dir).startswith(f"config.json: {words}")


def test_time_offsets_need_a_new_time_namespace(bundle_dir):
    c = config()
    c["linux"]["namespaces"].append({"type": "time", "path": "/proc/1/ns/time"})
    c["linux"]["timeOffsets"] = {"boottime": {"secs": 5}}
    assert error(c, bundle_dir).endswith("isn't enabled in the config (a joined one has its offsets)")
    c["linux"]["namespaces"][-1] = {"type": "time"}
    assert parse(c, bundle_dir).time_offsets == {"boottime": (5, 0)}
