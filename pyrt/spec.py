"""config.json: read and validate it once into plain typed data.

Everything later (the plan, cgroups, hooks, networking) reads these objects, never the JSON.
Every error names the file and the field: `config.json: process.args: must be ...`.
Fields pyrt cannot honour are refused here, never ignored.
"""

from __future__ import annotations

import os

from pyrt import jsonio
from pyrt.errors import PyrtError

#: Versions of the runtime-spec whose configs pyrt accepts.
MIN_VERSION, MAX_VERSION = (1, 0, 0), (1, 3)

NAMESPACES = ("pid", "network", "mount", "ipc", "uts", "cgroup", "user", "time")

#: The largest user or group id: runc's range (the kernel's ids are 32 bits, but -1 is "unchanged"
#: to setresuid(2) and chown(2): 4294967295 would leave the process root).
MAX_ID = (1 << 31) - 1
#: The kernel's limits: supplementary groups (NGROUPS_MAX), host and domain names (__NEW_UTS_LEN),
#: device numbers (12 bits of major, 20 of minor in the kernel's dev_t), a path (with its NUL).
NGROUPS_MAX, HOST_NAME_MAX, MAX_MAJOR, MAX_MINOR = 65536, 64, (1 << 12) - 1, (1 << 20) - 1
PATH_MAX = 4096
#: personality(2) domains the runtime spec names
PERSONALITIES = {"LINUX": 0x0000, "LINUX32": 0x0008}


class ConfigError(PyrtError):
    pass


class Mount:
    __slots__ = ("destination", "type", "source", "options")

    def __init__(self, destination: str, type: str, source: str, options: list[str]) -> None:
        self.destination, self.type, self.source, self.options = destination, type, source, options


class Device:
    __slots__ = ("path", "type", "major", "minor", "file_mode", "uid", "gid")

    def __init__(self, path: str, type: str, major: int, minor: int, file_mode: int, uid: int, gid: int) -> None:
        self.path, self.type, self.major, self.minor = path, type, major, minor
        self.file_mode, self.uid, self.gid = file_mode, uid, gid


class Hook:
    __slots__ = ("path", "args", "env", "timeout")

    def __init__(self, path: str, args: list[str], env: list[str], timeout: int | None) -> None:
        self.path, self.args, self.env, self.timeout = path, args, env, timeout


class Process:
    __slots__ = (
        "terminal", "console_size", "args", "env", "cwd", "uid", "gid", "umask", "additional_gids",
        "capabilities", "rlimits", "no_new_privileges", "oom_score_adj", "scheduler", "io_priority", "cpu_affinity",
        "sched_json",
    )

    def __init__(self) -> None:
        self.terminal = False
        self.console_size: tuple[int, int] = (0, 0)  # rows, columns
        self.args: list[str] = []
        self.env: list[str] = []
        self.cwd = "/"
        self.uid = self.gid = 0
        self.umask: int | None = None
        self.additional_gids: list[int] = []
        #: set name ("bounding", "effective", ...) -> capability names; absent set = empty
        self.capabilities: dict[str, list[str]] = {}
        self.rlimits: list[tuple[str, int, int]] = []
        self.no_new_privileges = False
        self.oom_score_adj: int | None = None
        #: pyrt.sched's reading of process.scheduler, ioPriority, execCPUAffinity (initial, final)
        self.scheduler = self.io_priority = None
        self.cpu_affinity: tuple = (None, None)
        self.sched_json: dict = {}  # those fields as given: `exec` takes them from the container


class Spec:
    """A validated config.json. Paths are absolute (root.path resolved against the bundle)."""

    __slots__ = (
        "bundle", "oci_version", "root", "root_readonly", "hostname", "domainname", "process",
        "mounts", "hooks", "annotations", "namespaces", "uid_mappings", "gid_mappings", "devices",
        "cgroups_path", "resources", "rootfs_propagation", "masked_paths", "readonly_paths",
        "sysctl", "seccomp", "personality", "memory_policy",
    )

    def __init__(self) -> None:
        self.bundle = self.oci_version = self.root = ""
        self.root_readonly = False
        self.hostname: str | None = None
        self.domainname: str | None = None
        self.process: Process | None = None
        self.mounts: list[Mount] = []
        self.hooks: dict[str, list[Hook]] = {}
        self.annotations: dict[str, str] = {}
        #: namespace type -> path to join, or None for a new one
        self.namespaces: dict[str, str | None] = {}
        self.uid_mappings: list[tuple[int, int, int]] = []
        self.gid_mappings: list[tuple[int, int, int]] = []
        self.devices: list[Device] = []
        self.cgroups_path: str | None = None
        #: linux.resources as given; pyrt.resources validates it and the cgroup applies it
        self.resources: dict = {}
        self.rootfs_propagation: str | None = None
        self.masked_paths: list[str] = []
        self.readonly_paths: list[str] = []
        self.sysctl: dict[str, str] = {}
        self.seccomp: dict | None = None
        #: linux.personality's domain as personality(2) takes it, or None to leave it alone
        self.personality: int | None = None
        #: linux.memoryPolicy as pyrt.sched reads it: (mode, flags, nodes), or None
        self.memory_policy: tuple | None = None


# ----------------------------------------------------------------------------- field readers


class _Reader:
    """Typed access to one JSON object, with errors naming `file: path.to.field`."""

    def __init__(self, obj: object, where: str, file: str = "config.json") -> None:
        self.file, self.where = file, where
        if not isinstance(obj, dict):
            self.fail("must be an object")
        self.obj: dict = obj

    def fail(self, msg: str, key: str | None = None) -> None:
        field = f"{self.where}.{key}" if key and self.where else key or self.where
        raise ConfigError(f"{self.file}: {field}: {msg}" if field else f"{self.file}: {msg}")

    def child(self, key: str, required: bool = False) -> _Reader | None:
        if key not in self.obj or self.obj[key] is None:
            if required:
                self.fail("is required", key)
            return None
        return _Reader(self.obj[key], f"{self.where}.{key}" if self.where else key, self.file)

    def get(self, key: str, kind: type | tuple, default: object = None, required: bool = False):
        value = self.obj.get(key)
        if value is None:
            if required:
                self.fail("is required", key)
            return default
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            self.fail("must be an integer", key)
        if not isinstance(value, kind):
            names = {str: "a string", bool: "true or false", list: "an array", dict: "an object"}
            self.fail(f"must be {names.get(kind, 'a number')}", key)
        return value

    def strings(self, key: str, required: bool = False, nonempty: bool = False) -> list[str]:
        value = self.get(key, list, [], required)
        if not all(isinstance(v, str) for v in value) or (nonempty and not value):
            self.fail("must be " + ("a non-empty " if nonempty else "an ") + "array of strings", key)
        return value

    def uint(self, key: str, default: int = 0, bits: int = 32) -> int:
        value = self.get(key, int, default)
        if not 0 <= value < 1 << bits:
            self.fail(f"must be between 0 and {(1 << bits) - 1}", key)
        return value

    def id(self, key: str) -> int:
        """A uid or gid (runc's words for one out of range)."""
        value = self.get(key, int, 0)
        if not 0 <= value <= MAX_ID:
            self.fail(f"uids and gids must be in range 0-{MAX_ID}", key)
        return value

    def items(self, key: str) -> list[_Reader]:
        value = self.get(key, list, [])
        base = f"{self.where}.{key}" if self.where else key
        return [_Reader(v, f"{base}[{i}]", self.file) for i, v in enumerate(value)]

    def refuse(self, key: str, what: str) -> None:
        """Refuse a field pyrt does not implement, unless it is empty."""
        if self.obj.get(key) not in (None, "", [], {}):
            self.fail(f"{what} is not supported by pyrt", key)


def check_tree(obj: object, file: str) -> None:
    """Refuse, naming the field, what no field may hold: a string with a NUL byte (no system
    call takes one: Python would raise ValueError at the first that meets it) or a lone
    surrogate (not UTF-8). Every string, keys included, wherever it is: also in sections other
    modules read (seccomp, resources, annotations)."""
    try:  # the C encoder escapes both as \\u0000 and \\udXXX: most configs have neither
        text = jsonio.dumps(obj)
        if "\\u0000" not in text and "\\ud" not in text:
            return
    except RecursionError:
        pass
    todo: list[tuple[object, str]] = [(obj, "")]
    while todo:
        value, where = todo.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                field = f"{where}.{k}" if where else k
                _check_string(k, field, file)
                todo.append((v, field))
        elif isinstance(value, list):
            todo += ((v, f"{where}[{i}]") for i, v in enumerate(value))
        elif isinstance(value, str):
            _check_string(value, where, file)


def _check_string(s: str, where: str, file: str) -> None:
    if "\0" in s:
        _Reader({}, where, file).fail("must not contain a NUL byte")
    try:
        s.encode()
    except UnicodeEncodeError:
        _Reader({}, where, file).fail("must be valid UTF-8 (it has a lone surrogate)")


# ----------------------------------------------------------------------------- loading


def load(bundle: str) -> Spec:
    """Read `<bundle>/config.json` and validate it."""
    bundle = os.path.abspath(bundle)
    try:
        obj = jsonio.load_file(os.path.join(bundle, "config.json"))
    except PyrtError as e:
        raise ConfigError(str(e)) from None
    return parse(obj, bundle)


def _version(r: _Reader) -> str:
    v = r.get("ociVersion", str, required=True)
    core = v.split("-")[0].split("+")[0].split(".")
    try:
        nums = tuple(int(x) for x in core)
    except ValueError:
        nums = ()
    if len(nums) != 3 or not nums >= MIN_VERSION or nums[:2] > MAX_VERSION:
        r.fail(f'unsupported version "{v}" (pyrt accepts 1.0.0 up to 1.3.x)', "ociVersion")
    return v


def parse(obj: object, bundle: str) -> Spec:
    r = _Reader(obj, "")
    check_tree(obj, "config.json")
    s = Spec()
    s.bundle = bundle
    s.oci_version = _version(r)

    root = r.child("root", required=True)
    path = root.get("path", str, required=True)
    if not path:
        root.fail("must not be empty", "path")
    s.root = os.path.normpath(os.path.join(bundle, path))
    s.root_readonly = root.get("readonly", bool, False)
    if not os.path.isdir(s.root):
        why = "not a directory" if os.path.lexists(s.root) else "no such file or directory"
        root.fail(f"{s.root}: {why}", "path")

    s.hostname, s.domainname = r.get("hostname", str), r.get("domainname", str)
    for key, name in (("hostname", s.hostname), ("domainname", s.domainname)):
        if name and len(name.encode()) > HOST_NAME_MAX:
            r.fail(f"longer than the kernel's {HOST_NAME_MAX} bytes", key)
    proc = r.child("process")
    s.process = _process(proc) if proc else None
    s.mounts = [_mount(m) for m in r.items("mounts")]
    s.hooks = _hooks(r)
    ann = r.get("annotations", dict, {})
    if not all(isinstance(v, str) for v in ann.values()):
        r.fail("values must be strings", "annotations")
    s.annotations = ann
    linux = r.child("linux")
    if linux:
        _linux(linux, s)
    for key in ("solaris", "windows", "vm", "zos"):
        r.refuse(key, f"the {key} platform")
    return s


def load_process(obj: object, file: str) -> Process:
    """A process object outside config.json (`exec`'s process.json), validated the same way;
    errors name `file`."""
    r = _Reader(obj, "", file)
    check_tree(obj, file)
    return _process(r)


def _process(p: _Reader) -> Process:
    proc = Process()
    proc.terminal = p.get("terminal", bool, False)
    size = p.child("consoleSize")
    if size:
        proc.console_size = (size.uint("height", bits=16), size.uint("width", bits=16))  # struct winsize
    proc.args = p.strings("args", required=True, nonempty=True)
    proc.env = p.strings("env")
    for i, e in enumerate(proc.env):
        if "=" not in e:
            p.fail(f'"{e}" is not KEY=VALUE', f"env[{i}]")
    proc.cwd = p.get("cwd", str, required=True)
    if not proc.cwd.startswith("/"):
        p.fail("must be an absolute path", "cwd")
    user = p.child("user")
    if user:
        proc.uid, proc.gid = user.id("uid"), user.id("gid")
        proc.umask = user.get("umask", int)
        if proc.umask is not None and not 0 <= proc.umask <= 0o777:
            user.fail("must be between 0 and 0777", "umask")
        gids = user.get("additionalGids", list, [])
        if not all(isinstance(g, int) and not isinstance(g, bool) for g in gids):
            user.fail("must be an array of group ids", "additionalGids")
        if not all(0 <= g <= MAX_ID for g in gids):
            user.fail(f"uids and gids must be in range 0-{MAX_ID}", "additionalGids")
        if len(gids) > NGROUPS_MAX:
            user.fail(f"{len(gids)} groups: the kernel takes at most {NGROUPS_MAX}", "additionalGids")
        proc.additional_gids = gids
        user.refuse("username", "process.user.username (Windows)")
    caps = p.child("capabilities")
    if caps:
        from pyrt import capabilities

        for kind in capabilities.SETS:
            names = caps.strings(kind)
            for name in names:
                if capabilities.number(name) is None:
                    caps.fail(f'unknown capability "{name}"', kind)
            proc.capabilities[kind] = names
    for rl in p.items("rlimits"):
        kind = rl.get("type", str, required=True)
        from pyrt.kernel import RLIMITS

        if kind not in RLIMITS:
            rl.fail(f'unknown rlimit "{kind}"', "type")
        proc.rlimits.append((kind, rl.uint("soft", bits=64), rl.uint("hard", bits=64)))
    proc.no_new_privileges = p.get("noNewPrivileges", bool, False)
    proc.oom_score_adj = p.get("oomScoreAdj", int)
    if proc.oom_score_adj is not None and not -1000 <= proc.oom_score_adj <= 1000:
        p.fail("must be between -1000 and 1000", "oomScoreAdj")
    p.refuse("apparmorProfile", "AppArmor")
    p.refuse("selinuxLabel", "SELinux")
    if any(k in p.obj for k in ("scheduler", "ioPriority", "execCPUAffinity")):
        from pyrt import sched

        proc.scheduler, proc.io_priority = sched.scheduler(p), sched.io_priority(p)
        proc.cpu_affinity = sched.cpu_affinity(p)
        proc.sched_json = {k: p.obj[k] for k in ("scheduler", "ioPriority", "execCPUAffinity") if k in p.obj}
    p.refuse("commandLine", "process.commandLine (Windows)")
    return proc


def _mount(m: _Reader) -> Mount:
    dest = m.get("destination", str, required=True)
    if not dest:
        m.fail("must not be empty", "destination")
    mount = Mount(os.path.normpath("/" + dest.lstrip("/")), m.get("type", str, ""), m.get("source", str, ""),
                  m.strings("options"))
    m.refuse("uidMappings", "idmapped mounts")
    m.refuse("gidMappings", "idmapped mounts")
    return mount


HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def _hooks(r: _Reader) -> dict[str, list[Hook]]:
    hooks = r.child("hooks")
    if not hooks:
        return {}
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
        out[kind] = items
    return out


PROPAGATIONS = ("private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable")


#: The st_mode file type bits of each linux.devices type.
_S_IFMT = {"c": 0o020000, "u": 0o020000, "b": 0o060000, "p": 0o010000}


def _linux(lx: _Reader, s: Spec) -> None:
    for ns in lx.items("namespaces"):
        kind = ns.get("type", str, required=True)
        if kind not in NAMESPACES:
            ns.fail(f'unknown namespace type "{kind}"', "type")
        if kind in s.namespaces:
            ns.fail(f'namespace "{kind}" is listed twice', "type")
        s.namespaces[kind] = ns.get("path", str) or None
    for key, out in (("uidMappings", s.uid_mappings), ("gidMappings", s.gid_mappings)):
        for m in lx.items(key):
            out.append((m.uint("containerID"), m.uint("hostID"), m.uint("size")))
        if out and "user" not in s.namespaces:  # runc ignores them; they would map nothing
            lx.fail("mappings without a user namespace (linux.namespaces has none)", key)
    for d in lx.items("devices"):
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
        s.devices.append(Device(path, "c" if kind == "u" else kind, *numbers, mode, d.id("uid"), d.id("gid")))
    s.cgroups_path = lx.get("cgroupsPath", str) or None
    # each hierarchy's mount point goes before it and a file name after it (up to 128 bytes in
    # all): longer, some cgroup path would be more than the kernel's PATH_MAX
    if s.cgroups_path and len(s.cgroups_path.encode()) > PATH_MAX - 128:
        lx.fail(f"longer than {PATH_MAX - 128} bytes (the kernel's PATH_MAX, less a cgroup mount point and file)",
                "cgroupsPath")
    s.resources = lx.get("resources", dict, {})
    prop = lx.get("rootfsPropagation", str)
    if prop and prop not in PROPAGATIONS:
        lx.fail(f'unknown propagation "{prop}"', "rootfsPropagation")
    s.rootfs_propagation = prop or None
    s.masked_paths = lx.strings("maskedPaths")
    s.readonly_paths = lx.strings("readonlyPaths")
    sysctl = lx.get("sysctl", dict, {})
    for key, value in sysctl.items():
        if not isinstance(value, str) or not key or ".." in key or key.startswith(("/", ".")):
            lx.fail(f'bad sysctl "{key}"', "sysctl")
    s.sysctl = sysctl
    s.seccomp = lx.get("seccomp", dict)
    pers = lx.child("personality")
    if pers:
        domain = pers.get("domain", str, "")
        if domain not in PERSONALITIES:
            pers.fail(f'invalid personality domain "{domain}" (LINUX or LINUX32)', "domain")
        if pers.strings("flags"):  # the runtime spec defines none; runc warns and ignores them
            pers.fail("personality flags are not supported by pyrt", "flags")
        s.personality = PERSONALITIES[domain]
    lx.refuse("intelRdt", "Intel RDT")
    lx.refuse("mountLabel", "SELinux")
    lx.refuse("timeOffsets", "the time namespace")
    lx.refuse("netDevices", "linux.netDevices")
    if "memoryPolicy" in lx.obj:
        from pyrt import sched

        s.memory_policy = sched.memory_policy(lx)
