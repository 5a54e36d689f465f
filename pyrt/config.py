"""The gate: config.json (and the command line's overrides) -> a validated, immutable Spec.

Every check on input happens here, before anything is done about it: field types and ranges,
what pyrt cannot do (refused, never ignored), mount options, namespaces (hostname and sysctls
only in namespaces of the container's own), rlimits, linux.resources (limits.py, in no host's
dialect), linux.seccomp (seccomp.parse), pyrt's network request (netspec.py, with --network
and -p folded into the annotations first), and the command line's flags against the config.
`pyrt create`, `pyrt run` and `pyrt plan` all pass through `load`, so `plan` refuses exactly
what `create` refuses. What depends on the host (a cgroup controller, a namespace path, the
syscalls libseccomp knows) is checked next, by the planners, still before any side effect.

Every error names the file and the field: `config.json: process.args: must be ...`.
"""

from __future__ import annotations

import os

from pyrt import jsonio
from pyrt.errors import PyrtError
from pyrt.nsgate import check_userns, mappings, net_devices, time_offsets
from pyrt.reader import MAX_ID, ConfigError, Reader, check_tree
from pyrt.spec import HOOK_KINDS, NAMESPACES, PERSONALITIES, Device, FrozenDict, Hook, Mount, Process, Spec

#: Versions of the runtime-spec whose configs pyrt accepts.
MIN_VERSION, MAX_VERSION = (1, 0, 0), (1, 3)
#: The kernel's limits: supplementary groups (NGROUPS_MAX), host and domain names (__NEW_UTS_LEN),
#: device numbers (12 bits of major, 20 of minor in the kernel's dev_t), a path (with its NUL).
NGROUPS_MAX, HOST_NAME_MAX, MAX_MAJOR, MAX_MINOR = 65536, 64, (1 << 12) - 1, (1 << 20) - 1
PATH_MAX = 4096
PROPAGATIONS = ("private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable")
#: The st_mode file type bits of each linux.devices type.
_S_IFMT = {"c": 0o020000, "u": 0o020000, "b": 0o060000, "p": 0o010000}
IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
               "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


class Overrides:
    """What the command line adds to config.json. `network`/`publish`/`publish_all`: pyrt's
    bridge mode (--network, -p, -P); `console_socket`: --console-socket; `relay`: the command
    gives a terminal of its own (`run` in the foreground; `plan` plans for that); `no_pivot`."""

    __slots__ = ("network", "publish", "publish_all", "console_socket", "relay", "no_pivot")

    def __init__(self, network: str | None = None, publish: list[str] | tuple = (), publish_all: bool = False,
                 console_socket: str | None = None, relay: bool = False, no_pivot: bool = False) -> None:
        self.network, self.publish, self.publish_all = network, list(publish), publish_all
        self.console_socket, self.relay, self.no_pivot = console_socket, relay, no_pivot


def load(bundle: str, overrides: Overrides | None = None) -> Spec:
    """Read `<bundle>/config.json` and validate it, with the command line's overrides."""
    bundle = os.path.abspath(bundle)
    try:
        obj = jsonio.load_file(os.path.join(bundle, "config.json"))
    except PyrtError as e:
        raise ConfigError(str(e)) from None
    return parse(obj, bundle, overrides)


def parse(obj: object, bundle: str, overrides: Overrides | None = None) -> Spec:
    r = Reader(obj, "config.json")
    check_tree(obj, "config.json")
    s: dict = {"bundle": bundle, "oci_version": _version(r)}
    root = r.child("root", required=True)
    path = root.get("path", str, required=True)
    if not path:
        root.fail("must not be empty", "path")
    s["root"] = os.path.normpath(os.path.join(bundle, path))
    s["root_readonly"] = root.get("readonly", bool, False)
    if not os.path.isdir(s["root"]):
        why = "not a directory" if os.path.lexists(s["root"]) else "no such file or directory"
        root.fail(f"{s['root']}: {why}", "path")
    for key in ("hostname", "domainname"):
        name = s[key] = r.get(key, str)
        if name and len(name.encode()) > HOST_NAME_MAX:
            r.fail(f"longer than the kernel's {HOST_NAME_MAX} bytes", key)
    proc = r.child("process")
    s["process"] = _process(proc) if proc else None
    s["mounts"] = tuple(_mount(m) for m in r.items("mounts"))
    s["hooks"] = _hooks(r)
    ann = r.get("annotations", dict, {})
    if not all(isinstance(v, str) for v in ann.values()):
        r.fail("values must be strings", "annotations")
    _linux(r.child("linux") or Reader({}, "config.json", "linux"), s)
    for key in ("solaris", "windows", "vm", "zos"):
        r.refuse(key, f"the {key} platform")
    _check_namespaces(s)
    o = overrides or Overrides()
    _check_command_line(s, o)
    s["annotations"] = FrozenDict(_annotations(ann, o))
    from pyrt import netspec

    s["network"] = netspec.request(s["annotations"], s["namespaces"])
    return Spec(**s)


def _version(r: Reader) -> str:
    v = r.get("ociVersion", str, required=True)
    core = v.split("-")[0].split("+")[0].split(".")
    try:
        nums = tuple(int(x) for x in core)
    except ValueError:
        nums = ()
    if len(nums) != 3 or not nums >= MIN_VERSION or nums[:2] > MAX_VERSION:
        r.fail(f'unsupported version "{v}" (pyrt accepts 1.0.0 up to 1.3.x)', "ociVersion")
    return v


# ----------------------------------------------------------------------------- process


def load_process(obj: object, file: str) -> Process:
    """A process object outside config.json (`exec`'s process.json), validated the same way;
    errors name `file`."""
    check_tree(obj, file)
    return _process(Reader(obj, file))


def _process(p: Reader) -> Process:
    from pyrt import capabilities
    from pyrt.kernel import RLIMITS

    fields: dict = {"terminal": p.get("terminal", bool, False)}
    size = p.child("consoleSize")
    if size:
        fields["console_size"] = (size.uint("height", bits=16), size.uint("width", bits=16))  # struct winsize
    fields["args"] = p.strings("args", required=True, nonempty=True)
    fields["env"] = p.strings("env")
    for i, e in enumerate(fields["env"]):
        if "=" not in e:
            p.fail(f'"{e}" is not KEY=VALUE', f"env[{i}]")
    cwd = fields["cwd"] = p.get("cwd", str, required=True)
    if not cwd.startswith("/"):
        p.fail("must be an absolute path", "cwd")
    user = p.child("user")
    if user:
        fields["uid"], fields["gid"] = user.id("uid"), user.id("gid")
        umask = fields["umask"] = user.get("umask", int)
        if umask is not None and not 0 <= umask <= 0o777:
            user.fail("must be between 0 and 0777", "umask")
        gids = fields["additional_gids"] = user.get("additionalGids", list, [])
        if not all(isinstance(g, int) and not isinstance(g, bool) for g in gids):
            user.fail("must be an array of group ids", "additionalGids")
        if not all(0 <= g <= MAX_ID for g in gids):
            user.fail(f"uids and gids must be in range 0-{MAX_ID}", "additionalGids")
        if len(gids) > NGROUPS_MAX:
            user.fail(f"{len(gids)} groups: the kernel takes at most {NGROUPS_MAX}", "additionalGids")
        user.refuse("username", "process.user.username (Windows)")
    caps = p.child("capabilities") or Reader({}, p.file, p.field("capabilities"))  # absent: every set empty
    fields["capabilities"] = {}
    for kind in capabilities.SETS:
        names = fields["capabilities"][kind] = caps.strings(kind)
        for name in names:
            if capabilities.number(name) is None:
                caps.fail(f'unknown capability "{name}"', kind)
    rlimits = fields["rlimits"] = []
    for rl in p.items("rlimits"):
        kind = rl.get("type", str, required=True)
        if kind not in RLIMITS:
            rl.fail(f'unknown rlimit "{kind}"', "type")
        soft, hard = rl.uint("soft", bits=64), rl.uint("hard", bits=64)
        if soft > hard:
            p.fail(f"{kind}: soft limit {soft} is above the hard limit {hard}", "rlimits")
        rlimits.append((kind, soft, hard))
    fields["no_new_privileges"] = p.get("noNewPrivileges", bool, False)
    oom = fields["oom_score_adj"] = p.get("oomScoreAdj", int)
    if oom is not None and not -1000 <= oom <= 1000:
        p.fail("must be between -1000 and 1000", "oomScoreAdj")
    p.refuse("apparmorProfile", "AppArmor")
    p.refuse("selinuxLabel", "SELinux")
    if any(k in p.obj for k in ("scheduler", "ioPriority", "execCPUAffinity")):
        from pyrt import sched

        fields["scheduler"], fields["io_priority"] = sched.scheduler(p), sched.io_priority(p)
        fields["cpu_affinity"] = sched.cpu_affinity(p)
        # as given: exec (process_json) takes them from the container, as runc
        fields["sched_json"] = {k: p.obj[k] for k in ("scheduler", "ioPriority", "execCPUAffinity") if k in p.obj}
    p.refuse("commandLine", "process.commandLine (Windows)")
    return Process(**fields)


def process_json(proc: Process) -> dict:
    """A Process as the process object _process() reads back into the same Process: `exec`
    keeps the container's in its state record (a bundle may change after `create`)."""
    user: dict = {"uid": proc.uid, "gid": proc.gid, "additionalGids": list(proc.additional_gids)}
    if proc.umask is not None:
        user["umask"] = proc.umask
    out = {"terminal": proc.terminal, "consoleSize": {"height": proc.console_size[0], "width": proc.console_size[1]},
           "args": list(proc.args), "env": list(proc.env), "cwd": proc.cwd, "user": user,
           "capabilities": {k: list(v) for k, v in proc.capabilities.items()},
           "rlimits": [{"type": kind, "soft": soft, "hard": hard} for kind, soft, hard in proc.rlimits],
           "noNewPrivileges": proc.no_new_privileges}
    if proc.oom_score_adj is not None:
        out["oomScoreAdj"] = proc.oom_score_adj
    out.update(proc.sched_json)
    return out


# ----------------------------------------------------------------------------- mounts, hooks


def _mount(m: Reader) -> Mount:
    from pyrt import mountopts

    dest = m.get("destination", str, required=True)
    if not dest:
        m.fail("must not be empty", "destination")
    kind, options = m.get("type", str, ""), m.strings("options")
    uid, gid = mappings(m, "uidMappings"), mappings(m, "gidMappings")
    if bool(uid) != bool(gid):
        m.fail("an idmapped mount needs both uidMappings and gidMappings", "gidMappings" if uid else "uidMappings")
    opts = mountopts.parse(kind, options, m.name())
    return Mount(os.path.normpath("/" + dest.lstrip("/")), kind, m.get("source", str, ""), options, opts, uid, gid)


def _hooks(r: Reader) -> FrozenDict:
    hooks = r.child("hooks")
    if not hooks:
        return FrozenDict()
    out = {}
    for kind in hooks.obj:
        if kind not in HOOK_KINDS:
            hooks.fail(f'unknown hook kind "{kind}"')
        items = []
        for h in hooks.items(kind):
            path = h.get("path", str, required=True)
            if not path.startswith("/"):
                h.fail("must be an absolute path", "path")
            timeout = h.get("timeout", int)
            if timeout is not None and not 0 < timeout < 1 << 31:  # an int of seconds in pyrt-init
                h.fail("must be a positive number of seconds", "timeout")
            items.append(Hook(path, h.strings("args"), h.strings("env"), timeout))
        out[kind] = tuple(items)
    return FrozenDict(out)


# ----------------------------------------------------------------------------- linux


def _linux(lx: Reader, s: dict) -> None:
    namespaces: dict[str, str | None] = {}
    for ns in lx.items("namespaces"):
        kind = ns.get("type", str, required=True)
        if kind not in NAMESPACES:
            ns.fail(f'unknown namespace type "{kind}"', "type")
        if kind in namespaces:
            ns.fail(f'namespace "{kind}" is listed twice', "type")
        namespaces[kind] = ns.get("path", str) or None
    s["namespaces"] = FrozenDict(namespaces)
    s["uid_mappings"], s["gid_mappings"] = mappings(lx, "uidMappings"), mappings(lx, "gidMappings")
    check_userns(lx, s, namespaces)
    s["devices"] = tuple(_device(d) for d in lx.items("devices"))
    s["cgroups_path"] = _cgroups_path(lx)
    from pyrt import limits

    s["resources"] = limits.parse(lx.get("resources", dict, {}), "config.json", "linux.resources")
    prop = lx.get("rootfsPropagation", str)
    if prop and prop not in PROPAGATIONS:
        lx.fail(f'unknown propagation "{prop}"', "rootfsPropagation")
    s["rootfs_propagation"] = prop or None
    s["masked_paths"], s["readonly_paths"] = tuple(lx.strings("maskedPaths")), tuple(lx.strings("readonlyPaths"))
    sysctl = lx.get("sysctl", dict, {})
    for key, value in sysctl.items():
        if not isinstance(value, str) or not key or ".." in key or key.startswith(("/", ".")):
            lx.fail(f'bad sysctl "{key}"', "sysctl")
    s["sysctl"] = FrozenDict(sysctl)
    seccomp = lx.get("seccomp", dict)
    if seccomp is None:
        s["seccomp"] = None
    else:
        from pyrt import seccomp as seccomp_

        s["seccomp"] = seccomp_.parse(lx.child("seccomp"))
    s["personality"] = None
    pers = lx.child("personality")
    if pers:
        domain = pers.get("domain", str, "")
        if domain not in PERSONALITIES:
            pers.fail(f'invalid personality domain "{domain}" (LINUX or LINUX32)', "domain")
        if pers.strings("flags"):  # the runtime spec defines none; runc warns and ignores them
            pers.fail("personality flags are not supported by pyrt", "flags")
        s["personality"] = PERSONALITIES[domain]
    lx.refuse("intelRdt", "Intel RDT")
    lx.refuse("mountLabel", "SELinux")
    s["time_offsets"] = time_offsets(lx, namespaces)
    s["net_devices"] = net_devices(lx, namespaces)
    s["memory_policy"] = None
    if "memoryPolicy" in lx.obj:
        from pyrt import sched

        s["memory_policy"] = sched.memory_policy(lx)


def _device(d: Reader) -> Device:
    path = d.get("path", str, required=True)
    kind = d.get("type", str, required=True)
    if kind not in ("c", "b", "u", "p"):
        d.fail(f'unknown device type "{kind}"', "type")
    if not path.startswith("/dev/") or ".." in path.split("/"):
        d.fail("must be a path under /dev", "path")
    mode = d.get("fileMode", int, 0o666)
    if mode >= 0 and mode & 0o170000 == _S_IFMT[kind]:
        mode &= 0o7777  # podman sends the whole st_mode (S_IFCHR|0620): runc accepts it
    if not 0 <= mode <= 0o7777:
        d.fail("must be a permission mode (file type bits, if any, matching the type)", "fileMode")
    numbers = []
    for key, top in (("major", MAX_MAJOR), ("minor", MAX_MINOR)):
        n = d.get(key, int, 0 if kind == "p" else None, required=kind != "p")
        if not 0 <= n <= top:
            d.fail(f"must be between 0 and {top}", key)
        numbers.append(n)
    return Device(path, "c" if kind == "u" else kind, *numbers, mode, d.id("uid"), d.id("gid"))


def _cgroups_path(lx: Reader) -> str | None:
    """linux.cgroupsPath: a cgroupfs path below the cgroup root (absolute, or relative to pyrt's
    parent for the --root), not systemd's slice:prefix:name."""
    path = lx.get("cgroupsPath", str) or None
    if path is None:
        return None
    # each hierarchy's mount point goes before it and a file name after it (up to 128 bytes in
    # all): longer, some cgroup path would be more than the kernel's PATH_MAX
    if len(path.encode()) > PATH_MAX - 128:
        lx.fail(f"longer than {PATH_MAX - 128} bytes (the kernel's PATH_MAX, less a cgroup mount point and file)",
                "cgroupsPath")
    if ":" in path and not path.startswith("/"):
        lx.fail(f'"{path}" is a systemd path; pyrt has no systemd cgroup driver', "cgroupsPath")
    parts = [p for p in path.split("/") if p]
    if not parts or any(p in (".", "..") or "\n" in p for p in parts):
        lx.fail(f'"{path}" must name a cgroup below the root', "cgroupsPath")
    return path


# ----------------------------------------------------------------------------- across sections


def _check_namespaces(s: dict) -> None:
    """What pyrt cannot do with namespaces, and what would change the host's: a hostname or a
    sysctl outside a namespace of the container's own."""
    ns = s["namespaces"]
    if s["process"] is None:
        raise ConfigError("config.json: process: is required to create a container")
    if "mount" not in ns or ns["mount"]:
        raise ConfigError("config.json: linux.namespaces: pyrt needs a new mount namespace")
    for key in ("hostname", "domainname"):
        # without a uts namespace of its own, the container would rename the host (runc refuses
        # that too: `unable to set domainname without a private UTS namespace`); a joined one is
        # named as runc 1.5 names it, unless it is the host's (runc 1.5 renames the host: pyrt does not)
        if s[key] and "uts" not in ns:
            raise ConfigError(f"config.json: {key}: unable to set {key} without a private UTS namespace")
        if s[key] and ns["uts"] and _is_the_hosts(ns["uts"], "uts"):
            raise ConfigError(f"config.json: {key}: the joined uts namespace is the host's (pyrt never renames the "
                              "host)")
    from pyrt import mounts

    for i, m in enumerate(s["mounts"]):  # idmapped mounts: bind mounts, with mappings given or implied
        mounts.idmapping(m, i, s["uid_mappings"], s["gid_mappings"])
    new = {k for k, path in ns.items() if path is None}
    for key in s["sysctl"]:
        if not _namespaced(key, new):
            raise ConfigError(f'config.json: linux.sysctl: "{key}" is not in a namespace of the container '
                              "(it would change the host)")


def _is_the_hosts(path: str, kind: str) -> bool:
    """Whether the namespace at `path` is the host's (pid 1's) or pyrt's own (one that cannot be
    looked at is not joined either: create fails there)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    for who in ("self", "1"):
        try:
            if os.path.samestat(st, os.stat(f"/proc/{who}/ns/{kind}")):
                return True
        except OSError:  # pid 1's may be closed to us: then it cannot be joined by us either
            pass
    return False


def _namespaced(key: str, new: set[str]) -> bool:
    """Whether a sysctl belongs to a namespace the container has of its own."""
    if key.startswith("net.") and "network" in new:
        return True
    if (key in IPC_SYSCTLS or key.startswith("fs.mqueue.")) and "ipc" in new:
        return True
    return key in ("kernel.hostname", "kernel.domainname") and "uts" in new


def _check_command_line(s: dict, o: Overrides) -> None:
    """The command line's flags against the config (runc's words where runc has them)."""
    terminal = s["process"].terminal
    if o.console_socket and not terminal:
        raise PyrtError("--console-socket: process.terminal is false, there is no terminal to send (as runc)")
    if terminal and not (o.console_socket or o.relay):
        raise PyrtError("process.terminal is true: a --console-socket is needed (or `pyrt run` in the foreground)")
    if o.no_pivot and s["rootfs_propagation"] in ("private", "rprivate"):
        raise ConfigError(f'config.json: linux.rootfsPropagation: "{s["rootfs_propagation"]}" is not safe without '
                          "pivot_root (--no-pivot)")


def _annotations(ann: dict[str, str], o: Overrides) -> dict[str, str]:
    """The annotations with --network and -p (-P: the ports the image exposes) folded in: the
    request travels in them to `start`, `state` and `delete`."""
    publish = o.publish
    if o.publish_all:
        from pyrt import imageconfig

        publish = publish + imageconfig.exposed_ports(ann)
    if o.network is None and not publish:
        return ann
    from pyrt import netspec

    ann = dict(ann)
    netspec.apply_flags(ann, o.network, publish)
    return ann
